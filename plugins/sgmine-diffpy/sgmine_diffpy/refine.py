"""Checking candidates against physics: a least-squares fit of each candidate structure to the
measured G(r) with diffpy.pdffit2, the engine behind PDFgui.

What is refined (one pdffit2 phase per candidate, occupancies held at the library's values,
positions too unless ``refine_positions``):

- ``scale`` (data scale factor),
- the lattice parameters that the space group leaves free (the ``latpars`` of
  ``constrainAsSpaceGroup``: ``a`` for cubic, ``a`` and ``c`` for tetragonal/hexagonal, ...),
- one isotropic U per symmetry-independent site (U11 = U22 = U33, off-diagonal 0),
- ``delta2`` (correlated motion, sharpens near-neighbour peaks),
- optionally ``qdamp`` (``fit_qdamp=True``; do this for a calibration standard like Ni),
- with ``refine_positions=True`` (what ``sgmine refine`` asks for), the atom coordinates the
  space group leaves free (:func:`constrain_positions`).

The fit runs in three stages (scale; + lattice; + ADPs, delta2 [, qdamp]) so that a poor
start does not send the ADPs astray; with ``refine_positions``, a fourth stage frees the
coordinates too, as a PDFgui user would once the rest has settled, and is kept only where it
lowers Rw. A stage that breaks down falls back to the previous stage's result, with a note.
The fit range defaults to 1.5–30 Å, the range the CNN
sees (its measured part, where the data are shorter). Qmax and Qdamp come from the file
header (:class:`sgmine.header.Header`, the reader of every command: PDFgetX3, xPDFsuite,
PDFgetX2 and PDFgetN headers) where present, else from the arguments; with neither, Qmax is 0
(termination ripples not modelled) and Qdamp is :data:`DEFAULT_QDAMP`. The radiation is x-ray
unless the header says neutron (its ``mode``/``stype``, or a PDFgetN header:
:func:`header_radiation`). Rw is pdffit2's: sqrt(Σ(Gobs−Gcalc)² / ΣGobs²) over the fit range
(unit weights, since .gr files rarely carry usable uncertainties).
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sgmine import pdfdefaults
from sgmine.composition import CompositionError, parse_formula
from sgmine.gr import Curve, read_gr
from sgmine_diffpy.candidates import CandidateModel

#: Default fit range (Å): the r-range of the CNN's grid.
DEFAULT_RMIN, DEFAULT_RMAX = 1.5, 30.0
#: Qdamp (Å⁻¹) used when neither the file header nor the caller gives one; typical of
#: rapid-acquisition synchrotron PDF setups (0.02–0.06).
DEFAULT_QDAMP = pdfdefaults.QDAMP
#: Least-squares iterations allowed per stage (a matching structure converges in far fewer).
DEFAULT_MAX_STEPS = 40
#: Free coordinates the positions stage refines at most: pdffit2's time per iteration grows with
#: the free parameters, and a structure with more (a P1 cell of 50 atoms has 150) is kept at its
#: positions, with a note. At 60, a 20-atom Pnma perovskite (7) or a molecular crystal of 19
#: atoms on general positions (57) is refined; a P1 Fe2CoO4 cell (56 atoms, 168) took 125 s
#: instead of 70 s on 2 loaded cores, so it is not.
MAX_FREE_COORDINATES = 60

#: Larger isotropic ADPs (Å²) are flagged as unphysical in the result's message.
MAX_UISO = 0.1
#: A refined spherical-particle diameter (Å) below this is flagged as unphysical.
MIN_DIAMETER = 8.0

LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
#: A result's status: fitted, failed, or not fitted on purpose (``sgmine refine``: a structure
#: whose group is not among the model's top-k).
OK, ERROR, SKIPPED = "ok", "error", "skipped"

# pdffit2 variable numbers
_SCALE, _DELTA2, _QDAMP, _SPDIAMETER, _LAT0, _U0, _XYZ0 = 1, 2, 3, 4, 11, 101, 1001


@dataclass
class FitResult:
    """One candidate structure fitted to one measured PDF (or, with status "error" and no
    candidate, a file that could not be scored or matched)."""

    source: str
    cif: str
    space_group: int | None
    symbol: str
    model_rank: int | None
    probability: float | None
    status: str = OK
    rw: float | None = None
    scale: float | None = None
    lattice: dict[str, float] = field(default_factory=dict)
    uiso: dict[str, float] = field(default_factory=dict)
    delta2: float | None = None
    qmax: float | None = None
    qdamp: float | None = None
    spdiameter: float | None = None  # Å, when a spherical-particle envelope was refined
    rmin: float | None = None
    rmax: float | None = None
    npoints: int = 0
    message: str = ""
    r: np.ndarray | None = None
    g_obs: np.ndarray | None = None
    g_calc: np.ndarray | None = None
    stype: str = ""  # the radiation as pdffit2 names it: "X" or "N"
    structure: object = None  # the refined diffpy Structure (standard cell, the CIF's site labels)
    independent: list[int] = field(default_factory=list)  # the atoms of ``structure``'s asymmetric unit

    @property
    def ok(self) -> bool:
        return self.status == OK


def experiment_settings(curve: Curve, qmax: float | None, qdamp: float | None) -> tuple[float, float, list[str]]:
    """``(qmax, qdamp, notes)``: the header's values where present (:attr:`Curve.header
    <sgmine.gr.Curve.header>`), else the arguments, else Qmax 0 (no termination ripples) and
    :data:`DEFAULT_QDAMP`."""
    notes = []
    header = curve.header
    q = header.qmax if header.qmax is not None else qmax
    if q is None:
        q = 0.0
        notes.append("Qmax unknown (not in header, not given): termination ripples not modelled")
    d = header.qdamp if header.qdamp is not None else qdamp
    if d is None:
        d = DEFAULT_QDAMP
        notes.append(f"Qdamp not in header or given: {DEFAULT_QDAMP:g} assumed")
    return float(q), float(d), notes


def radiation(curve: Curve) -> str:
    """pdffit2's scattering type for ``curve``: :func:`header_radiation`, else ``"X"`` (x-ray)."""
    return header_radiation(curve) or "X"


def header_radiation(curve: Curve) -> str | None:
    """``"N"`` or ``"X"`` (pdffit2's names) when the header says which
    (:attr:`sgmine.header.Header.radiation`: its ``mode``, ``stype`` or ``radiation`` entry,
    else the program that wrote it); None when it does not say."""
    said = curve.header.radiation
    return {"neutron": "N", "xray": "X"}[said] if said else None


def header_elements(curve: Curve) -> set[str] | None:
    """The sample's chemical elements as the header records them, or None when it does not:
    the first of its compositions (:attr:`sgmine.header.Header.compositions`: the
    ``composition`` entry of xPDFsuite and PDFgetX3, else the element table of PDFgetN or
    PDFgetX2) that :func:`sgmine.composition.parse_formula` reads; elements given with amount
    0 are left out."""
    for found in curve.header.compositions:
        try:
            return set(parse_formula(found.text))
        except CompositionError:
            continue
    return None


def fit_candidate(
    candidate: CandidateModel,
    curve: Curve,
    *,
    qmax: float | None = None,
    qdamp: float | None = None,
    rmin: float = DEFAULT_RMIN,
    rmax: float = DEFAULT_RMAX,
    fit_qdamp: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    spdiameter: float | None = None,
    refine_positions: bool = False,
    early_positions: bool = False,
    adp_per: str = "site",
) -> FitResult:
    """Refine ``candidate``'s structure against ``curve`` with pdffit2 (see the module text).

    ``spdiameter`` (Å) starts pdffit2's spherical-particle envelope there and refines it with
    the ADPs (for a nanoparticle; ``sgmine identify`` passes the screen's best diameter).
    ``refine_positions`` adds the last stage, the free atom coordinates (:func:`constrain_positions`);
    the message then names the coordinates refined (``positions refined: O1 x``).
    ``early_positions`` also frees them right after the lattice, before the ADPs (kept only
    where it lowers Rw): for a structure type decorated with the sample's elements, whose
    template positions can be far enough off to send the ADPs astray.
    ``adp_per``: one Uiso per symmetry-independent site (``"site"``, as PDFgui starts) or per
    element (``"element"``: fewer, steadier ADPs for a candidate that is only a template of
    the sample, whose per-site ADPs can run off to absorb its misfit).

    Each stage stops after ``max_steps`` least-squares iterations (noted in the message when it
    had not converged), so a fit costs at most four times ``max_steps`` iterations. When a later
    stage breaks down (pdffit2's "singular matrix", typical of a structure that does not match
    the data at all; for the positions stage also a higher Rw), the result is the previous
    stage's, with a note. Never raises for a fit that fails: the result then has ``status="error"``.
    """
    result = FitResult(
        source=candidate.source, cif=candidate.cif, space_group=candidate.space_group,
        symbol=candidate.symbol, model_rank=candidate.model_rank, probability=candidate.probability,
        stype=radiation(curve),
    )
    q, d, notes = experiment_settings(curve, qmax, qdamp)
    in_range = (curve.r >= rmin) & (curve.r <= rmax)
    if in_range.sum() < 10:
        return _failed(result, f"only {int(in_range.sum())} data points within {rmin:g}–{rmax:g} Å")
    # the measured part of the range: pdffit2 refuses a range beyond its data (LSCO files end at 20 Å)
    rmin, rmax = max(rmin, float(curve.r[in_range].min())), min(rmax, float(curve.r[in_range].max()))
    chatter = io.StringIO()
    try:
        with _pdffit_output(chatter):
            pf, lattice_vars, adp_vars = _setup(candidate, curve, q, d, rmin, rmax, fit_qdamp, spdiameter, adp_per)
            last = [_SCALE, *lattice_vars, *adp_vars, _DELTA2] + ([_QDAMP] if fit_qdamp else [])
            stages = [("scale", [_SCALE], False), ("lattice", [_SCALE, *lattice_vars], False), ("ADP/delta2", last, False)]
            positions = constrain_positions(pf, candidate) if refine_positions else None
            if positions and len(positions.variables) > MAX_FREE_COORDINATES:
                notes.append(f"positions not refined: {len(positions.variables)} free coordinates "
                             f"(more than {MAX_FREE_COORDINATES})")
            elif positions and positions.variables:
                if early_positions:
                    stages.insert(2, ("positions", [_SCALE, *lattice_vars, *positions.variables], True))
                stages.append(("positions", last + positions.variables, True))
            stage_notes, kept = _refine_in_stages(pf, stages, max_steps)
            if "positions" in kept:
                notes.append(positions.note())
            notes += stage_notes
            _collect(pf, candidate, result, fit_qdamp, spdiameter)
    except Exception as exc:  # pdffit2 signals bad input and divergence with assorted errors
        last = [line for line in chatter.getvalue().splitlines() if line.strip()][-1:]
        detail = f" [{last[0].strip()}]" if last else ""
        return _failed(result, f"pdffit2 failed: {type(exc).__name__}: {exc}{detail}")
    result.qmax, result.rmin, result.rmax = q, rmin, rmax
    if not fit_qdamp:
        result.qdamp = d
    notes += physics_notes(result)
    result.message = "; ".join(notes)
    return result


def _refine_in_stages(pf, stages: list[tuple[str, list[int], bool]], max_steps: int) -> tuple[list[str], list[str]]:
    """Refine ``stages`` in turn, each ``(name, variables freed, must lower Rw)``.

    Returns notes on stages that fell short, and the names of the stages whose result stands.
    A stage after the first that raises (or, where it must lower Rw, does not) is undone: its
    variables go back to the previous stage's values, which are refined once more so that
    pdffit2's curve is theirs, and the stages after it are not run.
    """
    every = sorted({var for _, free, _ in stages for var in free})
    notes: list[str] = []
    kept: list[str] = []
    for index, (name, free, must_improve) in enumerate(stages):
        before = {var: pf.getpar(var) for var in every}
        rw_before = pf.getrw() if index else math.inf
        try:
            if not _run_stage(pf, free, max_steps):
                notes.append(f"{name} stage stopped after {max_steps} iterations (not converged)")
            rw_after = pf.getrw()
            failure = (f"Rw {rw_before:.4f} -> {rw_after:.4f}"
                       if must_improve and not rw_after <= rw_before else None)
        except Exception as exc:
            if index == 0:
                raise
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None:
            for var, value in before.items():
                pf.setpar(var, value)
            try:
                _run_stage(pf, stages[index - 1][1], max_steps)
            except Exception:  # the previous stage breaks down again (a singular matrix): its values stand
                for var, value in before.items():
                    pf.setpar(var, value)
                pf.calc()
            notes.append(f"{name} stage failed ({failure}); result of the {stages[index - 1][0]} stage")
            break
        kept.append(name)
    return notes, kept


@dataclass
class PositionVariables:
    """The pdffit2 variables of the free atom coordinates (:func:`constrain_positions`)."""

    variables: list[int]  # refined
    refined: list[str]  # their names: the site's label and the axis ("O1 x")
    held: list[str]  # coordinates kept at their start to fix the origin along a polar axis

    def note(self) -> str:
        """The row's message: which coordinates were refined (and held)."""
        text = f"positions refined: {', '.join(self.refined)}"
        if self.held:
            text += f" ({', '.join(self.held)} held: polar axis, fixes the origin)"
        return text


def constrain_positions(pf, candidate: CandidateModel) -> PositionVariables:
    """Tie the coordinates of every atom in ``pf``'s phase to the free coordinates of its site.

    The formulas are those ``constrainAsSpaceGroup`` puts on ``candidate.phase`` (its
    ``sgpars.xyzpars`` are the free coordinates): diffpy.structure's ``SymmetryConstraints`` of
    the space group, written with pdffit2 variables (``z`` of one atom ``@1001``, of its mirror
    image ``-@1001 +1``), as PDFgui's symmetry constraints are. Along a polar axis (one that
    every symmetry operation leaves alone, such as c in P6_3mc) a common shift of all atoms
    changes no distance, so the first coordinate along it is held (the refinement would be
    singular otherwise).

    Returns
    -------
    PositionVariables
        The variables to free (none where the group fixes every coordinate), their names and
        the coordinates held.
    """
    from diffpy.structure.symmetryutilities import SymmetryConstraints

    structure = candidate.structure
    constraints = SymmetryConstraints(candidate.sgpars.sg, structure.xyz, sgoffset=candidate.sgpars.sgoffset)
    symbols = [f"@{_XYZ0 + k}" for k in range(len(constraints.pospars))]
    for atom, formulas in enumerate(constraints.positionFormulas(symbols), start=1):
        for axis, formula in formulas.items():
            if "@" in formula:
                pf.constrain(getattr(pf, axis)(atom), formula)
    polar = polar_axes(candidate.sgpars.sg)
    found = PositionVariables([], [], [])
    for k, (name, value) in enumerate(constraints.pospars):
        pf.setpar(_XYZ0 + k, float(value))
        axis, atom = name[0], int(name[1:])
        label = f"{structure[atom].label} {axis}"
        if label in found.refined or label in found.held:  # two sites of one label: name the atom
            label = f"{structure[atom].label} (atom {atom + 1}) {axis}"
        if axis in polar:
            polar.remove(axis)
            found.held.append(label)
        else:
            found.variables.append(_XYZ0 + k)
            found.refined.append(label)
    return found


def polar_axes(space_group) -> list[str]:
    """The axes (``"x"``, ``"y"``, ``"z"``) that every operation of the diffpy ``space_group``
    maps onto themselves: a shift of the whole structure along one keeps its symmetry."""
    unit = np.eye(3)
    return [axis for c, axis in enumerate("xyz")
            if all(np.allclose(np.asarray(op.R)[:, c], unit[c]) for op in space_group.iter_symops())]


#: pdffit2 ends a refinement (its FINAL step) after this many stagnating steps (fit.cc: NSTAG).
_PDFFIT2_STAGNATING = 3


def _run_stage(pf, free: list[int], max_steps: int) -> bool:
    """Refine the variables ``free`` (the others held); True when pdffit2 converged.

    A stage cut off after ``max_steps`` is brought to pdffit2's own end before returning: its
    ``refine_step`` keeps a refinement open (a static flag, and the number of free parameters
    fixed at the refinement's first step) until it reports the end, so the next stage's
    ``freepar`` calls would otherwise change the free set under a running refinement: the new
    parameters went unrefined, and the final covariance step wrote past its arrays (segfaults
    in ``covsrt`` on about a third of ``sgmine identify``'s fits). With a huge tolerance every
    step counts as stagnating, and pdffit2 ends after :data:`_PDFFIT2_STAGNATING` more steps.
    """
    pf.fixpar("ALL")
    for var in free:
        pf.freepar(var)
    for _ in range(max_steps):
        if pf.refine_step():
            return True
    for _ in range(_PDFFIT2_STAGNATING + 2):
        if pf.refine_step(1e30):
            break
    return False


def _setup(candidate, curve, qmax, qdamp, rmin, rmax, fit_qdamp, spdiameter=None, adp_per="site"):
    """A PdfFit with data, structure and constraints; also its lattice and ADP variables (one
    per site or per element, ``adp_per``; with the particle diameter, when given: it is refined
    with them)."""
    from diffpy.pdffit2 import PdfFit

    pf = PdfFit()
    pf.add_structure(candidate.structure)
    keep = curve.r > 0  # pdffit2 turns every residual into NaN when the data include r = 0
    pf.read_data_lists(radiation(curve), qmax, qdamp, curve.r[keep].tolist(), curve.g[keep].tolist())
    pf.pdfrange(1, rmin, rmax)
    pf.constrain(pf.dscale(), f"@{_SCALE}")
    pf.setpar(_SCALE, 1.0)
    pf.constrain(pf.delta2(), f"@{_DELTA2}")
    pf.setpar(_DELTA2, 1.0)
    if fit_qdamp:
        pf.constrain(pf.qdamp(), f"@{_QDAMP}")
        pf.setpar(_QDAMP, qdamp)
    lattice = candidate.phase.getLattice()
    lattice_vars = []
    for i, name in enumerate(LATTICE_NAMES):
        par = getattr(lattice, name)
        if par.const:
            continue  # fixed by the space group (90° or 120°)
        if par.constrained:  # srfit ties b, c to a and beta, gamma to alpha
            pf.constrain(pf.lat(i + 1), f"@{_LAT0 if i < 3 else _LAT0 + 3}")
        else:
            pf.constrain(pf.lat(i + 1), f"@{_LAT0 + i}")
            pf.setpar(_LAT0 + i, float(par.value))
            lattice_vars.append(_LAT0 + i)
    if adp_per not in ("site", "element"):
        raise ValueError(f"adp_per must be 'site' or 'element', not {adp_per!r}")
    groups = [candidate.structure[site].element if adp_per == "element" else site for site in candidate.entry.sites]
    keys = sorted(set(groups), key=str)
    for atom_index, (site, key) in enumerate(zip(candidate.entry.sites, groups), start=1):
        var = _U0 + keys.index(key)
        for u in (pf.u11, pf.u22, pf.u33):
            pf.constrain(u(atom_index), f"@{var}")
        pf.setpar(var, float(candidate.structure[site].Uisoequiv))
    adp_vars = [_U0 + i for i in range(len(keys))]
    if spdiameter:
        pf.constrain(pf.spdiameter(), f"@{_SPDIAMETER}")
        pf.setpar(_SPDIAMETER, float(spdiameter))
        adp_vars.append(_SPDIAMETER)
    return pf, lattice_vars, adp_vars


def _collect(pf, candidate, result: FitResult, fit_qdamp: bool, spdiameter=None) -> None:
    result.rw = float(pf.getrw())
    if spdiameter:
        result.spdiameter = float(pf.getpar(_SPDIAMETER))
    result.scale = float(pf.getpar(_SCALE))
    result.delta2 = float(pf.getpar(_DELTA2))
    if fit_qdamp:
        result.qdamp = float(pf.getpar(_QDAMP))
    result.lattice = {name: float(pf.getvar(pf.lat(i + 1))) for i, name in enumerate(LATTICE_NAMES)}
    for site in sorted(set(candidate.entry.sites)):
        result.uiso[candidate.structure[site].label] = float(pf.getvar(pf.u11(site + 1)))
    result.structure = refined_structure(pf, candidate, result.lattice)
    result.independent = independent_atoms(candidate)
    result.r = np.array(pf.getR())
    result.g_obs = np.array(pf.getpdf_obs())
    result.g_calc = np.array(pf.getpdf_fit())
    result.npoints = len(result.r)


def refined_structure(pf, candidate: CandidateModel, lattice: dict[str, float]):
    """A copy of ``candidate.structure`` (its site labels) with ``pf``'s refined ``lattice``,
    coordinates and isotropic U (from U11, which the fit ties to U22 and U33)."""
    from diffpy.structure import Structure

    refined = Structure(candidate.structure)
    refined.lattice.setLatPar(*(lattice[name] for name in LATTICE_NAMES))
    for index, atom in enumerate(refined, start=1):
        atom.xyz[:] = [float(pf.getvar(getattr(pf, axis)(index))) for axis in "xyz"]
        atom.anisotropy = False
        atom.Uisoequiv = float(pf.getvar(pf.u11(index)))
    return refined


def independent_atoms(candidate: CandidateModel) -> list[int]:
    """The atoms of ``candidate.structure``'s asymmetric unit: each site's first atom and the
    atoms sharing its position (the other elements of a disordered site)."""
    structure, sites = candidate.structure, candidate.entry.sites
    return [i for i, site in enumerate(sites) if np.allclose(structure[i].xyz, structure[site].xyz)]


def physics_notes(result: FitResult) -> list[str]:
    """What is unphysical in a fit (empty when nothing is): a negative or too large
    (:data:`MAX_UISO`) Uiso, a scale ≤ 0, a negative delta2, a particle diameter below
    :data:`MIN_DIAMETER`, a parameter that is not a number, a Rw that is not finite. The
    refinement's message carries these notes; ``sgmine identify`` counts a fit as plausible only
    when there are none (:func:`sgmine_diffpy.rows.plausible`)."""
    notes = [f"negative Uiso at {label} (unphysical)" for label, u in result.uiso.items() if u < 0]
    notes += [f"Uiso {u:.3f} Å² at {label} (> {MAX_UISO:g}, unphysical)" for label, u in result.uiso.items() if u > MAX_UISO]
    named = [("scale", result.scale), ("delta2", result.delta2), ("particle diameter", result.spdiameter),
             *((f"Uiso at {label}", u) for label, u in result.uiso.items())]
    not_a_number = [name for name, value in named if value is not None and math.isnan(value)]
    if not_a_number:
        notes.append(f"not a number: {', '.join(not_a_number)}")
    if result.scale is not None and result.scale <= 0:
        notes.append("scale <= 0: the model does not match the data")
    if result.delta2 is not None and result.delta2 < 0:
        notes.append("negative delta2 (unphysical)")
    if result.spdiameter is not None and result.spdiameter < MIN_DIAMETER:
        notes.append(f"particle diameter {result.spdiameter:.1f} Å (< {MIN_DIAMETER:g} Å, unphysical)")
    if result.rw is None or not math.isfinite(result.rw):
        notes.append("Rw is not finite")
    return notes


def _failed(result: FitResult, message: str) -> FitResult:
    result.status, result.message = ERROR, message
    return result


class _pdffit_output:
    """Send pdffit2's progress chatter to ``sink`` for the duration of a ``with`` block."""

    def __init__(self, sink):
        self.sink = sink

    def __enter__(self):
        from diffpy.pdffit2 import redirect_stdout

        redirect_stdout(self.sink)
        return self.sink

    def __exit__(self, *exc):
        from diffpy.pdffit2 import redirect_stdout

        redirect_stdout(sys.stdout)
        return False


def sort_by_rw(results: Sequence[FitResult]) -> list[FitResult]:
    """Fitted results by ascending Rw, then the failed ones, each group in its given order."""
    return sorted(results, key=lambda r: (not r.ok or r.rw is None, r.rw if r.rw is not None else 0.0))


def refine_candidates(
    gr,
    structures,
    top_k: int = 3,
    model=None,
    qmax: float | None = None,
    qdamp: float | None = None,
    rmin: float = DEFAULT_RMIN,
    rmax: float = DEFAULT_RMAX,
    fit_qdamp: bool = False,
    *,
    refine_positions: bool = True,
) -> list[FitResult]:
    """Score ``gr``, pair its top-``top_k`` groups with the library structures of those groups
    (:func:`~sgmine_diffpy.candidates.candidate_models`) and refine each with pdffit2, the free
    atom coordinates too unless ``refine_positions`` is False (as ``sgmine refine`` does).

    ``gr`` is a PDF file, a :class:`sgmine.gr.Curve`, an ``(r, G)`` pair, or a
    :class:`sgmine.Prediction` already made by :func:`sgmine.predict` (then the model is not
    run again and the data are read from the prediction's file). Returns the results sorted
    by Rw, best first; failed fits last.
    """
    from sgmine_diffpy.candidates import candidate_models

    curve = measured_curve(gr)
    candidates = candidate_models(gr, structures, top_k=top_k, model=model)
    return fit_candidates(candidates, curve, qmax=qmax, qdamp=qdamp, rmin=rmin, rmax=rmax, fit_qdamp=fit_qdamp,
                          refine_positions=refine_positions)


def fit_candidates(candidates: Sequence[CandidateModel], curve: Curve, **options) -> list[FitResult]:
    """:func:`fit_candidate` on each candidate (same ``options``); results sorted by Rw."""
    return sort_by_rw([fit_candidate(c, curve, **options) for c in candidates])


def measured_curve(gr) -> Curve:
    """The full measured curve behind ``gr``: a path, Curve, ``(r, G)`` pair or Prediction."""
    from sgmine.prediction import Prediction

    if isinstance(gr, Curve):
        return gr
    if isinstance(gr, Prediction):
        if not os.path.isfile(gr.source):
            raise ValueError(f"{gr.source}: the prediction's data are not a file; pass the (r, G) curve instead")
        return read_gr(gr.source)
    if isinstance(gr, (str, os.PathLike)):
        return read_gr(gr)
    try:
        r, g = (np.asarray(a, dtype=np.float64).ravel() for a in gr)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expected a PDF file, a Curve, an (r, G) pair or a Prediction, got {type(gr).__name__}") from exc
    return Curve(r=r, g=g, source="<array>")


RESULT_COLUMNS = [
    "file", "cif", "space_group", "model_rank", "probability", "rw", "symbol",
    "scale", *LATTICE_NAMES, "uiso", "delta2", "qmax", "qdamp", "rmin", "rmax", "npoints", "status", "message",
]


def result_row(result: FitResult) -> list[str]:
    """One CSV row in :data:`RESULT_COLUMNS` order."""
    num = lambda v, digits: "" if v is None else f"{v:.{digits}f}"  # noqa: E731
    return [
        result.source, result.cif, "" if result.space_group is None else str(result.space_group),
        "" if result.model_rank is None else str(result.model_rank), num(result.probability, 4), num(result.rw, 4), result.symbol, num(result.scale, 4),
        *[num(result.lattice.get(n), 5) for n in LATTICE_NAMES],
        " ".join(f"{label}:{u:.5f}" for label, u in result.uiso.items()),
        num(result.delta2, 4), num(result.qmax, 3), num(result.qdamp, 4),
        num(result.rmin, 3), num(result.rmax, 3), str(result.npoints), result.status, result.message,
    ]


def to_csv(results: Sequence[FitResult]) -> str:
    """The results table as CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    writer.writerows(result_row(r) for r in results)
    return buffer.getvalue()
