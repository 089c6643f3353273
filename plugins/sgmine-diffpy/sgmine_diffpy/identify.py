"""``sgmine identify``: from a measured G(r) to refined candidate structures and a space-group
ranking.

For each file: screen every structure of the library (:mod:`sgmine_diffpy.screen`: the file's
Qmax, Qdamp and radiation, a free scale and a ±10 % isotropic stretch, Rw over the measured part
of 1.5–30 Å), refine the best ``top`` (one per space group and formula) with pdffit2 as
``sgmine refine`` does (scale, the lattice parameters the group leaves free, Uiso per site,
delta2), and rank the space groups by

    score(g) = min Rw over the refined structures of group g  −  COMBINE_WEIGHT · p_CNN(g)

lowest first (:data:`COMBINE_WEIGHT` = 0.1; a group without a refined structure counts Rw = 1;
p_CNN is the calibrated probability of sgmine's model, 0 for groups outside its classes). The
refined Rw decides whenever the fits differ by more than a tenth of the CNN's confidence gap;
the CNN breaks near-ties, e.g. a structure and its lower-symmetry subgroup fitting alike.
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

from sgmine_diffpy.structlib import DEFAULT_LIBRARY, StructureLibrary, StructureLibraryError

#: Weight of the CNN's probability against the refined Rw in the space-group ranking.
COMBINE_WEIGHT = 0.1
#: Structures refined per file by default.
DEFAULT_TOP = 10
#: Least-squares iterations per refinement stage (screened structures start close).
FIT_STEPS = 20
RADIATION_NAMES = {"xray": "xray", "x": "xray", "x-ray": "xray", "neutron": "neutron", "n": "neutron"}

COLUMNS = ["file", "rank", "structure_id", "formula", "space_group", "symbol", "rw_screen", "rw",
           "a", "b", "c", "alpha", "beta", "gamma", "cnn_probability", "source", "status", "message"]
SUMMARY_COLUMNS = ["file", "status", "radiation", "qmax", "best_structure", "best_formula", "best_space_group",
                   "best_symbol", "best_rw", "cnn_top", "ranking", "screen_s", "total_s", "message"]


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
    ranking: list = field(default_factory=list)  # [(space_group, symbol, score)], best first
    screen_s: float = 0.0
    total_s: float = 0.0
    message: str = ""

    def row(self) -> list[str]:
        b = self.best
        cnn = f"{self.cnn[0][0]} {self.cnn[0][1]} ({self.cnn[0][2]:.3f})" if self.cnn else ""
        rank = "; ".join(f"{g} {s} ({v:.3f})" for g, s, v in self.ranking[:5])
        return [self.file, self.status, self.radiation, "" if self.qmax is None else f"{self.qmax:g}",
                b.structure_id if b else "", b.formula if b else "", "" if b is None else str(b.space_group),
                b.symbol if b else "", "" if b is None or b.rw is None else f"{b.rw:.4f}", cnn, rank,
                f"{self.screen_s:.2f}", f"{self.total_s:.2f}", self.message]


def combined_ranking(rows: list[IdentifyRow], cnn: list[tuple[int, str, float]], weight: float = COMBINE_WEIGHT):
    """``[(space_group, symbol, score)]`` lowest score first (see the module text)."""
    best: dict[int, tuple[float, str]] = {}
    for r in rows:
        if r.ok and r.rw is not None and math.isfinite(r.rw) and (r.space_group not in best or r.rw < best[r.space_group][0]):
            best[r.space_group] = (r.rw, r.symbol)
    prob = {g: p for g, _, p in cnn}
    symbols = {g: s for g, s, _ in cnn}
    groups = set(best) | set(prob)
    scored = [(g, best.get(g, (1.0, symbols.get(g, "")))[1], best.get(g, (1.0, ""))[0] - weight * prob.get(g, 0.0)) for g in groups]
    return sorted(scored, key=lambda t: (t[2], t[0]))


# --------------------------------------------------------------------------- libraries


class ScreeningLibrary:
    """A structure library with its screening curves (per radiation, computed once and cached)."""

    def __init__(self, structures: StructureLibrary, name: str, skipped: list[str] | None = None):
        self.structures = structures
        self.name = name
        self.skipped = skipped or []
        self._prepared: dict = {}

    def curves(self, radiation: str, say=None) -> np.ndarray:
        from sgmine_diffpy.screen import library_curves

        return library_curves(self.structures, radiation, say=say)

    def prepared(self, radiation: str, qmax: float | None, qdamp: float | None, say=None):
        """``(matrix, valid rows)`` for these settings (kept for files that share them)."""
        from sgmine_diffpy.screen import prepare

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


def file_settings(curve, qmax: float | None, qdamp: float | None, radiation: str | None):
    """``(radiation name, qmax, qdamp)``: the header's where present (its ``mode``/``stype``/
    ``qmax``/``qdamp`` entries, else what PDFgetN and PDFgetX2 headers record:
    :func:`~sgmine_diffpy.refine.header_words`), else the options."""
    from sgmine.gr import header_value
    from sgmine_diffpy.refine import _float, header_radiation, header_words

    said = header_radiation(curve)
    rad = {"N": "neutron", "X": "xray"}[said] if said else (radiation or "xray")
    hq, hd = _float(header_value(curve.metadata, "qmax")), _float(header_value(curve.metadata, "qdamp"))
    if hq is None:
        hq = header_words(curve)[1]
    return rad, hq if hq is not None else qmax, hd if hd is not None else qdamp


def identify_file(path: str, library: ScreeningLibrary, *, top: int = DEFAULT_TOP, model=None,
                  qmax: float | None = None, qdamp: float | None = None, radiation: str | None = None,
                  rmin: float = 1.5, rmax: float = 30.0, say=None) -> tuple[list[IdentifyRow], FileSummary]:
    """Screen, refine and rank for one file (see the module text). Never raises for a bad file:
    the rows then hold one error row and the summary says why."""
    from sgmine.gr import ReadError, read_gr
    from sgmine_diffpy.screen import screen

    start = time.perf_counter()
    summary = FileSummary(path)
    try:
        curve = read_gr(path)
    except (ReadError, OSError, ValueError) as exc:
        return _failed(summary, str(exc), start)
    summary.cnn, cnn_note = _cnn(path, model)
    rad, q, d = file_settings(curve, qmax, qdamp, radiation)
    summary.radiation, summary.qmax = rad, q
    try:
        t0 = time.perf_counter()
        matrix, valid = library.prepared(rad, q, d, say)
        result = screen(curve.r, curve.g, matrix, rmin=rmin, rmax=rmax, valid=valid,
                        curves=library.curves(rad), qmax=q, qdamp=d)
        summary.screen_s = time.perf_counter() - t0
    except ValueError as exc:
        return _failed(summary, f"{path}: cannot screen: {exc}", start)
    lib = library.structures
    prob = {g: p for g, _, p in summary.cnn}
    chosen, seen = [], set()
    for i in result.best(max(50 * top, 200)):
        key = (int(lib.space_groups[i]), str(lib.formulas[i]))
        if key in seen or not math.isfinite(result.rw[i]):
            continue
        seen.add(key)
        chosen.append(int(i))
        if len(chosen) == top:
            break
    if rad == "neutron" and "radiation" not in {k.lower() for k in curve.metadata}:
        curve.metadata["radiation"] = "neutron"  # the refinement reads the radiation from the header
    rows = []
    for rank, i in enumerate(chosen, start=1):
        row = IdentifyRow(path, rank, str(lib.ids[i]), str(lib.formulas[i]), int(lib.space_groups[i]), str(lib.symbols[i]),
                          float(result.rw[i]), cnn_probability=prob.get(int(lib.space_groups[i]), 0.0), source=str(lib.sources[i]))
        t1 = time.perf_counter()
        _refine(row, lib, i, float(result.stretch[i]), curve, q, d, rmin, rmax)
        if say:
            outcome = f"Rw {row.rw:.4f}" if row.ok else f"failed: {row.message}"
            say(f"sgmine identify: {path} × {row.structure_id} {row.formula} ({row.symbol}, screen Rw {row.rw_screen:.3f}): "
                f"{outcome} ({time.perf_counter() - t1:.1f} s)")
        rows.append(row)
    rows.sort(key=lambda r: (not r.ok or r.rw is None, r.rw if r.rw is not None else 0.0, r.rank))
    summary.ranking = combined_ranking(rows, summary.cnn)
    summary.best = rows[0] if rows and rows[0].ok else None
    notes = [cnn_note] if cnn_note else []
    if summary.best is None:
        summary.status = "error"
        notes.append("no refinement succeeded")
    summary.message = "; ".join(notes)
    summary.total_s = time.perf_counter() - start
    return rows, summary


def _cnn(path: str, model) -> tuple[list, str]:
    from sgmine.scan import predict

    try:
        p = predict([path], top_k=len(model.info.classes) if model is not None else 64, model=model)[0]
    except Exception as exc:  # a model that cannot score this file costs only the CNN column
        return [], f"CNN not run: {exc}"
    if not p.ok:
        return [], f"CNN: {p.message}"
    return [(c.space_group, c.symbol, float(c.probability)) for c in p.candidates], ""


def _refine(row: IdentifyRow, lib: StructureLibrary, index: int, stretch: float, curve, qmax, qdamp, rmin, rmax) -> None:
    from sgmine_diffpy import refine
    from sgmine_diffpy.candidates import CandidateModel, space_group_parameters
    from sgmine_diffpy.library import standardise

    try:
        structure = lib.structure(index)
        lat = structure.lattice
        structure.lattice.setLatPar(lat.a * stretch, lat.b * stretch, lat.c * stretch)
        entry = standardise(structure, row.structure_id)
        phase, sgpars = space_group_parameters(entry)
    except Exception as exc:  # LibraryError, spglib's and srfit's errors: this structure only
        row.status, row.message = "error", f"cannot set up the refinement: {type(exc).__name__}: {exc}"
        return
    candidate = CandidateModel(row.file, row.rank, entry.space_group, entry.symbol, row.cnn_probability or 0.0, entry, phase, sgpars)
    try:
        result = refine.fit_candidate(candidate, curve, qmax=qmax, qdamp=qdamp, rmin=rmin, rmax=rmax, max_steps=FIT_STEPS)
    except Exception as exc:  # fit_candidate reports pdffit2's failures itself; anything else costs this row only
        row.status, row.message = "error", f"refinement failed: {type(exc).__name__}: {exc}"
        return
    row.fit = result
    row.status, row.message = result.status, result.message
    row.rw, row.lattice = result.rw, dict(result.lattice)


def _failed(summary: FileSummary, message: str, start: float):
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
                 rmin: float = 1.5, rmax: float = 30.0) -> int:
    """The ``sgmine identify`` command: exit 0 when every file was identified, 1 when some file
    or fit failed (its row says why), 2 for unusable options, library or model (nothing written)."""
    from sgmine.model import ModelError
    from sgmine.scan import expand_paths, load_model
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
    for name, target in (("--out", out), ("--summary", summary_out)):
        if target is not None and (target.is_dir() or not target.parent.exists()):
            return _usage(f"{name} {target}: give a file name in an existing directory")
    if plots is not None and not plots.is_dir():
        return _usage(f"--plots {plots}: not a directory")
    files = expand_paths(paths)
    if not files:
        return _usage("no input files")
    try:
        lib = open_library(library, say=_say)
        model = load_model(model_path)
    except (StructureLibraryError, ModelError) as exc:
        return _usage(str(exc))
    if lib.skipped:
        _say(f"sgmine identify: {len(lib.skipped)} structures of {lib.name} skipped (unreadable or no space group), e.g. {lib.skipped[0]}")
    rows, summaries = [], []
    for path in files:
        file_rows, summary = identify_file(path, lib, top=top, model=model, qmax=qmax, qdamp=qdamp, radiation=radiation,
                                           rmin=rmin, rmax=rmax, say=_say)
        rows += file_rows
        summaries.append(summary)
        if summary.best is not None:
            _say(f"sgmine identify: {path}: best {summary.best.structure_id} {summary.best.formula} {summary.best.symbol} "
                 f"Rw {summary.best.rw:.4f}; ranking " + ", ".join(f"{g} {s}" for g, s, _ in summary.ranking[:3])
                 + f" (screen {summary.screen_s:.1f} s, total {summary.total_s:.1f} s)")
        else:
            _say(f"sgmine identify: {path}: {summary.message}")
        if plots is not None and summary.best is not None and summary.best.fit is not None:
            _plot(summary.best, plots / f"{Path(path).name}.identify.png")
    summary_out = summary_out or (out.with_name(out.name.rsplit(".", 1)[0] + ".summary.csv") if out is not None else None)
    try:
        _write(to_csv(rows, COLUMNS), out)
        if summary_out is not None:
            _write(to_csv(summaries, SUMMARY_COLUMNS), summary_out)
    except OSError as exc:
        return _usage(f"cannot write the table: {exc.strerror or exc}")
    failed = sum(not r.ok for r in rows) + sum(s.status != "ok" for s in summaries)
    return 1 if failed else 0


def _plot(row: IdentifyRow, png: Path) -> None:
    from sgmine_diffpy.cli import _say
    from sgmine_diffpy.plot import plot_fit

    try:
        plot_fit(row.fit, png)
    except Exception as exc:
        _say(f"sgmine identify: cannot draw {png}: {exc}")
        return
    _say(f"sgmine identify: best fit plotted in {png}")
