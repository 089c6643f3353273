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
   first; the library's queue behind them and are dropped once one of those fits
   (:func:`_fits_chemistry`).
   The two best fitting structures' versions of higher symmetry (within 0.1–0.3 Å,
   :mod:`sgmine_diffpy.supergroups`) are refined after them (:func:`_supergroup_picks`).
4. **Refine** them with pdffit2 as ``sgmine refine`` does (scale, the lattice parameters the group
   leaves free, Uiso per site from :data:`~sgmine_diffpy.refinements.FIT_START_UISO`, delta2; the particle diameter from
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

The steps live in their own modules (the plugin README's Layout): the libraries in
:mod:`~sgmine_diffpy.structlib`, candidates from the composition in
:mod:`~sgmine_diffpy.chemistry`, the screen in :mod:`~sgmine_diffpy.screen`, the refinements in
:mod:`~sgmine_diffpy.refinements`, higher-symmetry versions in :mod:`~sgmine_diffpy.supergroups`,
the ranking in :mod:`~sgmine_diffpy.ranking`, rows and summaries in :mod:`~sgmine_diffpy.rows`;
this module chooses what to refine and runs the steps in order.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np

from sgmine.composition import SOURCES as COMPOSITION_SOURCES
from sgmine_diffpy.ranking import best_by_group, best_structure, combined_ranking, lift_symmetry, row_elements
from sgmine_diffpy.refinements import refine_all
from sgmine_diffpy.rows import COLUMNS, GOOD_FIT_RW, SUMMARY_COLUMNS, FileSummary, IdentifyRow, plausible, to_csv
from sgmine_diffpy.structlib import (
    DEFAULT_LIBRARY,
    StructureLibrary,
    StructureLibraryError,
    concatenate,
    entry_elements,
)

#: Structures refined per file by default.
DEFAULT_TOP = 10
RADIATION_NAMES = {"xray": "xray", "x": "xray", "x-ray": "xray", "neutron": "neutron", "n": "neutron"}


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
    fit (:func:`~sgmine_diffpy.ranking.fit_order`). ``workers``: refinements run at once (default: one per CPU core;
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
    chemistry_picks: list[tuple] = []
    if comp is not None:
        t0 = time.perf_counter()
        found = _chemistry(library, comp, curve, rad, q, d, rmin, rmax)
        summary.screen_s += time.perf_counter() - t0
        if found is not None:
            chem_library, chem_result, _ = found
            chemistry_picks = [(chem_library, i, chem_result, True)
                               for i in _choose_chemistry(chem_library, chem_result, CHEMISTRY_TOP)]
    chosen = _choose(library, result, max(top - len(chemistry_picks), CNN_GROUPS), elements, summary.cnn)
    library_picks = [(library.structures, i, result, False) for i in chosen]
    # the chemistry's candidates first; the library's are dropped (not started, or stopped) once
    # one of the chemistry's fits: it then leads the ranking whatever else fits
    # (:func:`~sgmine_diffpy.ranking.fit_order`). One queue, so no core waits between the two.
    rows = refine_all(path, chemistry_picks + library_picks, curve, summary.cnn, q, d, rmin, rmax, say, workers=workers,
                      optional_from=len(chemistry_picks) if chemistry_picks else None,
                      enough=lambda row: _fits_chemistry(row, majority))
    if say and len(rows) < len(chemistry_picks) + len(library_picks):
        say(f"sgmine identify: {path}: a structure of the sample's chemistry fits; "
            f"{len(chemistry_picks) + len(library_picks) - len(rows)} of the library's were not refined")
    for row in rows:
        lift_symmetry(row)
    more = _supergroup_picks(rows, majority)
    if more:
        lifted = refine_all(path, more, curve, summary.cnn, q, d, rmin, rmax, say, workers=workers,
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

    best = best_by_group(rows, lambda r: (r.rw <= GOOD_FIT_RW and (majority is None or row_elements(r) == majority)
                                          and getattr(r.fit, "structure", None) is not None))
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


def _cnn(path: str, model) -> tuple[list, str]:
    from sgmine.scan import predict

    try:
        p = predict([path], top_k=len(model.info.classes) if model is not None else 64, model=model)[0]
    except Exception as exc:  # a model that cannot score this file costs only the CNN column
        return [], f"CNN not run: {exc}"
    if not p.ok:
        return [], f"CNN: {p.message}"
    return [(c.space_group, c.symbol, float(c.probability)) for c in p.candidates], ""


def _failed(summary: FileSummary, message: str, start: float):
    """The error row and summary of a file that could not be identified; ``message`` loses a
    leading file name (the row's file column and the stderr line name the file once)."""
    for name in (summary.file, str(Path(summary.file))):
        message = message.removeprefix(f"{name}: ")
    summary.status, summary.message = "error", message
    summary.total_s = time.perf_counter() - start
    return [IdentifyRow(summary.file, status="error", message=message)], summary


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
