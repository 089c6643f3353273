"""``sgmine identify``: from a measured G(r) to refined candidate structures and a space-group
ranking.

For each file:

1. **Settings.** Radiation, Qmax and Qdamp from the header (:mod:`sgmine.header`: PDFgetX3,
   xPDFsuite, PDFgetX2, PDFgetN), else the options; Qmax, where neither gives it or the
   header's is far beyond what the data reach, from the data's own spectrum (:func:`file_settings`).
2. **Screen** every structure of the library (:mod:`sgmine_diffpy.screen`: the file's Qmax, Qdamp
   and radiation, a free scale, a ±10 % isotropic stretch and a spherical-particle envelope
   (bulk, or 64 to 16 Å across), Rw over the measured part of 1.5–30 Å).
3. **Choose** ``top`` structures to refine (:func:`_choose`): the best-screened, one per space
   group and formula, the first places going to the best-screened structure of each group the
   CNN gives at least :data:`CNN_RESERVE`; where the header names the sample's elements, only
   structures with at most that many elements.
   With the sample's composition, candidates made from its chemistry
   (:mod:`sgmine_diffpy.chemistry`) are screened and the best :data:`CHEMISTRY_TOP` refined
   first; the library's are refined only when none of those fits (:func:`_fits_chemistry`).
   The two best fitting structures' versions of higher symmetry (within 0.1–0.3 Å,
   :mod:`sgmine_diffpy.supergroups`) are refined after them (:func:`_supergroup_picks`).
4. **Refine** them with pdffit2 as ``sgmine refine`` does (scale, the lattice parameters the group
   leaves free, Uiso per site from :data:`FIT_START_UISO`, delta2; the particle diameter from
   the screen's where it found one), on a 0.05 Å grid, each in a process of its own (a pdffit2
   crash costs one row), on all cores.
5. **Rank** the space groups (:func:`combined_ranking`). A refined structure *fits* when it is
   plausible (positive scale, every Uiso within 0–0.1 Å², delta2 ≥ 0, particle diameter ≥ 8 Å:
   :func:`plausible`) and its Rw is at most :data:`GOOD_FIT_RW` = 0.25. The groups with a
   fitting structure come first; among them the CNN's probability decides, then the lower Rw
   (a structure and its ordered superstructures or subgroups all fit once one does, the
   latter a little better for their extra parameters, so Rw alone cannot choose between them).
   When no refined structure fits, the CNN's own ranking stands: the remaining groups follow
   by the CNN's probability (p_CNN, the calibrated probability of sgmine's model; 0 for groups
   outside its candidates), groups of equal probability (refined groups outside the CNN's
   candidates) by their best plausible Rw. The file's answer is the best plausible fit in
   the top group (:func:`best_structure`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sgmine.composition import SOURCES as COMPOSITION_SOURCES
from sgmine_diffpy.structlib import (
    DEFAULT_LIBRARY,
    StructureLibrary,
    StructureLibraryError,
    concatenate,
    entry_elements,
)
from sgmine_diffpy.supergroups import point_group_order, symmetry_at

#: Refined Rw at or below which a plausible structure counts as fitting the data and puts its
#: space group ahead of the CNN's ranking (:func:`combined_ranking`). 0.25 is the usual upper
#: end of an acceptable PDF refinement of a crystalline sample (a right structure refined
#: against measured data typically gives Rw 0.05–0.25; well above that the model misses
#: features of the data). Set a priori from that convention; it was NOT tuned on the measured
#: files, which serve for validation only (docs/identify/README.md).
GOOD_FIT_RW = 0.25
#: Structures refined per file by default.
DEFAULT_TOP = 10
#: Least-squares iterations per refinement stage (screened structures start close).
FIT_STEPS = 20
#: Atom pairs (from the atoms of the refined cell to every atom within the fit range) a
#: refinement may cost: pdffit2's time per iteration grows with them, so a large cell is fitted
#: over a shorter range (:func:`fit_rmax`). At 250,000, cells up to ~20 atoms (Ni, Si, CeO2,
#: the Pnma perovskites) keep the full 30 Å; the 76-atom Cc cell screened for mefenamic acid is
#: fitted to 20 Å, 3.5x faster (40 s -> 12 s on a loaded 2-core machine).
PAIR_BUDGET = 250_000
#: The shortest fit range (Å) :func:`fit_rmax` gives: medium-range order stays in the fit.
MIN_FIT_RMAX = 12.0
#: Uiso (Å²) every refinement starts from: broad peaks first. From 0.005 Å², pdffit2 slid into a
#: false minimum on Si.gr's diamond (Rw 0.24, delta2 7.1 Å², against 0.118 from 0.007 or 0.01 Å²)
#: and stalled (Rw 0.99) or crashed on adamantine superstructures that fit from 0.01 Å².
FIT_START_UISO = 0.01
RADIATION_NAMES = {"xray": "xray", "x": "xray", "x-ray": "xray", "neutron": "neutron", "n": "neutron"}

COLUMNS = ["file", "screen_rank", "structure_id", "formula", "space_group", "symbol", "rw_screen", "rw",
           "a", "b", "c", "alpha", "beta", "gamma", "cnn_probability", "source", "status", "message"]
SUMMARY_COLUMNS = ["file", "status", "radiation", "qmax", "best_structure", "best_formula", "best_space_group",
                   "best_symbol", "best_rw", "cnn_top", "ranking", "screen_s", "total_s", "message",
                   "composition", "composition_source"]


@dataclass
class IdentifyRow:
    """One refined library structure (or, with no structure, an error row for the file)."""

    file: str
    rank: int | None = None
    structure_id: str = ""
    formula: str = ""
    space_group: int | None = None
    symbol: str = ""
    rw_screen: float | None = None
    rw: float | None = None
    lattice: dict = field(default_factory=dict)
    cnn_probability: float | None = None
    source: str = ""
    status: str = "ok"
    message: str = ""
    fit: object = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self) -> list[str]:
        num = lambda v, d: "" if v is None or not math.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
        lat = [num(self.lattice.get(k), 5) for k in ("a", "b", "c", "alpha", "beta", "gamma")]
        return [self.file, "" if self.rank is None else str(self.rank), self.structure_id, self.formula,
                "" if self.space_group is None else str(self.space_group), self.symbol, num(self.rw_screen, 4),
                num(self.rw, 4), *lat, num(self.cnn_probability, 4), self.source, self.status, self.message]


@dataclass
class FileSummary:
    """What one file came to: the best structure and the combined space-group ranking."""

    file: str
    status: str = "ok"
    radiation: str = ""
    qmax: float | None = None
    best: IdentifyRow | None = None
    cnn: list = field(default_factory=list)  # [(space_group, symbol, probability)], best first
    ranking: list = field(default_factory=list)  # [(space_group, symbol, rw | None, p_cnn)], best first
    screen_s: float = 0.0
    total_s: float = 0.0
    message: str = ""
    composition: str = ""  # the formula used, normalised
    composition_source: str = "none"  # table, option, header or none

    @property
    def answer(self) -> IdentifyRow | None:
        """The structure the summary names as the file's answer (its ``best_*`` columns): the
        best fit where it fits (:func:`plausible`, Rw ≤ :data:`GOOD_FIT_RW`), None when nothing
        fits (``best`` is then only the closest refinement; the message says nothing fits)."""
        b = self.best
        return b if b is not None and plausible(b) and b.rw <= GOOD_FIT_RW else None

    def row(self) -> list[str]:
        b = self.answer
        cnn = f"{self.cnn[0][0]} {self.cnn[0][1]} ({self.cnn[0][2]:.3f})" if self.cnn else ""
        rank = "; ".join(f"{g} {s} (Rw {'-' if rw is None else format(rw, '.3f')}, p {p:.3f})" for g, s, rw, p in self.ranking[:5])
        return [self.file, self.status, self.radiation, "" if self.qmax is None else f"{self.qmax:g}",
                b.structure_id if b else "", b.formula if b else "", "" if b is None else str(b.space_group),
                b.symbol if b else "", "" if b is None or b.rw is None else f"{b.rw:.4f}", cnn, rank,
                f"{self.screen_s:.2f}", f"{self.total_s:.2f}", self.message, self.composition, self.composition_source]


def plausible(row: IdentifyRow) -> bool:
    """A fit whose parameters are physical: positive scale, every Uiso in 0–0.1 Å², delta2 ≥ 0,
    a particle diameter (if refined) of at least 8 Å: what ``sgmine refine`` flags in its
    message. A structure that fits only with a vanishing (Uiso ≫ 0.1) or negative atom is not
    the sample's structure, however low its Rw. One rule with the refinement's own notes
    (:func:`~sgmine_diffpy.refine.physics_notes`): plausible means none of them."""
    from sgmine_diffpy.refine import physics_notes

    fit = row.fit
    if not row.ok or row.rw is None or not math.isfinite(row.rw) or fit is None or fit.scale is None:
        return False
    return not physics_notes(fit)


def combined_ranking(rows: list[IdentifyRow], cnn: list[tuple[int, str, float]], good_fit: float = GOOD_FIT_RW,
                     within: str = "cnn", elements: set[str] | None = None) -> list[tuple[int, str, float | None, float]]:
    """The final space-group ranking, best first, as ``[(space_group, symbol, rw, p_cnn)]``
    (``rw``: the group's best plausible refined Rw, None without one; ``p_cnn``: the CNN's
    probability, 0 for groups outside its candidates). See the module text:

    1. groups with a plausible fit (:func:`plausible`) of Rw ≤ ``good_fit``, by the CNN's
       probability, then by Rw (``within="rw"``: by Rw, then by probability);
    2. every other group by the CNN's probability, then by its best plausible Rw (none last).

    So where nothing fits, the CNN's ranking stands; a refinement moves a group ahead of it
    only by fitting the data.

    ``within="fit"`` (what identify uses when it knows the sample's composition) orders the
    fitting groups by :func:`fit_order` instead: the best fit first, whatever its group, unless
    another group fits about as well (:data:`TIE_RW`), where the one whose structure has the
    sample's elements (``elements``), then the higher symmetry, then the CNN decides."""
    if within not in ("cnn", "rw", "fit"):
        raise ValueError(f"within must be 'cnn', 'rw' or 'fit', not {within!r}")
    if within == "fit":
        return fit_order(rows, cnn, good_fit=good_fit, elements=elements)
    best: dict[int, tuple[float, str]] = {}
    for r in rows:
        if plausible(r) and (r.space_group not in best or r.rw < best[r.space_group][0]):
            best[r.space_group] = (r.rw, r.symbol)
    prob = {g: p for g, _, p in cnn}
    symbols = {g: s for g, s, _ in cnn}

    def key(g: int):
        rw, p = best[g][0] if g in best else math.inf, prob.get(g, 0.0)
        if rw <= good_fit:
            return (0, -p, rw, g) if within == "cnn" else (0, rw, -p, g)
        return (1, -p, rw, g)

    return [(g, best[g][1] if g in best else symbols.get(g, ""), best[g][0] if g in best else None, prob.get(g, 0.0))
            for g in sorted(set(best) | set(prob), key=key)]


#: Two fits whose Rw differ by at most this count as equally good (:func:`fit_order`): a
#: structure and its ordered superstructure or subgroup description refine to within about
#: 0.01 of each other (Si.gr: diamond 0.084, Zn3CdSe4-type Amm2 0.077), their extra parameters
#: buying the difference. Set from that, not tuned on the measured files.
TIE_RW = 0.02


def row_elements(row: IdentifyRow) -> set[str]:
    """The elements of a row's formula (empty when it does not parse)."""
    from sgmine.composition import CompositionError, parse_formula

    try:
        return set(parse_formula(row.formula))
    except CompositionError:
        return set()


#: Distance tolerance (Å) with which a refined structure's own symmetry is found
#: (:func:`lift_symmetry`): refined coordinates and cell lengths scatter by a few 0.01 Å.
LIFT_SYMPREC = 0.05


def lift_symmetry(row: IdentifyRow) -> None:
    """Where a refined structure has higher symmetry than the group it was refined in (an
    fcc metal refined in its I4/mmm description, a tetragonal crystal in an orthorhombic
    subgroup whose a and b refined equal), give the row that group and say so: the
    structure, not its description, is the answer."""
    structure = getattr(row.fit, "structure", None)
    if not row.ok or structure is None or row.space_group is None:
        return
    found = symmetry_at(structure, LIFT_SYMPREC)
    if found is None or found[0] == row.space_group or point_group_order(found[0]) <= point_group_order(row.space_group):
        return
    note = f"the refined structure has {found[1]} symmetry within {LIFT_SYMPREC:g} Å (refined in {row.symbol})"
    row.space_group, row.symbol = found
    row.message = "; ".join(m for m in (note, row.message) if m)


def fit_order(rows: list[IdentifyRow], cnn: list[tuple[int, str, float]], *, good_fit: float = GOOD_FIT_RW,
              elements: set[str] | None = None) -> list[tuple[int, str, float | None, float]]:
    """Space groups best first as ``[(space_group, symbol, rw, p_cnn)]``: the groups with a
    plausible fit of Rw ≤ ``good_fit`` in order of fit, then the rest by the CNN's probability.

    With the sample's ``elements``, the groups whose fitting structure is made of exactly those
    elements come first (a structure of the sample's chemistry that fits is the answer; other
    chemistry fits only when none of it does: a second phase, a wrong composition), then the
    other fitting groups. Within each part, the candidates for the next place are the groups
    whose best Rw is within :data:`TIE_RW` of the best remaining one; of them the one of higher
    symmetry (:func:`point_group_order`: fcc over its I4/mmm description, diamond over its
    ordered Amm2 superstructure) comes first, then the CNN's more probable, then the lower Rw."""
    prob = {g: p for g, _, p in cnn}
    symbols = {g: s for g, s, _ in cnn}

    def best_rows(keep) -> dict[int, IdentifyRow]:
        found: dict[int, IdentifyRow] = {}
        for r in rows:
            if plausible(r) and keep(r) and (r.space_group not in found or r.rw < found[r.space_group].rw):
                found[r.space_group] = r
        return found

    def ordered(best: dict[int, IdentifyRow], groups: set[int]) -> list[int]:
        order: list[int] = []
        groups = set(groups)
        while groups:
            lowest = min(best[g].rw for g in groups)
            tied = [g for g in groups if best[g].rw <= lowest + TIE_RW]
            pick = min(tied, key=lambda g: (-point_group_order(g), -prob.get(g, 0.0), best[g].rw, g))
            order.append(pick)
            groups.discard(pick)
        return order

    best = best_rows(lambda r: True)
    chemistry = best_rows(lambda r: row_elements(r) == set(elements)) if elements else {}
    chem_fitting = {g for g, r in chemistry.items() if r.rw <= good_fit}
    order = ordered(chemistry, chem_fitting)
    order += ordered(best, {g for g, r in best.items() if r.rw <= good_fit} - chem_fitting)
    rest = sorted((set(best) | set(prob)) - set(order),
                  key=lambda g: (-prob.get(g, 0.0), best[g].rw if g in best else math.inf, g))
    shown = {g: (chemistry[g] if g in chem_fitting else best[g]) for g in best}
    return [(g, shown[g].symbol if g in shown else symbols.get(g, ""), shown[g].rw if g in shown else None,
             prob.get(g, 0.0)) for g in order + rest]


class ScreeningLibrary:
    """A structure library with its screening curves (per radiation, computed once and cached)."""

    def __init__(self, structures: StructureLibrary, name: str, skipped: list[str] | None = None):
        self.structures = structures
        self.name = name
        self.skipped = skipped or []
        self._prepared: dict = {}
        self._species: np.ndarray | None = None
        self._compounds: StructureLibrary | None = None
        self._held_out_of: ScreeningLibrary | None = None
        self._usable: np.ndarray | None = None

    def hold_out(self, systems) -> "ScreeningLibrary":
        """This library without every structure of the chemical ``systems`` (sets of element
        symbols), in the screen and as a source of chemistry candidates: what a compound that
        no database holds meets (the leave-compound-out evaluation). The screening curves are
        this library's, masked."""
        from sgmine_diffpy.structlib import subset

        systems = {frozenset(s) for s in systems}

        def keep(lib: StructureLibrary) -> np.ndarray:
            return np.array([frozenset(entry_elements(lib, i)) not in systems for i in range(len(lib))], dtype=bool)

        held = ScreeningLibrary(self.structures, f"{self.name} without {len(systems)} systems", self.skipped)
        held._held_out_of = self
        held._usable = keep(self.structures)
        compounds = self.compounds()
        held._compounds = subset(compounds, np.flatnonzero(keep(compounds)))
        return held

    def compounds(self) -> StructureLibrary:
        """The library that chemistry candidates come from (:mod:`sgmine_diffpy.chemistry`):
        the shipped compound library (every redistributable structure, as compounds and as
        types) when it is installed, and a user library's own structures first."""
        if self._compounds is None:
            from sgmine_diffpy.structlib import COMPOUND_LIBRARY

            shipped = StructureLibrary.load(COMPOUND_LIBRARY) if COMPOUND_LIBRARY.is_file() else None
            if self.name == "default":
                self._compounds = shipped or self.structures
            else:
                self._compounds = self.structures if shipped is None else concatenate([self.structures, shipped])
        return self._compounds

    def species(self) -> np.ndarray:
        """Per structure, how many different elements it has."""
        if self._species is None:
            lib = self.structures
            self._species = np.array([len(np.unique(lib.numbers[lib.offsets[i]:lib.offsets[i + 1]])) for i in range(len(lib))])
        return self._species

    def curves(self, radiation: str, say=None) -> np.ndarray:
        from sgmine_diffpy.screen import library_curves

        return library_curves(self.structures, radiation, say=say)

    def prepared(self, radiation: str, qmax: float | None, qdamp: float | None, say=None):
        """``(matrix, valid rows)`` for these settings (kept for files that share them)."""
        from sgmine_diffpy.screen import prepare

        if self._held_out_of is not None:
            matrix, valid = self._held_out_of.prepared(radiation, qmax, qdamp, say)
            return matrix, valid & self._usable
        key = (radiation, qmax, qdamp)
        if key not in self._prepared:
            curves = self.curves(radiation, say)
            valid = np.isfinite(np.asarray(curves[:, -1]))
            self._prepared = {key: (prepare(curves, qmax=qmax, qdamp=qdamp), valid)}  # keep one: memory
        return self._prepared[key]


def open_library(spec: str | os.PathLike = "default", *, say=None) -> ScreeningLibrary:
    """``"default"`` (the shipped library), a folder of CIF files (read once, then cached), a
    CIF table (``.csv``/``.csv.gz``) or a library file (``.npz``). Raises StructureLibraryError."""
    from sgmine_diffpy.screen import cache_dir
    from sgmine_diffpy.structlib import read_table

    if str(spec) == "default":
        return ScreeningLibrary(StructureLibrary.load(DEFAULT_LIBRARY), "default")
    path = Path(spec)
    if path.is_dir():
        return _cif_folder(path, cache_dir(), say)
    if not path.is_file():
        raise StructureLibraryError(f"--library {path}: no such file or folder (give 'default', a CIF folder, a CIF table or a .npz library)")
    if path.suffix == ".npz":
        return ScreeningLibrary(StructureLibrary.load(path), str(path))
    if path.name.endswith((".csv", ".csv.gz")):
        cells, skipped, _ = read_table(path)
        if not cells:
            raise StructureLibraryError(f"{path}: no usable structures ({len(skipped)} skipped)")
        return ScreeningLibrary(StructureLibrary.from_cells(cells), str(path), skipped)
    raise StructureLibraryError(f"--library {path}: give 'default', a CIF folder, a CIF table (.csv, .csv.gz) or a .npz library")


def _cif_folder(folder: Path, cache: Path, say) -> ScreeningLibrary:
    from sgmine_diffpy.structlib import Cell, cell_from_cif

    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".cif")
    if not paths:
        raise StructureLibraryError(f"{folder}: no .cif files")
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cached = cache / f"cifs-{h.hexdigest()[:16]}.npz"
    skipped_file = cached.with_suffix(".skipped.txt")
    if cached.is_file():
        try:
            skipped = skipped_file.read_text(encoding="utf-8").splitlines() if skipped_file.is_file() else []
            return ScreeningLibrary(StructureLibrary.load(cached), str(folder), skipped)
        except StructureLibraryError:
            pass
    cells: list[Cell] = []
    skipped = []
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
            cells.append(cell_from_cif(str(p.relative_to(folder).with_suffix("")), f"cif:{p}", text))
        except (StructureLibraryError, OSError) as exc:
            skipped.append(f"{p}: {exc}" if isinstance(exc, OSError) else str(exc))
    if not cells:
        raise StructureLibraryError(f"{folder}: none of {len(paths)} CIF files could be used")
    library = StructureLibrary.from_cells(cells)
    try:
        from sgmine.files import atomic_write

        cache.mkdir(parents=True, exist_ok=True)
        library.save(cached)
        atomic_write(skipped_file, "\n".join(skipped))
    except OSError:
        pass
    return ScreeningLibrary(library, str(folder), skipped)


