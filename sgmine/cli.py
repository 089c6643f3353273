"""The ``sgmine`` command line: ``scan`` PDFs for candidate space groups, ``info`` on a model.

Exit status of ``sgmine scan``: 0 when every input was scored, 1 when some inputs were error
rows or a ``--report`` reporter failed on some file (the others are still scored and the table
is written; the message column says what failed), 2 for a usage error, an unknown or
unloadable reporter, or a model that cannot be used (nothing is written then).
``sgmine refine`` (from the sgmine-diffpy plugin in plugins/) uses the same three statuses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: rendering it with rich costs ~0.3 s of start-up
    help="Candidate space groups from measured pair distribution functions (PDF, G(r)).",
)


def _fail(message: str) -> None:
    """Print a one-line error to stderr and exit with the usage/model status."""
    typer.echo(f"sgmine: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _load_model(path: Optional[Path]):
    from sgmine.model import Model, ModelError

    try:
        return Model(path)
    except ModelError as exc:
        _fail(str(exc))


def _progress(total: int):
    """A rich progress bar on stderr when it is a terminal and the run is long; else None."""
    if total < 20 or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@app.command()
def scan(
    paths: List[str] = typer.Argument(..., help="PDF files, globs, or directories (their .gr files).", show_default=False),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Candidates per file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here (atomically) instead of stdout."),
    model_path: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model file [default: the shipped model]."),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f", help="csv or json [default: from --out's suffix, else csv]."
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="PDFs scored per model call."),
    report_names: Optional[List[str]] = typer.Option(
        None, "--report", "-r",
        help="Reporter run on each scored file; repeat for more: csv (the table, always written), "
        "json (a <file>.sgmine.json sidecar next to each input), or any installed through the "
        "'sgmine.reporters' entry point.  [default: csv]",
    ),
) -> None:
    """Score PDFs and write the top-k candidate space groups of each, one row per input."""
    from sgmine import __version__
    from sgmine.report import atomic_write, to_csv, to_json
    from sgmine.reporters import DEFAULT_REPORTERS, ReportContext, ReporterError, load_reporters, run_reporters
    from sgmine.scan import expand_paths, iter_predictions

    if fmt is None:
        fmt = "json" if out is not None and out.suffix.lower() == ".json" else "csv"
    fmt = fmt.lower()
    if fmt not in ("csv", "json"):
        _fail(f"unknown --format {fmt!r}; use csv or json")
    if out is not None and out.is_dir():
        _fail(f"--out {out} is a directory; give a file name")
    if out is not None and not out.parent.exists():
        _fail(f"--out {out}: directory {out.parent} does not exist")

    names = [n.strip() for value in (report_names or DEFAULT_REPORTERS) for n in value.split(",") if n.strip()]
    try:
        reporters = load_reporters(names)
    except ReporterError as exc:
        _fail(str(exc))

    items = expand_paths(paths)
    model = _load_model(model_path)
    top_k = min(top_k, len(model.info.classes))

    progress = _progress(len(items))
    if progress is None:
        predictions = list(iter_predictions(items, model, top_k=top_k, batch_size=batch_size))
    else:
        with progress:
            task = progress.add_task("scan", total=len(items))
            predictions = list(
                iter_predictions(
                    items, model, top_k=top_k, batch_size=batch_size,
                    on_progress=lambda n: progress.advance(task, n),
                )
            )

    context = ReportContext(model.info, str(model.path), top_k, __version__)
    report_failures = run_reporters(predictions, reporters, context)
    for failure in report_failures:
        typer.echo(f"sgmine: {failure.source}: {failure.message}", err=True)

    text = to_json(predictions) if fmt == "json" else to_csv(predictions, top_k)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            atomic_write(out, text)
        except OSError as exc:
            _fail(f"cannot write {out}: {exc.strerror or exc}")
    failed = sum(not p.ok for p in predictions)
    if failed:
        typer.echo(f"sgmine: {failed} of {len(predictions)} inputs could not be scored (see message column)", err=True)
    if report_failures:
        typer.echo(f"sgmine: {len(report_failures)} reporter call(s) failed (see message column)", err=True)
    if failed or report_failures:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def info(
    model_path: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model file [default: the shipped model]."),
) -> None:
    """Describe a model: its classes, r-grid, preprocessing, training data and version."""
    model = _load_model(model_path)
    i, g = model.info, model.info.grid
    lines = [
        f"model:          {model.path}",
        f"version:        {i.model_version}",
        f"classes:        {len(i.classes)}",
        *[f"  {sg:>3}  {sym}" for sg, sym in zip(i.classes, i.symbols)],
        f"r-grid:         {g.npoints} points, {g.rmin:g}–{g.rmax:g} Å (step {g.step:.4f} Å)",
        f"interpolation:  {g.interpolation}",
        f"normalisation:  {g.normalisation}",
        f"temperature:    {i.temperature:g}",
        "in-domain:      "
        + (f"top-1 probability >= {i.in_domain_threshold:.3f}" if i.in_domain_threshold is not None else "(not calibrated)"),
        f"training data:  {i.training_data or '(not recorded)'}",
    ]
    if i.metrics:
        lines.append("metrics:")
        lines += [f"  {k}: {v}" for k, v in i.metrics.items()]
    typer.echo("\n".join(lines))


@app.command()
def simulate(
    structures: List[Path] = typer.Argument(..., help="Crystal structure files (CIF, ...).", show_default=False),
    out_dir: Path = typer.Option(..., "--out-dir", "-o", help="Write <stem>.gr files here (created if missing)."),
    qmax: float = typer.Option(25.0, "--qmax", min=0.0, help="Qmax of the termination, Å⁻¹ (0 = none)."),
    qdamp: float = typer.Option(0.04, "--qdamp", min=0.0, help="Q-resolution damping, Å⁻¹."),
    uiso: Optional[float] = typer.Option(
        0.005, "--uiso", help="Isotropic displacement parameter for every atom, Å² (0 = keep the file's ADPs)."
    ),
    delta2: float = typer.Option(2.3, "--delta2", min=0.0, help="Correlated-motion sharpening, Å²."),
    rmin: float = typer.Option(0.0, "--rmin", min=0.0, help="First r, Å."),
    rmax: float = typer.Option(30.0, "--rmax", help="Last r, Å."),
    rstep: float = typer.Option(0.01, "--rstep", help="r spacing, Å."),
    radiation: str = typer.Option("xray", "--radiation", help="xray or neutron."),
) -> None:
    """Simulate G(r) of crystal structures (PDFgui/pdffit2 conventions) to compare with a measurement."""
    from sgmine.simulate import PDFParams, SimulationError, simulate_file

    try:
        params = PDFParams(
            qmax=qmax, qdamp=qdamp, uiso=uiso if uiso else None, delta2=delta2, radiation=radiation.lower()
        )
    except SimulationError as exc:
        _fail(str(exc))
    if not (rmax > rmin and rstep > 0):
        _fail(f"need --rmax > --rmin and --rstep > 0 (got {rmin}, {rmax}, {rstep})")
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--out-dir {out_dir} is a file; give a directory")
    failed = 0
    for path in structures:
        try:
            written = simulate_file(path, out_dir, params, rmin=rmin, rmax=rmax, rstep=rstep)
        except (SimulationError, OSError) as exc:
            failed += 1
            typer.echo(f"sgmine: error: {exc}", err=True)
            continue
        typer.echo(str(written))
    if failed:
        typer.echo(f"sgmine: {failed} of {len(structures)} structures could not be simulated", err=True)
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def refine(
    paths: List[str] = typer.Argument(..., help="PDF files, globs, or directories (their .gr files).", show_default=False),
    cif_dir: Path = typer.Option(..., "--cif-dir", "-c", help="Folder of candidate structures (*.cif).", show_default=False),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Candidate space groups whose structures are refined."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the table here (atomically) instead of stdout."),
    model_path: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model file [default: the shipped model]."),
    qmax: Optional[float] = typer.Option(None, "--qmax", help="Qmax (1/Å) for files whose header has none [default: 0, no termination ripples]."),
    qdamp: Optional[float] = typer.Option(None, "--qdamp", help="Qdamp (1/Å) for files whose header has none [default: 0.04]."),
    fit_qdamp: bool = typer.Option(False, "--fit-qdamp", help="Refine Qdamp too (for a calibration standard such as Ni)."),
    rmin: float = typer.Option(1.5, "--rmin", help="Fit range start (Å)."),
    rmax: float = typer.Option(30.0, "--rmax", help="Fit range end (Å)."),
    plot_dir: Optional[Path] = typer.Option(None, "--plot-dir", help="Where <file>.best-fit.png goes [default: --out's folder, else the current one]."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw each file's best fit (data, model, difference)."),
) -> None:
    """Refine every library structure in the top-k space groups against the measured G(r) with
    pdffit2 (scale, lattice, isotropic ADPs, delta2); rows sorted by Rw. Needs the sgmine-diffpy
    plugin (pip install ./plugins/sgmine-diffpy)."""
    try:
        from sgmine_diffpy.cli import run_refine
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("sgmine_diffpy"):
            _fail("sgmine refine needs the sgmine-diffpy plugin: install plugins/sgmine-diffpy "
                  "(pip install ./plugins/sgmine-diffpy)")
        _fail(f"the sgmine-diffpy plugin needs {exc.name}, which is not installed "
              "(pip install ./plugins/sgmine-diffpy installs its dependencies)")
    status = run_refine(paths, cif_dir, top_k=top_k, out=out, model_path=model_path, qmax=qmax, qdamp=qdamp,
                        rmin=rmin, rmax=rmax, fit_qdamp=fit_qdamp, plot_dir=plot_dir, plot=plot)
    raise typer.Exit(status)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
