"""The work behind ``sgmine refine`` (the command itself, its options and help, is in
:mod:`sgmine_diffpy.commands`, which imports this module only when the command runs).

Exit status: 0 when every candidate was fitted, 1 when some file or fit failed (its row says
why; the other rows are written), 2 for a usage, library or model error (nothing written).
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
) -> int:
    """Score each PDF, refine every library structure in its top-k groups, write the table
    (stdout or ``out``) sorted by Rw within each file, and a PNG of each file's best fit
    (``<plot_dir>/<file name>.best-fit.png``). Returns the exit status (see the module text).
    """
    from sgmine.scan import expand_paths, iter_predictions
    from sgmine_diffpy.refine import to_csv

    try:
        plot_dir = _check_options(rmin, rmax, out, plot_dir, plot)
        library, model = _load_inputs(cif_dir, model_path)
    except UsageError as exc:
        return _usage(str(exc))
    top_k = min(top_k, len(model.info.classes))
    fit_options = dict(qmax=qmax, qdamp=qdamp, rmin=rmin, rmax=rmax, fit_qdamp=fit_qdamp)

    rows = []
    for prediction in iter_predictions(expand_paths(paths), model, top_k=top_k):
        results = refine_prediction(prediction, library, top_k, cif_dir, fit_options)
        if plot_dir is not None and results[0].ok:
            _plot_best(results[0], plot_dir / f"{Path(prediction.source).name}.best-fit.png")
        rows += results

    try:
        _write(to_csv(rows), out)
    except OSError as exc:
        return _usage(f"cannot write {out}: {exc.strerror or exc}")
    failed = sum(not r.ok for r in rows)
    if failed:
        _say(f"sgmine refine: {failed} of {len(rows)} rows failed (see message column)")
        return EXIT_SOME_FAILED
    return EXIT_OK


def refine_prediction(prediction, library, top_k: int, cif_dir, fit_options: dict) -> list:
    """The fits of one scored file, sorted by Rw; one error row when it cannot be fitted."""
    from sgmine.gr import ReadError, read_gr
    from sgmine_diffpy.candidates import candidate_models
    from sgmine_diffpy.refine import fit_candidate, sort_by_rw

    if not prediction.ok:
        return [error_row(prediction.source, prediction.message)]
    candidates = candidate_models(prediction, library, top_k=top_k)
    if not candidates:
        groups = ", ".join(f"{c.space_group} {c.symbol}" for c in prediction.candidates)
        return [error_row(prediction.source, f"no structure in {cif_dir} has any of the top-{top_k} groups ({groups})")]
    try:
        curve = read_gr(prediction.source)
    except ReadError as exc:
        return [error_row(prediction.source, str(exc))]
    results = []
    for candidate in candidates:
        start = time.perf_counter()
        result = fit_candidate(candidate, curve, **fit_options)
        outcome = f"Rw {result.rw:.4f}" if result.ok else f"failed: {result.message}"
        _say(f"sgmine refine: {prediction.source} × {Path(candidate.cif).name} "
             f"({candidate.symbol}, rank {candidate.model_rank}): {outcome} ({time.perf_counter() - start:.1f} s)")
        results.append(result)
    return sort_by_rw(results)


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