# --------------------------------------------------------------------------- one file


#: A header Qmax above this multiple of the data's own (:func:`~sgmine_diffpy.screen.estimate_qmax`)
#: is a range asked for, not reached (PDFgetX2 writes its S(Q) range, e.g. ``qmax=100``).
QMAX_HEADER_SLACK = 1.5


def file_settings(curve, qmax: float | None, qdamp: float | None, radiation: str | None):
    """``(radiation name, qmax, qdamp, notes)``: the header's where present
    (:attr:`sgmine.gr.Curve.header`, the reader of every command), else the options; Qmax,
    where neither gives it (or the header's is far beyond what the data reach), from the data's
    own spectrum."""
    from sgmine_diffpy.screen import estimate_qmax

    notes = []
    header = curve.header
    rad = header.radiation or radiation or "xray"
    hq = header.qmax
    q = hq if hq is not None else qmax
    if q is None or hq is not None:
        estimate = estimate_qmax(curve.r, curve.g)
        if q is None and estimate is not None:
            q = round(estimate, 1)
            notes.append(f"Qmax {q:g} estimated from the data")
        elif q is not None and estimate is not None and q > QMAX_HEADER_SLACK * estimate:
            notes.append(f"header Qmax {q:g} is beyond the data's ({estimate:.1f}): Qmax {estimate:.1f} used")
            q = round(estimate, 1)
    return rad, q, header.qdamp if header.qdamp is not None else qdamp, notes


