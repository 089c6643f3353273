"""Results a refinement program opens: a fit's refined structure as CIF, and the fit as ``.fgr``.

``sgmine refine`` (and ``sgmine identify --structures``) hand each file's best fit over so that
PDFgui or a diffpy.srfit script starts where sgmine stopped:

- :func:`write_structure`: the refined structure as CIF, in its space group: the refined cell,
  the asymmetric unit with the site labels of the user's CIF (``Ti1``, ``O1``), the refined
  coordinates, isotropic U and occupancies, the elements and formula, and the group's
  symmetry operations in the setting the coordinates are in (spglib's standard setting, which
  diffpy.structure's ``GetSpaceGroup`` uses). diffpy.structure, PDFgui, VESTA and other CIF
  readers expand it back to the full cell.
- :func:`write_fit`: the fit as ``.fgr`` text, columns ``r Gobs Gcalc Gdiff`` (Å, Å⁻²) over
  the fit range, with a header in PDFgui's form (``stype``, ``qmax``, ``qdamp``, ``dscale``,
  ``fitrmin``, ``fitrmax``, then ``# metadata`` with Rw, delta2 and the cell; ``##### start
  data``). Every header line starts with ``#``, so ``numpy.loadtxt`` reads the columns, and
  PDFgui's and diffpy.srfit's ``PDFParser`` read r and Gobs as the data with the settings of the
  fit (the remaining columns change sign, so neither takes them for uncertainties).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np

from sgmine_diffpy.refine import LATTICE_NAMES, FitResult

#: The file names :func:`write_handover` gives: ``<name>.cif`` and ``<name>.fgr``.
STRUCTURE_SUFFIX, FIT_SUFFIX = ".cif", ".fgr"


def write_handover(result: FitResult, directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write ``result``'s refined structure and fit as ``<directory>/<name>.cif`` and ``.fgr``.

    Parameters
    ----------
    result
        A successful fit (:func:`sgmine_diffpy.refine.fit_candidate`).
    directory
        Where the files go; made (with its parents) where it does not exist.
    name
        The files' name without the suffix, e.g. ``Ni.gr.best-fit``.

    Returns
    -------
    tuple of Path
        The CIF and the ``.fgr`` written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cif, fgr = directory / f"{name}{STRUCTURE_SUFFIX}", directory / f"{name}{FIT_SUFFIX}"
    write_structure(cif, result)
    write_fit(fgr, result, structure=cif.name)
    return cif, fgr


def hand_over(result: FitResult, directory: str | os.PathLike, name: str, *, command: str) -> str:
    """Write ``result``'s refined structure and fit (:func:`write_handover`) and say so.

    Parameters
    ----------
    result
        The fit handed over.
    directory, name
        As :func:`write_handover` takes them.
    command
        The command that speaks, e.g. ``sgmine identify``.

    Returns
    -------
    str
        The line for stderr: the files written, or why they could not be (a structure that
        cannot be written never costs the command its table).
    """
    try:
        cif, fgr = write_handover(result, directory, name)
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return f"{command}: cannot write the refined structure of {result.source} to {directory}: {detail}"
    return f"{command}: refined structure in {cif}, fit in {fgr}"


def write_structure(path: str | os.PathLike, result: FitResult) -> None:
    """Write ``result``'s refined structure to the CIF file ``path`` (atomically; see the module
    text). Raises ValueError for a fit without a refined structure."""
    from sgmine.files import atomic_write

    atomic_write(path, structure_cif(result))


def write_fit(path: str | os.PathLike, result: FitResult, *, structure: str = "") -> None:
    """Write ``result``'s fit to the ``.fgr`` file ``path`` (atomically; see the module text).
    ``structure`` names the CIF written beside it, recorded in the header. Raises ValueError for
    a fit without curves."""
    from sgmine.files import atomic_write

    atomic_write(path, fit_text(result, structure=structure))


def structure_cif(result: FitResult) -> str:
    """The CIF text of ``result``'s refined structure, in its space group (module text)."""
    from diffpy.structure.spacegroups import GetSpaceGroup

    if not result.ok or result.structure is None:
        raise ValueError(f"{result.cif}: no refined structure ({result.message or 'the fit failed'})")
    structure = result.structure
    space_group = GetSpaceGroup(result.space_group)
    lattice = structure.lattice
    lines = [
        f"# {Path(result.cif).name or 'structure'} refined against {result.source} with pdffit2 (sgmine-diffpy):",
        f"# Rw {result.rw:.4f} over {result.rmin:g}-{result.rmax:g} A; scale {result.scale:.5g}; delta2 {result.delta2:.5g} A^2"
        + (f"; particle diameter {result.spdiameter:.4g} A" if result.spdiameter is not None else ""),
    ]
    lines += [f"# {note}" for note in result.message.split("; ") if note]
    lines += [
        f"data_{_block_name(result)}",
        "_audit_creation_method 'sgmine-diffpy: pdffit2 refinement'",
        f"_chemical_formula_sum '{formula_sum(structure)}'",
        *(f"_cell_length_{n} {getattr(lattice, n):.6f}" for n in ("a", "b", "c")),
        *(f"_cell_angle_{n} {getattr(lattice, n):.6f}" for n in ("alpha", "beta", "gamma")),
        f"_cell_volume {lattice.volume:.4f}",
        f"_symmetry_space_group_name_H-M '{result.symbol}'",
        f"_symmetry_Int_Tables_number {result.space_group}",
        "loop_",
        "_symmetry_equiv_pos_as_xyz",
        *(f"'{symmetry_operation(op.R, op.t)}'" for op in space_group.iter_symops()),
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
        "_atom_site_U_iso_or_equiv",
        "_atom_site_adp_type",
        "_atom_site_occupancy",
    ]
    for index in result.independent or range(len(structure)):
        atom = structure[index]
        xyz = " ".join(_fraction_coordinate(v) for v in atom.xyz)
        lines.append(f"{atom.label} {atom.element} {xyz} {atom.Uisoequiv:.6f} Uiso {atom.occupancy:.4f}")
    return "\n".join(lines) + "\n"


