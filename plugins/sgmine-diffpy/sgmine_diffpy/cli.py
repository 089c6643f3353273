"""The work behind ``sgmine refine`` (the command itself is declared in sgmine's CLI, which
imports this module only when the command runs)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    (stdout or ``out``) and a PNG of each file's best fit. Returns the exit status: 0 all fits
    done, 1 some file or fit failed (its row says why), 2 usage or model error (nothing written).
    """
    from sgmine.gr import read_gr
    from sgmine.model import ModelError
    from sgmine.report import atomic_write
    from sgmine.scan import expand_paths, iter_predictions, load_model

    from sgmine_diffpy.candidates import candidate_models
    from sgmine_diffpy.library import LibraryError, load_library
    from sgmine_diffpy.plot import plot_fit
    from sgmine_diffpy.refine import ERROR, FitResult, fit_candidate, sort_by_rw, to_csv

    if rmin >= rmax:
        return _usage(f"--rmin {rmin:g} must be below --rmax {rmax:g}")
    if out is not None and (out.is_dir() or not out.parent.exists()):
        return _usage(f"--out {out}: give a file name in an existing directory")
    plot_dir = plot_dir or (out.parent if out is not None else Path("."))
    if plot and not plot_dir.is_dir():
        return _usage(f"--plot-dir {plot_dir}: not a directory")
    try:
        library = load_library(cif_dir)
    except LibraryError as exc:
        return _usage(str(exc))
    for message in library.skipped:
        _say(f"sgmine refine: skipped {message}")
    if not library.entries:
        return _usage(f"{cif_dir}: no usable structures")
    try:
        model = load_model(model_path)
    except ModelError as exc:
        return _usage(str(exc))
    top_k = min(top_k, len(model.info.classes))

    rows: list[FitResult] = []
    for prediction in iter_predictions(expand_paths(paths), model, top_k=top_k):
        if not prediction.ok:
            rows.append(FitResult(prediction.source, "", None, "", None, None, status=ERROR, message=prediction.message))
            continue
        candidates = candidate_models(prediction, library, top_k=top_k)
        if not candidates:
            groups = ", ".join(f"{c.space_group} {c.symbol}" for c in prediction.candidates)
            rows.append(FitResult(prediction.source, "", None, "", None, None, status=ERROR,
                                  message=f"no structure in {cif_dir} has any of the top-{top_k} groups ({groups})"))
            continue
        curve = read_gr(prediction.source)
        results = []
        for candidate in candidates:
            start = time.perf_counter()
            result = fit_candidate(candidate, curve, qmax=qmax, qdamp=qdamp, rmin=rmin, rmax=rmax, fit_qdamp=fit_qdamp)
            outcome = f"Rw {result.rw:.4f}" if result.ok else f"failed: {result.message}"
            _say(f"sgmine refine: {prediction.source} × {Path(candidate.cif).name} "
                 f"({candidate.symbol}, rank {candidate.model_rank}): {outcome} ({time.perf_counter() - start:.1f} s)")
            results.append(result)
        results = sort_by_rw(results)
        rows += results
        if plot and results[0].ok:
            png = plot_dir / f"{Path(prediction.source).name}.best-fit.png"
            try:
                plot_fit(results[0], png)
                _say(f"sgmine refine: best fit plotted in {png}")
            except OSError as exc:
                _say(f"sgmine refine: cannot write {png}: {exc.strerror or exc}")

    text = to_csv(rows)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            atomic_write(out, text)
        except OSError as exc:
            return _usage(f"cannot write {out}: {exc.strerror or exc}")
    failed = sum(not r.ok for r in rows)
    if failed:
        _say(f"sgmine refine: {failed} of {len(rows)} rows failed (see message column)")
        return EXIT_SOME_FAILED
    return EXIT_OK


def _usage(message: str) -> int:
    _say(f"sgmine: error: {message}")
    return EXIT_USAGE