def identify_file(path: str, library: ScreeningLibrary, *, top: int = DEFAULT_TOP, model=None,
                  qmax: float | None = None, qdamp: float | None = None, radiation: str | None = None,
                  rmin: float = 1.5, rmax: float = 30.0, say=None, use_elements: bool = True,
                  composition: str | None = None, compositions: dict[str, str] | None = None,
                  workers: int | None = None) -> tuple[list[IdentifyRow], FileSummary]:
    """Screen, refine and rank for one file (see the module text). Never raises for a bad file:
    the rows then hold one error row and the summary says why. ``use_elements=False`` ignores
    the composition and elements the header names (:func:`_choose`). ``composition`` (every
    file) and ``compositions`` (a table: file name → formula, :func:`sgmine.composition.read_composition_table`)
    give the sample's composition; with one, candidates made from the chemistry
    (:mod:`sgmine_diffpy.chemistry`) are screened and refined too, and the ranking follows the
    fit (:func:`fit_order`). ``workers``: refinements run at once (default: one per CPU core;
    fewer where several files are identified in parallel, :mod:`sgmine_diffpy.batch`)."""
    from sgmine.composition import CompositionError
    from sgmine.gr import ReadError, read_gr
    from sgmine.plausibility import check_file
    from sgmine_diffpy.screen import screen

    start = time.perf_counter()
    summary = FileSummary(path)
    try:
        curve = read_gr(path)
    except (ReadError, OSError, ValueError) as exc:
        return _failed(summary, str(exc), start)
    refusal = check_file(curve, rmax=rmax).refusal  # the checks of scan and refine
    if refusal is not None:
        return _failed(summary, f"{path}: {refusal}", start)
    summary.cnn, cnn_note = _cnn(path, model)
    rad, q, d, notes = file_settings(curve, qmax, qdamp, radiation)
    summary.radiation, summary.qmax = rad, q
    if q is not None:
        curve.metadata = {k: v for k, v in curve.metadata.items() if str(k).lstrip("#").strip().lower() != "qmax"} | {"qmax": q}
    try:
        comp, elements = sample_composition(path, curve, option=composition, table=compositions, use_header=use_elements)
    except CompositionError as exc:
        return _failed(summary, str(exc), start)
    if comp is not None:
        summary.composition, summary.composition_source = comp.formula, comp.source
    try:
        library.curves(rad, say)  # computed once per machine (minutes), then read from the cache: not screening time
        t0 = time.perf_counter()
        matrix, valid = library.prepared(rad, q, d, say)
        result = screen(curve.r, curve.g, matrix, rmin=rmin, rmax=rmax, valid=valid,
                        curves=library.curves(rad), qmax=q, qdamp=d)
        summary.screen_s = time.perf_counter() - t0
    except ValueError as exc:
        return _failed(summary, f"{path}: cannot screen: {exc}", start)
    if rad == "neutron" and "radiation" not in {k.lower() for k in curve.metadata}:
        curve.metadata["radiation"] = "neutron"  # the refinement reads the radiation from the header
    majority = _majority_elements(comp) if comp is not None else None
    rows: list[IdentifyRow] = []
    chemistry_picks: list[tuple] = []
    if comp is not None:
        t0 = time.perf_counter()
        found = _chemistry(library, comp, curve, rad, q, d, rmin, rmax)
        summary.screen_s += time.perf_counter() - t0
        if found is not None:
            chem_library, chem_result, _ = found
            chemistry_picks = [(chem_library, i, chem_result, True)
                               for i in _choose_chemistry(chem_library, chem_result, CHEMISTRY_TOP)]
            rows = _refine_all(path, chemistry_picks, curve, summary.cnn, q, d, rmin, rmax, say, workers=workers,
                               first_rank=len(rows) + 1)
    if not any(_fits_chemistry(r, majority) for r in rows):
        # the library's best-screened, unless a structure of the sample's chemistry already fits:
        # it then leads the ranking whatever else fits (:func:`fit_order`)
        chosen = _choose(library, result, max(top - len(chemistry_picks), CNN_GROUPS), elements, summary.cnn)
        rows += _refine_all(path, [(library.structures, i, result, False) for i in chosen], curve, summary.cnn,
                            q, d, rmin, rmax, say, workers=workers, first_rank=len(rows) + 1)
    elif say:
        say(f"sgmine identify: {path}: a structure of the sample's chemistry fits; the library's are not refined")
    for row in rows:
        lift_symmetry(row)
    more = _supergroup_picks(rows, majority)
    if more:
        lifted = _refine_all(path, more, curve, summary.cnn, q, d, rmin, rmax, say, workers=workers,
                             first_rank=len(rows) + 1)
        for row in lifted:
            lift_symmetry(row)
        rows += lifted
    rows.sort(key=lambda r: (not r.ok or r.rw is None, r.rw if r.rw is not None else 0.0, r.rank))
    if comp is not None:
        summary.ranking = combined_ranking(rows, summary.cnn, within="fit", elements=majority)
    else:
        summary.ranking = combined_ranking(rows, summary.cnn)
    summary.best = best_structure(rows, summary.ranking, majority)
    notes = ([cnn_note] if cnn_note else []) + notes
    if comp is not None:
        notes.append(f"composition {comp.formula} (from {COMPOSITION_SOURCES[comp.source]})")
        if not any(_fits_chemistry(r, majority) for r in rows):
            notes.append(f"nothing made of {' '.join(sorted(majority))} fits: the answer is whatever fits "
                         "(a second phase or another composition?)")
    elif elements is not None:
        notes.append(f"refined structures of at most {len(elements)} element{'s' if len(elements) > 1 else ''} "
                     f"(the header names {' '.join(sorted(elements))})")
    if summary.best is None:
        summary.status = "error"
        notes.append("no refinement succeeded")
    elif not (plausible(summary.best) and summary.best.rw <= GOOD_FIT_RW):
        notes.append(f"no refined structure fits (plausible with Rw ≤ {GOOD_FIT_RW:g}): the ranking is the CNN's")
    summary.message = "; ".join(notes)
    summary.total_s = time.perf_counter() - start
    return rows, summary