def fit_text(result: FitResult, *, structure: str = "") -> str:
    """The ``.fgr`` text of ``result``'s fit: columns r, Gobs, Gcalc, Gdiff (module text)."""
    if not result.ok or result.r is None or result.g_calc is None:
        raise ValueError(f"{result.cif}: no fitted curve ({result.message or 'the fit failed'})")
    kind = {"N": "stype=N  neutron scattering", "X": "stype=X  x-ray scattering"}.get(result.stype)
    header = [
        f"# written {time.strftime('%Y-%m-%d %H:%M:%S')} by sgmine-diffpy (pdffit2 fit)",
        "##### sgmine fit",
        *([f"# {kind}"] if kind else []),
        f"# qmax={result.qmax:.2f}" + ("   termination not modelled" if not result.qmax else ""),
        f"# qdamp={result.qdamp:g}",
        "# qbroad=0",
        f"# dscale={result.scale:g}",
        *([f"# spdiameter={result.spdiameter:g}"] if result.spdiameter is not None else []),
        f"# fitrmin={result.rmin:g}",
        f"# fitrmax={result.rmax:g}",
        "# metadata",
        f"# rw={result.rw:.6f}",
        f"# delta2={result.delta2:g}",
        *(f"# {name}={result.lattice[name]:.6f}" for name in LATTICE_NAMES if name in result.lattice),
        f"# space_group={result.space_group}",
        f"# data = {result.source}",
        f"# model = {result.cif} ({result.symbol})",
        *([f"# structure = {structure}"] if structure else []),
        *([f"# message = {result.message}"] if result.message else []),
        "##### start data",
        "#L r(A) Gobs Gcalc Gdiff",
    ]
    columns = np.column_stack([result.r, result.g_obs, result.g_calc, result.g_obs - result.g_calc])
    rows = [f"{r:.6g} {obs:.8g} {calc:.8g} {diff:.8g}" for r, obs, calc, diff in columns]
    return "\n".join(header + rows) + "\n"


def symmetry_operation(rotation, translation) -> str:
    """A symmetry operation as CIF writes it: ``'-y, x-y, z+1/3'``."""
    parts = []
    for row, shift in zip(np.asarray(rotation, dtype=float), np.asarray(translation, dtype=float)):
        text = ""
        for coefficient, axis in zip(row, "xyz"):
            if round(coefficient) != 0:
                text += ("-" if coefficient < 0 else "+") + (axis if abs(round(coefficient)) == 1 else f"{abs(round(coefficient))}{axis}")
        fraction = Fraction(float(shift) % 1.0).limit_denominator(12)
        if fraction:
            text += f"+{fraction}"
        parts.append(text.lstrip("+") or "0")
    return ", ".join(parts)


def formula_sum(structure) -> str:
    """The cell's contents as ``_chemical_formula_sum`` writes them (``Cd2 S2``; occupancies
    counted)."""
    counts: Counter = Counter()
    for atom in structure:
        counts[atom.element] += float(atom.occupancy)
    return " ".join(f"{element}{_amount(n)}" for element, n in sorted(counts.items()) if n > 0)


def _amount(n: float) -> str:
    return "" if abs(n - 1) < 1e-6 else f"{n:.4g}"


def _fraction_coordinate(value: float) -> str:
    text = f"{float(value) % 1.0:.6f}"
    return "0.000000" if text == "1.000000" else text


def _block_name(result: FitResult) -> str:
    stem = Path(result.cif).stem or "structure"
    return re.sub(r"[^\w.-]", "_", f"{stem}_refined")
