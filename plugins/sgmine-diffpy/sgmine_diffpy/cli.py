"""The work behind ``sgmine refine`` (the command itself, its options and help, is in
:mod:`sgmine_diffpy.commands`, which imports this module only when the command runs).

Exit status: 0 when every candidate was fitted, 1 when some file or fit failed (its row says
why; the other rows are written), 2 for a usage, library or model error (nothing written). A
structure passed over because its group is not among the model's top-k is a row of status
``skipped`` (and a line on stderr), not a failure.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2

#: What ``sgmine refine`` imports, and the distribution that provides it.
DEPENDENCIES = {
    "diffpy.srfit": "diffpy.srfit",
    "diffpy.structure": "diffpy.structure",
    "diffpy.pdffit2": "diffpy.pdffit2 (builds against GSL: apt-get install libgsl-dev)",
    "spglib": "spglib",
    "matplotlib": "matplotlib",
}
#: The repair of a diffpy.pdffit2 without its compiled core. pdffit2 is an sdist: built without
#: GSL it installs "successfully" with no ``pdffit2*.so`` (importing it then fails with a
#: circular-import error), and pip caches that wheel, so a plain reinstall reuses it.
PDFFIT2_FIX = "apt-get install libgsl-dev, then pip install --no-cache-dir --force-reinstall --no-deps diffpy.pdffit2"


class UsageError(ValueError):
    """Options, library or model that make the whole run impossible."""


def run_refine(
    paths: list[str],
    cif_dir: Path,
    top_k: int = 3,
    out: Optional[Path] = None,
    model_path: Optional[Path] = None,
    qmax: Optional[float] = None,
    qdamp: Optional[float] = None,
    rmin: float = 1.5,
    rmax: float = 30.0,
    fit_qdamp: bool = False,
    plot_dir: Optional[Path] = None,
    plot: bool = True,
    structures: Optional[Path] = None,
    every: bool = False,
) -> int:
    """Score each PDF, refine every library structure in its top-k groups (``every``: every
    library structure), write the table (stdout or ``out``) sorted by Rw within each file, a
    PNG of each file's best fit (``<plot_dir>/<file name>.best-fit.png``), and its refined
    structure and fit for PDFgui or diffpy.srfit (``<structures>/<file name>.best-fit.cif`` and
    ``.fgr``: :func:`sgmine_diffpy.handover.write_handover`). Returns the exit status (see the
    module text).
    """
    from sgmine.scan import expand_paths, iter_predictions
    from sgmine_diffpy.handover import hand_over
    from sgmine_diffpy.refine import ERROR, to_csv

    try:
        plot_dir = _check_options(rmin, rmax, out, plot_dir, plot)
        library, model = _load_inputs(cif_dir, model_path)
        structures = _structure_folder(structures, out)
    except UsageError as exc:
        return _usage(str(exc))
    top_k = min(top_k, len(model.info.classes))
    fit_options = dict(qmax=qmax, qdamp=qdamp, rmin=rmin, rmax=rmax, fit_qdamp=fit_qdamp, refine_positions=True)

    rows = []
    # every class scored, so that a structure passed over can be told where the model ranks its group
    for prediction in iter_predictions(expand_paths(paths), model, top_k=len(model.info.classes)):
        results = refine_prediction(prediction, library, top_k, cif_dir, fit_options, every=every)
        if results[0].ok:
            name = f"{Path(prediction.source).name}.best-fit"
            if plot_dir is not None:
                _plot_best(results[0], plot_dir / f"{name}.png")
            _say(hand_over(results[0], structures, name, command="sgmine refine"))
        rows += results

    try:
        _write(to_csv(rows), out)
    except OSError as exc:
        return _usage(f"cannot write {out}: {exc.strerror or exc}")
    failed = sum(r.status == ERROR for r in rows)
    if failed:
        _say(f"sgmine refine: {failed} of {len(rows)} rows failed (see message column)")
        return EXIT_SOME_FAILED
    return EXIT_OK


def refine_prediction(prediction, library, top_k: int, cif_dir, fit_options: dict, *, every: bool = False) -> list:
    """The fits of one scored file, sorted by Rw, then a ``skipped`` row for each library
    structure whose group is not among the top-``top_k`` (``every``: those are fitted too); one
    error row when the file cannot be fitted. ``prediction`` should rank every class of the
    model (the skipped rows say where it ranks their group)."""
    from sgmine.gr import ReadError, read_gr
    from sgmine_diffpy.candidates import candidate_models, left_out
    from sgmine_diffpy.refine import fit_candidate, sort_by_rw

    if not prediction.ok:
        return [error_row(prediction.source, prediction.message)]
    candidates = candidate_models(prediction, library, top_k=top_k, every=every)
    ranks = {c.space_group: (rank, c.probability) for rank, c in enumerate(prediction.candidates, start=1)}
    skipped = [] if every else [skipped_row(prediction.source, entry, reason, *ranks.get(entry.space_group, (None, None)))
                                for entry, reason in left_out(prediction, library, top_k, complete=True)]
    if not candidates:
        groups = ", ".join(f"{c.space_group} {c.symbol}" for c in prediction.candidates[:top_k])
        return [error_row(prediction.source, f"no structure in {cif_dir} has any of the top-{top_k} groups ({groups}); "
                          "--all refines every structure"), *skipped]
    try:
        curve = read_gr(prediction.source)
    except ReadError as exc:
        return [error_row(prediction.source, str(exc))]
    results = []
    for candidate in candidates:
        start = time.perf_counter()
        result = fit_candidate(candidate, curve, **fit_options)
        outcome = f"Rw {result.rw:.4f}" if result.ok else f"failed: {result.message}"
        rank = f"rank {candidate.model_rank}" if candidate.model_rank is not None else "not one of the model's groups"
        _say(f"sgmine refine: {prediction.source} × {Path(candidate.cif).name} "
             f"({candidate.symbol}, {rank}): {outcome} ({time.perf_counter() - start:.1f} s)")
        results.append(result)
    return sort_by_rw(results) + skipped


def skipped_row(source: str, entry, reason: str, model_rank: int | None = None, probability: float | None = None):
    """A table row for a library structure that was not refined (with the model's rank and
    probability of its group, where it ranks it), and a line on stderr saying why."""
    from sgmine_diffpy.refine import SKIPPED, FitResult

    message = f"not refined: {reason}; --all refines it"
    _say(f"sgmine refine: {source}: {entry.path or entry.name} {message}")
    return FitResult(source, entry.path or entry.name, entry.space_group, entry.symbol, model_rank, probability,
                     status=SKIPPED, message=message)


def error_row(source: str, message: str):
    """A table row for a file that yielded no fit."""
    from sgmine_diffpy.refine import ERROR, FitResult

    return FitResult(source, "", None, "", None, None, status=ERROR, message=message)


def missing_dependency() -> str | None:
    """A message naming the first dependency that cannot be imported, or None when all can."""
    import importlib

    for module, dist in DEPENDENCIES.items():
        try:
            importlib.import_module(module)
            if module == "diffpy.pdffit2":
                from diffpy.pdffit2 import PdfFit  # noqa: F401  (the compiled core)
        except ImportError as exc:
            if module == "diffpy.pdffit2":
                return pdffit2_message(exc)
            return f"sgmine refine needs {module}, which cannot be imported ({exc}); install {dist}"
    return None


def pdffit2_message(exc: ImportError) -> str:
    """What to do when ``from diffpy.pdffit2 import PdfFit`` raised ``exc``: install it, or (installed
    without its compiled core) rebuild it without pip's cache (:data:`PDFFIT2_FIX`)."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, ModuleNotFoundError) and exc.name in ("diffpy", "diffpy.pdffit2"):
        return (f"sgmine refine needs diffpy.pdffit2, which is not installed ({reason}); "
                "apt-get install libgsl-dev, then pip install diffpy.pdffit2")
    return (f"sgmine refine needs diffpy.pdffit2, which is installed but cannot be imported ({reason}): "
            f"it was most likely built without GSL and pip reuses that cached build; fix: {PDFFIT2_FIX}")