#: Candidates made from the composition refined per file (the best-screened, one per space
#: group and formula); the library's best-screened fill the rest of ``top``.
CHEMISTRY_TOP = 5


def sample_composition(path: str, curve, *, option: str | None, table: dict[str, str] | None, use_header: bool = True):
    """``(composition or None, elements or None)`` of one file: the table's, the option's or the
    header's composition (:func:`sgmine.composition.composition_for`; raises its
    CompositionError, naming the file). A header element table without amounts (``C H O N``)
    gives only the elements, which limit the library structures refined (:func:`_choose`)."""
    from sgmine.composition import composition_for
    from sgmine_diffpy.refine import header_elements

    header = curve.header.composition if use_header else None
    header_text, elements = None, None
    if header is not None:
        if any(ch.isdigit() for ch in header.text) or header.source == "composition entry":
            header_text = header.text
        else:
            elements = header_elements(curve)
    comp = composition_for(path, table=table, option=option, header=header_text)
    if comp is not None:
        elements = set(comp.elements)
    return comp, elements


def _fits_chemistry(row: IdentifyRow, majority: set[str] | None) -> bool:
    """Whether ``row`` is a plausible fit (Rw ≤ :data:`GOOD_FIT_RW`) made of the sample's
    ``majority`` elements (:func:`_majority_elements`; None: no composition, never)."""
    return majority is not None and plausible(row) and row.rw <= GOOD_FIT_RW and row_elements(row) == majority


#: Fitting structures (the best of each group, best first) whose higher-symmetry versions
#: (:func:`sgmine_diffpy.supergroups.higher_symmetry_cells`) are refined, and how many such
#: versions at most per file.
SUPERGROUP_ROWS, SUPERGROUP_MAX = 2, 3


def _supergroup_picks(rows: list[IdentifyRow], majority: set[str] | None) -> list[tuple]:
    """Refinement picks ``(library, index, result, positions)`` of the higher-symmetry versions
    of the best :data:`SUPERGROUP_ROWS` fitting structures (of the sample's ``majority``
    elements where a composition is known): a subgroup description that refined better than
    its parent's own candidate is given the parent's symmetry back and refined in it, with its
    coordinates, and the particle diameter it refined to."""
    from sgmine_diffpy.screen import ScreenResult
    from sgmine_diffpy.supergroups import higher_symmetry_cells

    best: dict[int, IdentifyRow] = {}
    for r in rows:
        if (plausible(r) and r.rw <= GOOD_FIT_RW and (majority is None or row_elements(r) == majority)
                and getattr(r.fit, "structure", None) is not None
                and (r.space_group not in best or r.rw < best[r.space_group].rw)):
            best[r.space_group] = r
    cells, diameters = [], []
    for r in sorted(best.values(), key=lambda r: r.rw)[:SUPERGROUP_ROWS]:
        for cell, _ in higher_symmetry_cells(r.fit.structure, r.space_group, structure_id=r.structure_id):
            if cell.structure_id not in {c.structure_id for c in cells} and len(cells) < SUPERGROUP_MAX:
                cells.append(cell)
                diameters.append(r.fit.spdiameter if r.fit.spdiameter is not None else math.inf)
    if not cells:
        return []
    library = StructureLibrary.from_cells(cells)
    n = len(cells)
    result = ScreenResult(np.full(n, np.nan), np.ones(n), 0, (0.0, 0.0), np.asarray(diameters, float))
    return [(library, i, result, True) for i in range(n)]


def _majority_elements(comp) -> set[str]:
    """The elements on the sample's parent sites (dopants merged: :func:`~sgmine_diffpy.chemistry.site_groups`)."""
    from sgmine_diffpy.chemistry import site_groups

    return {g.majority for g in site_groups(comp)}