def _check_options(rmin: float, rmax: float, out: Optional[Path], plot_dir: Optional[Path], plot: bool) -> Optional[Path]:
    """Raise :class:`UsageError` for unusable options; return the plot folder (None: no plots)."""
    missing = missing_dependency()
    if missing:
        raise UsageError(missing)
    if rmin >= rmax:
        raise UsageError(f"--rmin {rmin:g} must be below --rmax {rmax:g}")
    if out is not None and (out.is_dir() or not out.parent.exists()):
        raise UsageError(f"--out {out}: give a file name in an existing directory")
    if not plot:
        return None
    plot_dir = plot_dir or (out.parent if out is not None else Path("."))
    if not plot_dir.is_dir():
        raise UsageError(f"--plot-dir {plot_dir}: not a directory")
    return plot_dir


def _structure_folder(structures: Optional[Path], out: Optional[Path]) -> Path:
    """The folder for the refined structures and fits: ``structures``, else ``out``'s folder,
    else the current one; made where it does not exist. Raises :class:`UsageError` when it
    cannot be."""
    folder = structures or (out.parent if out is not None else Path("."))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--structures {folder}: cannot make the folder ({exc.strerror or exc})") from None
    return folder


def _load_inputs(cif_dir: Path, model_path: Optional[Path]):
    """``(library, model)``; raises :class:`UsageError` when either cannot be used."""
    from sgmine.model import ModelError
    from sgmine.scan import load_model
    from sgmine_diffpy.library import LibraryError, load_library

    try:
        library = load_library(cif_dir)
    except LibraryError as exc:
        raise UsageError(str(exc)) from exc
    for message in library.skipped:
        _say(f"sgmine refine: skipped {message}")
    if not library.entries:
        raise UsageError(f"{cif_dir}: no usable structures")
    try:
        return library, load_model(model_path)
    except ModelError as exc:
        raise UsageError(str(exc)) from exc


def _plot_best(result, png: Path) -> None:
    """Draw the best fit; a plot that fails is reported and never costs the table."""
    from sgmine_diffpy.plot import plot_fit

    try:
        plot_fit(result, png)
    except Exception as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        _say(f"sgmine refine: cannot draw {png}: {detail}")
        return
    _say(f"sgmine refine: best fit plotted in {png}")


def _write(text: str, out: Optional[Path]) -> None:
    from sgmine.files import atomic_write

    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write(out, text)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _usage(message: str) -> int:
    _say(f"sgmine: error: {message}")
    return EXIT_USAGE