def _chemistry(library: ScreeningLibrary, comp, curve, rad, q, d, rmin, rmax):
    """Candidates from the composition, screened (:func:`~sgmine_diffpy.chemistry.screen_chemistry`)."""
    from sgmine_diffpy.chemistry import chemistry_candidates, screen_chemistry

    candidates = chemistry_candidates(library.compounds(), comp)
    return screen_chemistry(candidates, curve.r, curve.g, radiation=rad, qmax=q, qdamp=d, rmin=rmin, rmax=rmax)


def _choose_chemistry(library: StructureLibrary, result, n: int) -> list[int]:
    """The ``n`` best-screened chemistry candidates, one per (space group, formula)."""
    chosen, seen = [], set()
    for i in result.best(len(library)):
        key = (int(library.space_groups[i]), str(library.formulas[i]))
        if math.isfinite(result.rw[i]) and key not in seen:
            seen.add(key)
            chosen.append(int(i))
        if len(chosen) == n:
            break
    return chosen


#: :func:`_choose` refines the best-screened structure of each group to which the CNN gives at
#: least this probability (at most :data:`CNN_GROUPS` groups), whatever its screening rank.
CNN_RESERVE, CNN_GROUPS = 0.1, 3


def _choose(library: ScreeningLibrary, result, top: int, elements: set[str] | None, cnn=()) -> list[int]:
    """The structures to refine: the best-screened ``top``, one per (space group, formula), of
    which the first places go to the best-screened structure of each group the CNN finds
    likely (:data:`CNN_RESERVE`): the combined ranking can credit a group only through a
    refined structure, and a library holds many ordered superstructures of a simple lattice
    (adamantine derivatives of diamond, ordered fcc alloys) that screen slightly better than
    the lattice itself because their extra distinct atoms broaden the peaks. With the sample's
    elements known, only structures with at most as many elements are refined: a structure that
    orders more kinds of atoms than the sample has cannot be the sample's."""
    lib = library.structures
    most = len(elements) if elements else None
    species = library.species()
    order = [int(i) for i in result.best(len(lib))
             if math.isfinite(result.rw[i]) and (most is None or species[i] <= most)]
    chosen, seen = [], set()

    def take(i):
        key = (int(lib.space_groups[i]), str(lib.formulas[i]))
        if key not in seen and len(chosen) < top:
            seen.add(key)
            chosen.append(i)

    likely = [g for g, _, p in sorted(cnn, key=lambda c: -c[2]) if p >= CNN_RESERVE][:CNN_GROUPS]
    for group in likely:
        first = next((i for i in order if int(lib.space_groups[i]) == group), None)
        if first is not None:
            take(first)
    for i in order:
        if len(chosen) == top:
            break
        take(i)
    return sorted(chosen, key=lambda i: result.rw[i])


def _refine_all(path, picks: list[tuple], curve, cnn, q, d, rmin, rmax, say, *, workers: int | None = None,
                first_rank: int = 1) -> list[IdentifyRow]:
    """Refine the picked structures ``(library, index, screen result, positions)``, ``workers``
    at a time (default: one per CPU core; one pdffit2 fit per process: :func:`_isolated`), on
    the screening grid (:func:`fit_grid`); with ``positions``, the free atom coordinates too
    (candidates made from the chemistry carry their template's positions)."""
    prob = {g: p for g, _, p in cnn}
    fit_curve = fit_grid(curve)
    tasks = []
    for rank, (lib, i, result, positions) in enumerate(picks, start=first_rank):
        row = IdentifyRow(path, rank, str(lib.ids[i]), str(lib.formulas[i]), int(lib.space_groups[i]), str(lib.symbols[i]),
                          float(result.rw[i]), cnn_probability=prob.get(int(lib.space_groups[i]), 0.0), source=str(lib.sources[i]))
        diameter = None if result.diameter is None or math.isinf(result.diameter[i]) else float(result.diameter[i])
        tasks.append((row, lib.structure(i), float(result.stretch[i]), fit_curve, q, d, rmin, rmax, diameter, positions))
    rows = []
    for row, seconds in _isolated(tasks, max(1, min(len(tasks), workers or os.cpu_count() or 1))):
        if say:
            outcome = f"Rw {row.rw:.4f}" if row.ok else f"failed: {row.message}"
            say(f"sgmine identify: {path} × {row.structure_id} {row.formula} ({row.symbol}, screen Rw {row.rw_screen:.3f}): "
                f"{outcome} ({seconds:.1f} s)")
        rows.append(row)
    return rows


#: ADPs of a candidate made from the chemistry or symmetrised (a template of the sample, with
#: its coordinates refined): one Uiso per element (``refine.fit_candidate``'s ``adp_per``).
TEMPLATE_ADP = "element"


#: Seconds a refinement may take before it is stopped (its row then says so).
FIT_TIMEOUT = 600.0


def _isolated(tasks: list, workers: int):
    """``(row, seconds)`` of each task (:func:`_refine_task`) in the tasks' order, each run in a
    process of its own, ``workers`` at a time: pdffit2 crashes on some structures (a segfault
    in its C++ core, seen on a screened candidate of Si.gr), which then costs that row (status
    error, the signal in its message), not the batch; a fit past :data:`FIT_TIMEOUT` is stopped."""
    import multiprocessing
    import sys
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    waiting = list(enumerate(tasks))
    running: dict = {}
    done: dict = {}
    emitted = 0
    while waiting or running:
        while waiting and len(running) < workers:
            index, task = waiting.pop(0)
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_refine_child, args=(send, task), daemon=True)
            process.start()
            send.close()
            running[index] = (process, receive, time.perf_counter())
        ready = wait([conn for _, conn, _ in running.values()], timeout=1.0)
        for index, (process, conn, started) in list(running.items()):
            seconds = time.perf_counter() - started
            if conn in ready:
                try:
                    done[index] = conn.recv()
                except (EOFError, OSError):
                    process.join(5)
                    code = process.exitcode
                    row = tasks[index][0]
                    row.status = "error"
                    row.message = (f"refinement crashed (pdffit2 killed by signal {-code})" if code is not None and code < 0
                                   else f"refinement process ended without a result (exit status {code})")
                    done[index] = (row, seconds)
            elif seconds > FIT_TIMEOUT:
                process.kill()
                row = tasks[index][0]
                row.status, row.message = "error", f"refinement stopped after {FIT_TIMEOUT:g} s"
                done[index] = (row, seconds)
            else:
                continue
            conn.close()
            process.join(5)
            del running[index]
        while emitted in done:
            yield done.pop(emitted)
            emitted += 1


def _refine_child(conn, task) -> None:
    try:
        conn.send(_refine_task(task))
    finally:
        conn.close()


#: The refinement's r step (Å) at most: the screen's. Ni.gr's 0.01 Å points fitted on 0.05 Å give
#: the same Rw to 1e-4 in a fifth of the time (peaks are ≥ 0.1 Å wide; Nyquist at Qmax 30 is 0.1 Å).
FIT_STEP = 0.05


def fit_grid(curve):
    """``curve`` resampled to :data:`FIT_STEP` where its points are closer (else itself)."""
    from sgmine.gr import Curve
    from sgmine_diffpy.screen import step_grid

    r, g = np.asarray(curve.r, float), np.asarray(curve.g, float)
    if len(r) < 2 or np.median(np.diff(r)) >= FIT_STEP * 0.999:
        return curve
    grid = step_grid(float(r.min()), float(r.max()), FIT_STEP)
    return Curve(r=grid, g=np.interp(grid, r, g), metadata=dict(curve.metadata), source=curve.source,
                 header_lines=tuple(getattr(curve, "header_lines", ()) or ()))


def _refine_task(task):
    row, structure, stretch, curve, q, d, rmin, rmax, diameter, positions = task
    t = time.perf_counter()
    _refine(row, structure, stretch, curve, q, d, rmin, rmax, diameter, positions=positions)
    return row, time.perf_counter() - t


def best_structure(rows: list[IdentifyRow], ranking, elements: set[str] | None = None) -> IdentifyRow | None:
    """The answer: the best plausible fit in the top group of the combined ranking (made of the
    sample's ``elements`` where one such fits), else the best plausible fit, else the best fit
    at all (see :data:`GOOD_FIT_RW` for whether it fits)."""
    fitted = [r for r in rows if r.ok and r.rw is not None and math.isfinite(r.rw)]
    top = [r for r in fitted if ranking and r.space_group == ranking[0][0] and plausible(r)]
    own = [r for r in top if elements and row_elements(r) == set(elements) and r.rw <= GOOD_FIT_RW]
    for pick in (own, top,
                 [r for r in fitted if plausible(r)], fitted):
        if pick:
            return min(pick, key=lambda r: r.rw)
    return None


def _cnn(path: str, model) -> tuple[list, str]:
    from sgmine.scan import predict

    try:
        p = predict([path], top_k=len(model.info.classes) if model is not None else 64, model=model)[0]
    except Exception as exc:  # a model that cannot score this file costs only the CNN column
        return [], f"CNN not run: {exc}"
    if not p.ok:
        return [], f"CNN: {p.message}"
    return [(c.space_group, c.symbol, float(c.probability)) for c in p.candidates], ""


def fit_rmax(n_atoms: int, volume: float, rmax: float) -> float:
    """The end of the fit range for a cell of ``n_atoms`` atoms and ``volume`` Å³: ``rmax``, or
    shorter where the cell's atom pairs within it, n² (4/3)π r³ / V, exceed :data:`PAIR_BUDGET`
    (never below :data:`MIN_FIT_RMAX`, nor above ``rmax``)."""
    if n_atoms < 1 or not volume > 0:
        return rmax
    budget = (PAIR_BUDGET * volume / (n_atoms ** 2 * 4.0 / 3.0 * math.pi)) ** (1.0 / 3.0)
    return float(min(rmax, max(MIN_FIT_RMAX, budget)))


def _refine(row: IdentifyRow, structure, stretch: float, curve, qmax, qdamp, rmin, rmax, diameter=None, *,
            positions: bool = False) -> None:
    from sgmine_diffpy import refine
    from sgmine_diffpy.candidates import CandidateModel, space_group_parameters
    from sgmine_diffpy.library import standardise

    try:
        for atom in structure:
            atom.Uisoequiv = FIT_START_UISO
        lat = structure.lattice
        structure.lattice.setLatPar(lat.a * stretch, lat.b * stretch, lat.c * stretch)
        entry = standardise(structure, row.structure_id)
        phase, sgpars = space_group_parameters(entry)
    except Exception as exc:  # LibraryError, spglib's and srfit's errors: this structure only
        row.status, row.message = "error", f"cannot set up the refinement: {type(exc).__name__}: {exc}"
        return
    candidate = CandidateModel(row.file, row.rank, entry.space_group, entry.symbol, row.cnn_probability or 0.0, entry, phase, sgpars)
    end = fit_rmax(len(candidate.structure), candidate.structure.lattice.volume, rmax)
    try:
        result = refine.fit_candidate(candidate, curve, qmax=qmax, qdamp=qdamp, rmin=rmin, rmax=end, max_steps=FIT_STEPS,
                                      spdiameter=diameter, refine_positions=positions,
                                      early_positions=positions, adp_per=TEMPLATE_ADP if positions else "site")
    except Exception as exc:  # fit_candidate reports pdffit2's failures itself; anything else costs this row only
        row.status, row.message = "error", f"refinement failed: {type(exc).__name__}: {exc}"
        return
    row.fit = result
    row.status, row.message = result.status, result.message
    if end < rmax:
        row.message = "; ".join(m for m in (f"fitted to {end:.1f} Å ({len(candidate.structure)} atoms in the cell)", row.message) if m)
    if result.spdiameter is not None:
        row.message = "; ".join(m for m in (f"particle diameter {result.spdiameter:.1f} Å (from {diameter:g})", row.message) if m)
    row.rw, row.lattice = result.rw, dict(result.lattice)


def _failed(summary: FileSummary, message: str, start: float):
    """The error row and summary of a file that could not be identified; ``message`` loses a
    leading file name (the row's file column and the stderr line name the file once)."""
    for name in (summary.file, str(Path(summary.file))):
        message = message.removeprefix(f"{name}: ")
    summary.status, summary.message = "error", message
    summary.total_s = time.perf_counter() - start
    return [IdentifyRow(summary.file, status="error", message=message)], summary


def to_csv(rows, columns) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(r.row() for r in rows)
    return buffer.getvalue()


# --------------------------------------------------------------------------- command


def run_identify(paths: list[str], *, library: str = "default", top: int = DEFAULT_TOP, out: Optional[Path] = None,
                 summary_out: Optional[Path] = None, plots: Optional[Path] = None, model_path: Optional[Path] = None,
                 qmax: float | None = None, qdamp: float | None = None, radiation: str | None = None,
                 rmin: float = 1.5, rmax: float = 30.0, composition: str | None = None,
                 compositions: Optional[Path] = None, structures: Optional[Path] = None, jobs: int = 1,
                 scheduler: str | None = None) -> int:
    """The ``sgmine identify`` command: exit 0 when every file was identified, 1 when some file
    got no answer or failed, or some fit failed (its row says why), 2 for unusable options,
    library, model, composition table or scheduler (nothing written). A composition that does
    not parse is an error row for its file. ``structures``: a folder for each answer's refined
    structure and fit (:func:`_hand_over`). ``jobs`` files at once (0: one per core), or each
    file a task on the Dask cluster of ``scheduler`` (:mod:`sgmine_diffpy.batch`): the same
    table, in the order of the files."""
    from sgmine.composition import CompositionError, read_composition_table
    from sgmine.model import ModelError
    from sgmine.scan import expand_paths, load_model
    from sgmine_diffpy import batch
    from sgmine_diffpy.cli import _say, _usage, _write, missing_dependency

    missing = missing_dependency()
    if missing:
        return _usage(missing.replace("sgmine refine", "sgmine identify"))
    if radiation is not None and radiation.lower() not in RADIATION_NAMES:
        return _usage(f"--radiation {radiation!r}: use xray or neutron")
    radiation = RADIATION_NAMES.get((radiation or "").lower())
    if top < 1:
        return _usage("--top must be at least 1")
    if rmin >= rmax:
        return _usage(f"--rmin {rmin:g} must be below --rmax {rmax:g}")
    if jobs < 0:
        return _usage("--jobs must be 0 (one per core) or more")
    if scheduler is not None and jobs != 1:
        return _usage("give --jobs or --scheduler, not both: on a Dask cluster its workers run the files")
    for name, target in (("--out", out), ("--summary", summary_out)):
        if target is not None and (target.is_dir() or not target.parent.exists()):
            return _usage(f"{name} {target}: give a file name in an existing directory")
    for name, folder in (("--plots", plots), ("--structures", structures)):
        if folder is not None and folder.exists() and not folder.is_dir():
            return _usage(f"{name} {folder}: not a directory")
    files = expand_paths(paths)
    if not files:
        return _usage("no input files")
    try:
        table = read_composition_table(compositions) if compositions is not None else None
    except CompositionError as exc:
        return _usage(f"--compositions {exc}")
    try:
        lib = open_library(library, say=_say)
        model = load_model(model_path)
    except (StructureLibraryError, ModelError) as exc:
        return _usage(str(exc))
    if lib.skipped:
        _say(f"sgmine identify: {len(lib.skipped)} structures of {lib.name} skipped (unreadable or no space group), e.g. {lib.skipped[0]}")
    try:
        client = batch.dask_client(scheduler) if scheduler is not None else None
    except batch.BatchError as exc:
        return _usage(str(exc))
    for name, folder in (("--plots", plots), ("--structures", structures)):
        try:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if client is not None:
                client.close()
            return _usage(f"{name} {folder}: cannot make the folder ({exc.strerror or exc})")
    job = batch.FileJob(library=str(library), model=None if model_path is None else str(model_path),
                        options=dict(top=top, qmax=qmax, qdamp=qdamp, radiation=radiation, rmin=rmin, rmax=rmax,
                                     composition=composition, compositions=table))
    outcomes: list = [None] * len(files)
    finished = batch.identify_files(files, job, jobs=jobs, client=client, library=lib, model=model, say=_say)
    for done, (index, file_rows, summary) in enumerate(finished, start=1):
        outcomes[index] = (file_rows, summary)
        _report(summary, done, len(files))
        if plots is not None and summary.best is not None and summary.best.fit is not None:
            _plot(summary.best, plots / f"{Path(summary.file).name}.identify.png")
        if structures is not None:
            _hand_over(summary, structures)
    rows = [row for file_rows, _ in outcomes for row in file_rows]
    summaries = [summary for _, summary in outcomes]
    summary_out = summary_out or (out.with_name(out.name.rsplit(".", 1)[0] + ".summary.csv") if out is not None else None)
    try:
        _write(to_csv(rows, COLUMNS), out)
        if summary_out is not None:
            _write(to_csv(summaries, SUMMARY_COLUMNS), summary_out)
    except OSError as exc:
        return _usage(f"cannot write the table: {exc.strerror or exc}")
    # a failed refinement of one candidate is a row, not a failed file (issue #33): exit 1 only
    # when a file got no answer (it could not be read or screened, or nothing fits)
    failed = sum(s.status != "ok" or s.answer is None for s in summaries)
    return 1 if failed else 0


def _report(summary: FileSummary, done: int, total: int) -> None:
    """The stderr line of a finished file: its answer (or why none) and its ranking; with
    several files, how many are done."""
    from sgmine_diffpy.cli import _say

    answer, ranking = summary.answer, ", ".join(f"{g} {s}" for g, s, *_ in summary.ranking[:3])
    count = f"; {done} of {total} files done" if total > 1 else ""
    if answer is not None:
        _say(f"sgmine identify: {summary.file}: best {answer.structure_id} {answer.formula} {answer.symbol} "
             f"Rw {answer.rw:.4f}; ranking {ranking} (screen {summary.screen_s:.1f} s, total {summary.total_s:.1f} s){count}")
    else:
        _say(f"sgmine identify: {summary.file}: {summary.message}" + (f"; ranking {ranking}" if ranking else "") + count)


def _hand_over(summary: FileSummary, folder: Path) -> None:
    """Write the file's answer, its refined structure and fit, to ``folder`` as
    ``<file name>.identify.cif`` and ``.fgr`` (:func:`sgmine_diffpy.handover.hand_over`); a file
    without an answer gets none, and stderr says so."""
    from sgmine_diffpy.cli import _say
    from sgmine_diffpy.handover import hand_over

    answer = summary.answer
    if answer is None or answer.fit is None:
        reason = "nothing fits" if summary.status == "ok" else "it could not be identified"
        _say(f"sgmine identify: {summary.file}: no structure written to {folder}: {reason}")
        return
    _say(hand_over(answer.fit, folder, f"{Path(summary.file).name}.identify", command="sgmine identify"))


def _plot(row: IdentifyRow, png: Path) -> None:
    from sgmine_diffpy.cli import _say
    from sgmine_diffpy.plot import plot_fit

    try:
        plot_fit(row.fit, png, rank_name="screen rank")
    except Exception as exc:
        _say(f"sgmine identify: cannot draw {png}: {exc}")
        return
    _say(f"sgmine identify: best fit plotted in {png}")
