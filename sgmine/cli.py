"""The ``sgmine`` command line: ``scan`` PDFs for candidate space groups, ``info`` on a model,
``models`` shipped with sgmine (``--model NAME`` takes one; :mod:`sgmine.models`).

Exit status of ``sgmine scan``: 0 when every input was scored, 1 when some inputs were error
rows or a ``--report`` reporter failed on some file (the others are still scored and the table
is written; the message column says what failed), 2 for a usage error, an unknown or
unloadable reporter, an ``--out`` file that ``--resume`` cannot continue, or a model that
cannot be used (nothing is written then), 130 when the scan was interrupted (Ctrl-C, or
SIGTERM from ``kill`` or a batch scheduler): with ``--out``, the rows scored so far are then
saved there, and ``--resume`` continues.
``sgmine refine`` and ``sgmine identify`` come from the sgmine-diffpy plugin (plugins/), through
the ``sgmine.commands`` entry points (:mod:`sgmine.commands`), and use the first three statuses.
``sgmine watch`` runs until Ctrl-C or SIGTERM and then exits 0 with its table saved (2 for a
usage error or an unusable model); ``sgmine plot`` exits 0, or 2 when nothing could be drawn.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence

import typer

from sgmine import pdfdefaults
from sgmine.commands import PluginGroup
from sgmine.models import DEFAULT_NAME

if TYPE_CHECKING:
    from sgmine.model import Model
    from sgmine.prediction import Prediction
    from sgmine.reporters import ReportContext, ReporterFailure
    from sgmine.table import Checkpointer

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: --model's help: a shipped model's name or a file (sgmine.models.resolve_model decides which).
MODEL_HELP = f"Shipped model name (see `sgmine models`) or ONNX file [default: {DEFAULT_NAME}]."

app = typer.Typer(
    cls=PluginGroup,  # plug-ins' commands (sgmine.commands entry points) after the built-in ones
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: rendering it with rich costs ~0.3 s of start-up
    help="Candidate space groups from measured pair distribution functions (PDF, G(r)).",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from sgmine import __version__

        typer.echo(f"sgmine {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print sgmine's version and exit."
    ),
) -> None:
    """Candidate space groups from measured pair distribution functions (PDF, G(r))."""


def _fail(message: str) -> NoReturn:
    """Print a one-line error to stderr and exit with the usage/model status."""
    typer.echo(f"sgmine: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _load_model(path: Optional[str], int8: bool = False):
    from sgmine.model import Model, ModelError

    try:
        return Model(path, int8=int8)
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
    model_path: Optional[str] = typer.Option(None, "--model", "-m", metavar="NAME|FILE", help=MODEL_HELP),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f",
        help="csv or json [default: from --out's suffix, .csv or .json (another suffix needs --format); csv on "
        "stdout].",
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="PDFs scored per model call."),
    report_names: Optional[List[str]] = typer.Option(
        None, "--report", "-r",
        help="Reporter run on each scored file; repeat for more: csv (the table, always written), "
        "json (a <file>.sgmine.json sidecar next to each input), or any installed through the "
        "'sgmine.reporters' entry point.  [default: csv]",
    ),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue an earlier scan into --out: keep its scored rows for the inputs given now and "
        "score only the others (its error rows are tried again). Use the same --model and --top-k.",
    ),
    save_every: float = typer.Option(
        30.0, "--save-every", min=0.0,
        help="With --out, save the rows scored so far there (atomically) every this many seconds, so "
        "that a killed scan can be continued with --resume; 0 saves only at the end.",
    ),
    int8: bool = typer.Option(
        False, "--int8",
        help="Score with the INT8 version of the model, <model stem>.int8.onnx beside it (made by "
        "`sgmine-train quantize`, which keeps it only if its top-1 class agrees with float32 on "
        ">= 99.5% of a held-out test set): faster on CPUs with AVX-512 VNNI. Exit 2 if there is none.",
    ),
    plot_out: Optional[Path] = typer.Option(
        None, "--plot",
        help="Also draw the results (as sgmine plot --order table does): a heatmap for several files, "
        "curve and candidates for one. Needs matplotlib (pip install 'sgmine[plot]').",
    ),
) -> None:
    """Score PDFs and write the top-k candidate space groups of each, one row per input.

    Columns: file; status (ok or error); sg_i, symbol_i, prob_i (the i-th candidate's space-group
    number, symbol and calibrated probability); confidence (the top candidate's probability);
    in_domain (true when the curve looks like the crystals the model was trained on, by the
    model's calibrated threshold on confidence or none_of_these; false when it does not or the
    curve itself gives reason to doubt it, as the message says: treat the candidates as
    unreliable; empty for a model without a threshold); none_of_these (for a model with that output: the probability
    that the space group is none of the model's classes, the candidates' probabilities summing to
    1 minus it; empty otherwise); r_min, r_max (the r-range used, Å); qmax (from the file's
    header); message (why a file failed, or warnings).

    Exit status: 0 all scored; 1 some error rows or a reporter failed; 2 usage error; 130 interrupted.
    """
    from sgmine import __version__
    from sgmine.model import ModelError
    from sgmine.reporters import ReportContext
    from sgmine.scan import expand_paths
    from sgmine.table import Checkpointer, render

    started = time.monotonic()
    fmt = _output_format(fmt, out)
    _check_outputs(out, resume, plot_out)
    reporters = _scan_reporters(report_names)
    items = expand_paths(paths)
    model = _load_model(model_path, int8)
    top_k = _top_k_for(model, top_k)
    # Rows scored so far, by input index: those --resume keeps, then each as it is scored.
    results: Dict[int, Prediction] = {}
    if resume and out is not None:
        results = _kept_rows(out, fmt, items, top_k, model)
    saver = Checkpointer(out, fmt, top_k, save_every) if out is not None else None
    context = ReportContext(model.info, str(model.path), top_k, __version__)

    try:
        with _terminate_as_interrupt():
            report_failures = _score_missing(items, results, model, top_k, batch_size, reporters, context, saver)
            predictions = _in_order(results)
            _write_table(render(predictions, fmt, top_k), out)
    except KeyboardInterrupt:
        _stop_interrupted(results, len(items), saver)
    except ModelError as exc:  # the model loaded but cannot score
        _fail(str(exc))
    _finish_scan(predictions, report_failures, out, plot_out, model, started)


def _check_outputs(out: Optional[Path], resume: bool, plot_out: Optional[Path]) -> None:
    """Exit 2 before any work when ``--out``, ``--resume`` or ``--plot`` cannot be honoured."""
    if out is not None and out.is_dir():
        _fail(f"--out {out} is a directory; give a file name")
    if out is not None and not out.parent.exists():
        _fail(f"--out {out}: directory {out.parent} does not exist")
    if resume and out is None:
        _fail("--resume needs --out FILE: the output of the scan to continue")
    if plot_out is not None:
        _check_plot_out(plot_out)


def _scan_reporters(report_names: Optional[List[str]]) -> list:
    """The reporters of ``--report`` (repeated and/or comma-separated names; default csv);
    exit 2 for an unknown or unloadable one."""
    from sgmine.reporters import DEFAULT_REPORTERS, ReporterError, load_reporters

    names = [n.strip() for value in (report_names or DEFAULT_REPORTERS) for n in value.split(",") if n.strip()]
    try:
        return load_reporters(names)
    except ReporterError as exc:
        _fail(str(exc))


def _top_k_for(model: "Model", top_k: int) -> int:
    """``top_k``, or all of the model's classes (with a warning) when it asks for more."""
    n_classes = len(model.info.classes)
    if top_k > n_classes:
        typer.echo(f"sgmine: warning: --top-k {top_k} is more than the model's {n_classes} classes; "
                   f"giving all {n_classes}", err=True)
        return n_classes
    return top_k


def _finish_scan(predictions: List["Prediction"], report_failures: List["ReporterFailure"], out: Optional[Path],
                 plot_out: Optional[Path], model: "Model", started: float) -> None:
    """After a scan: the reporter failures and counts on stderr, the summary line (with
    ``--out``), the ``--plot`` picture; exit 1 when some input or reporter call failed."""
    for failure in report_failures:
        typer.echo(f"sgmine: {failure.source}: {failure.message}", err=True)
    failed = sum(not p.ok for p in predictions)
    if failed:
        typer.echo(f"sgmine: {failed} of {len(predictions)} inputs could not be scored (see message column)", err=True)
    if report_failures:
        typer.echo(f"sgmine: {len(report_failures)} reporter call(s) failed (see message column)", err=True)
    if out is not None:
        typer.echo(_summary(predictions, out, time.monotonic() - started), err=True)
    if plot_out is not None:
        _draw(predictions, plot_out, model=model, order="table")
    if failed or report_failures:
        raise typer.Exit(EXIT_SOME_FAILED)


def _output_format(fmt: Optional[str], out: Optional[Path]) -> str:
    """csv or json: ``--format``, else ``--out``'s suffix (.csv or .json), else csv on stdout; exit 2
    when they disagree, or when ``--out`` has another suffix and no ``--format`` says what to write."""
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    if fmt is None:
        if out is not None and suffix not in ("csv", "json"):
            _fail(f"cannot tell the table's format from --out {out}: name it .csv or .json, or give --format csv|json")
        return "json" if suffix == "json" else "csv"
    fmt = fmt.lower()
    if fmt not in ("csv", "json"):
        _fail(f"unknown --format {fmt!r}; use csv or json")
    if suffix in ("csv", "json") and suffix != fmt:
        _fail(f"--format {fmt} does not match --out {out} (a .{suffix} file); drop --format to take it from "
              f"the suffix, or name the file .{fmt}")
    return fmt


def _summary(predictions: Sequence["Prediction"], out: Path, seconds: float) -> str:
    """The line a scan into ``--out`` ends with: what was scored, what failed, where it went, how long."""
    scored = sum(p.ok for p in predictions)
    doubted = sum(p.ok and p.in_domain is False for p in predictions)
    errors = len(predictions) - scored
    flagged = f" ({doubted} with in_domain = false)" if doubted else ""
    return (f"sgmine: {scored} scored{flagged}, {errors} error{'s' if errors != 1 else ''}; "
            f"table in {out} ({seconds:.1f} s)")


def _write_table(text: str, out: Optional[Path]) -> None:
    """The finished table to stdout, or atomically to ``out`` (exit 2 when that fails)."""
    from sgmine.table import atomic_write

    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        atomic_write(out, text)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")


def _kept_rows(out: Path, fmt: str, items: Sequence[str], top_k: int, model: "Model") -> Dict[int, "Prediction"]:
    """The rows of ``out`` that ``--resume`` keeps, by input index (none when ``out`` does not exist).

    Exits with the usage status when ``out`` is not an sgmine output, or was written with
    another ``--top-k`` or a model with other classes (mixing them would give a wrong table).
    """
    from sgmine.table import read_previous, rows_to_keep

    if not out.exists():
        typer.echo(f"sgmine: --resume: {out} does not exist yet; scoring every input", err=True)
        return {}
    try:
        previous = read_previous(out, fmt)
    except ValueError as exc:
        _fail(f"--resume: {exc}; remove it or drop --resume")
    kept = rows_to_keep(items, previous)
    for prediction in kept.values():
        if len(prediction.candidates) != top_k:
            _fail(f"--resume: {out} has {len(prediction.candidates)} candidates per file, not --top-k {top_k}; "
                  "rerun with the --top-k it was written with, or without --resume")
        unknown = [c.space_group for c in prediction.candidates if c.space_group not in model.info.classes]
        if unknown:
            _fail(f"--resume: {out} names space group {unknown[0]}, which model {model.path} does not have; "
                  "was it written with another --model?")
    typer.echo(f"sgmine: --resume: {len(kept)} of {len(items)} inputs already scored in {out}; "
               f"scoring the other {len(items) - len(kept)}", err=True)
    return kept


def _score_missing(
    items: Sequence[str],
    results: Dict[int, "Prediction"],
    model: "Model",
    top_k: int,
    batch_size: int,
    reporters: Sequence[Any],
    context: "ReportContext",
    saver: Optional["Checkpointer"],
) -> List["ReporterFailure"]:
    """Score the inputs that ``results`` lacks, adding them to it (so an interrupt keeps them).

    Reporters run on each file as soon as it is scored; the rows so far are saved whenever
    ``saver`` says it is time (a failed save is reported and the scan goes on).
    """
    from sgmine.reporters import run_reporters
    from sgmine.scan import iter_predictions

    todo = [i for i in range(len(items)) if i not in results]
    failures: List[ReporterFailure] = []
    progress = _progress(len(todo))
    with progress if progress is not None else nullcontext():
        advance = None
        if progress is not None:
            task = progress.add_task("scan", total=len(todo))
            advance = lambda n: progress.advance(task, n)  # noqa: E731
        stream = iter_predictions([items[i] for i in todo], model, top_k=top_k, batch_size=batch_size,
                                  on_progress=advance)
        try:
            for index, prediction in zip(todo, stream):
                failures += run_reporters([prediction], reporters, context)
                results[index] = prediction
                if saver is not None and saver.due():
                    _save_progress(saver, results)
        finally:
            stream.close()
    return failures


def _in_order(results: Dict[int, "Prediction"]) -> List["Prediction"]:
    """The predictions so far, in input order."""
    return [results[i] for i in sorted(results)]


def _save_progress(saver: "Checkpointer", results: Dict[int, "Prediction"]) -> None:
    """A periodic save; one that fails is reported and does not stop the scan."""
    try:
        saver.save(_in_order(results))
    except OSError as exc:
        typer.echo(f"sgmine: warning: cannot save progress to {saver.path}: {exc.strerror or exc}", err=True)


def _stop_interrupted(results: Dict[int, "Prediction"], total: int, saver: Optional["Checkpointer"]) -> NoReturn:
    """Save the rows scored so far (with ``--out``), say how to continue, exit 130."""
    where = "; nothing was written (with --out FILE, the rows scored so far are kept)" if saver is None else ""
    if saver is not None and results:
        try:
            saver.save(_in_order(results))
            where = (f"; the {len(results)} rows so far are in {saver.path}: "
                     "add --resume to the same command to continue")
        except (OSError, KeyboardInterrupt):
            where = f"; could not save to {saver.path} (it keeps its last complete save, if any)"
    typer.echo(f"sgmine: interrupted after {len(results)} of {total} inputs{where}", err=True)
    raise typer.Exit(EXIT_INTERRUPTED)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While scanning, treat SIGTERM (``kill``, a batch scheduler's time limit) like Ctrl-C."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (sgmine used as a library): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def plot(
    results: Path = typer.Argument(..., help="A table from sgmine scan or sgmine watch (.csv or .json).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="The picture (.png, .pdf or .svg).", show_default=False),
    order: str = typer.Option(
        "name", "--order",
        help="Order of the files along the series: name (natural file-name order), table (as in the "
        "table) or header:KEY (by a value in the files' headers, e.g. header:temperature).",
    ),
    model_path: Optional[str] = typer.Option(
        None, "--model", "-m", metavar="NAME|FILE",
        help=f"The model the table was written with: shipped model name (see `sgmine models`) or ONNX "
        f"file [default: {DEFAULT_NAME}].",
    ),
) -> None:
    """Draw scan results: for several files, a heatmap of every class's probability along the
    series (out-of-domain files marked); for one file, its curve on the model grid beside its
    candidates. The files are scored again for the classes beyond the table's top-k. Needs
    matplotlib (pip install 'sgmine[plot]')."""
    if not results.is_file():
        _fail(f"{results} is not a file")
    _check_plot_out(out)
    from sgmine.plot import PlotError, read_results

    try:
        predictions = read_results(results)
    except PlotError as exc:
        _fail(str(exc))
    _draw(predictions, out, model=_load_model(model_path), order=order)


def _check_plot_out(out: Path) -> None:
    """Exit 2 before any work when the picture cannot be written or matplotlib is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        _fail("plotting needs matplotlib, which is not installed: pip install 'sgmine[plot]'")
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        _fail(f"cannot tell the picture's format from {out}: name it .png, .pdf or .svg")
    if not out.parent.exists():
        _fail(f"{out}: directory {out.parent} does not exist")


def _draw(predictions: Sequence["Prediction"], out: Path, *, model: "Model", order: str) -> None:
    """Draw ``predictions`` into ``out`` (exit 2 with one line when that fails)."""
    from sgmine.plot import PlotError, plot_results

    try:
        series = plot_results(predictions, out, model=model, order=order)
    except PlotError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    for warning in series.warnings:
        typer.echo(f"sgmine: warning: {warning}", err=True)
    typer.echo(f"sgmine: picture of {len(series.points)} file{'s' if len(series.points) != 1 else ''} in {out}",
               err=True)


@app.command()
def watch(
    directory: Path = typer.Argument(..., help="Folder to watch (not recursive).", show_default=False),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="CSV table kept up to date (atomically) [default: DIR/sgmine-watch.csv]."
    ),
    pattern: str = typer.Option("*.gr", "--pattern", "-p", help="Shell pattern of the file names to score."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Candidates per file."),
    model_path: Optional[str] = typer.Option(None, "--model", "-m", metavar="NAME|FILE", help=MODEL_HELP),
    settle: float = typer.Option(
        2.0, "--settle", min=0.0,
        help="Score a file once its size and modification time have not changed for this many seconds.",
    ),
    poll: Optional[float] = typer.Option(
        None, "--poll", min=0.05,
        help="List the folder every this many seconds instead of waiting for file events (network file "
        "systems, where events do not arrive) [default: file events from watchfiles; polling every 1 s "
        "without it].",
    ),
) -> None:
    """Score the PDFs in a folder, then each new or rewritten one as soon as it is complete, keeping a
    CSV table up to date (one row per file, in file-name order). Restarting continues from the
    table without scoring unchanged files again. Stop with Ctrl-C or SIGTERM (the table is saved,
    exit 0)."""
    import threading

    from sgmine.watch import WatchTable, events_available, wakeups

    if not directory.is_dir():
        _fail(f"{directory} is not a folder")
    out = out if out is not None else directory / "sgmine-watch.csv"
    if out.is_dir():
        _fail(f"--out {out} is a directory; give a file name")
    if not out.parent.exists():
        _fail(f"--out {out}: directory {out.parent} does not exist")
    if out.suffix.lower() == ".json":
        _fail("sgmine watch writes CSV; name --out .csv")
    stop = threading.Event()
    with _signals_set(stop):  # from here on, Ctrl-C and SIGTERM end the watch cleanly
        model = _load_model(model_path)
        if top_k > len(model.info.classes):
            typer.echo(f"sgmine: warning: --top-k {top_k} is more than the model's {len(model.info.classes)} "
                       f"classes; giving all {len(model.info.classes)}", err=True)
        table = WatchTable(directory, out=out, model=model, pattern=pattern, top_k=top_k, settle=settle,
                           log=lambda line: typer.echo(f"sgmine: {line}", err=True))
        try:
            kept = table.resume()
        except ValueError as exc:
            _fail(f"{exc}; remove it or give another --out")
        if kept:
            typer.echo(f"sgmine: {kept} unchanged files already scored in {out}", err=True)
        how = (f"listing it every {poll:g} s" if poll is not None else "on file events" if events_available()
               else "listing it every 1 s (pip install watchfiles for file events)")
        typer.echo(f"sgmine: watching {directory} for {pattern} ({how}); table in {out}; Ctrl-C to stop", err=True)
        try:
            if not stop.is_set():
                table.update()
                for _ in wakeups(directory, stop=stop, poll=poll):
                    table.update()
        except KeyboardInterrupt:  # a second Ctrl-C while a pass ran
            pass
        except OSError as exc:
            _fail(f"cannot keep {out} up to date: {exc.strerror or exc}")
        finally:
            try:
                table.save()
            except OSError as exc:
                typer.echo(f"sgmine: error: cannot save {out}: {exc.strerror or exc}", err=True)
    typer.echo(f"sgmine: stopped; {len(table.rows)} files in {out}", err=True)


@contextmanager
def _signals_set(stop: Any) -> Iterator[None]:
    """While watching, Ctrl-C and SIGTERM set ``stop`` (the loop ends after its pass); a second one
    interrupts the pass itself."""

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@app.command()
def info(
    model_path: Optional[str] = typer.Option(None, "--model", "-m", metavar="NAME|FILE", help=MODEL_HELP),
) -> None:
    """Describe a model: its classes, r-grid, preprocessing, training data and version."""
    from sgmine.models import shipped_name

    model = _load_model(model_path)
    i, g = model.info, model.info.grid
    name = shipped_name(model.path)
    lines = [
        *([f"name:           {name} (shipped{', default' if name == DEFAULT_NAME else ''})"] if name else []),
        f"model:          {model.path}",
        f"version:        {i.model_version}",
        f"classes:        {len(i.classes)}",
        *[f"  {sg:>3}  {sym}" for sg, sym in zip(i.classes, i.symbols)],
        f"r-grid:         {g.npoints} points, {g.rmin:g}–{g.rmax:g} Å (step {g.step:.4f} Å)",
        f"interpolation:  {g.interpolation}",
        f"normalisation:  {g.normalisation}",
        f"temperature:    {i.temperature:g}",
        "in-domain:      "
        + (f"probability of none of these <= {i.none_of_these_threshold:.3f}" if i.none_of_these_threshold is not None
           else f"top-1 probability >= {i.in_domain_threshold:.3f}" if i.in_domain_threshold is not None
           else "(not calibrated)"),
        "none of these:  " + ("an output of its own (the rest of the class probabilities to 1)" if i.none_of_these
                              else "no output of its own (the in-domain threshold only)"),
        f"training data:  {i.training_data or '(not recorded)'}",
    ]
    if i.metrics:
        lines.append("metrics:")
        lines += [f"  {k}: {v}" for k, v in i.metrics.items()]
    typer.echo("\n".join(lines))


@app.command()
def models(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (one object per model) instead."),
) -> None:
    """List the models shipped with sgmine (use one with --model NAME): name, version, space
    groups, description, file size, which is the default. Reads only their metadata."""
    import json

    from sgmine.model import describe
    from sgmine.models import format_listing, shipped_models

    entries = [describe(m) for m in shipped_models().values()]
    typer.echo(json.dumps(entries, indent=2) if as_json else format_listing(entries), nl=as_json)
    if any("error" in e for e in entries):
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def simulate(
    structures: List[Path] = typer.Argument(..., help="Crystal structure files (CIF, ...).", show_default=False),
    out_dir: Path = typer.Option(..., "--out-dir", "-o", help="Write <stem>.gr files here (created if missing)."),
    qmax: float = typer.Option(pdfdefaults.QMAX, "--qmax", min=0.0, help="Qmax of the termination, Å⁻¹ (0 = none)."),
    qdamp: float = typer.Option(pdfdefaults.QDAMP, "--qdamp", min=0.0, help="Q-resolution damping, Å⁻¹."),
    uiso: Optional[float] = typer.Option(
        pdfdefaults.UISO, "--uiso", help="Isotropic displacement parameter for every atom, Å² (0 = keep the file's ADPs)."
    ),
    delta2: float = typer.Option(pdfdefaults.DELTA2, "--delta2", min=0.0, help="Correlated-motion sharpening, Å²."),
    rmin: float = typer.Option(0.0, "--rmin", min=0.0, help="First r, Å."),
    rmax: float = typer.Option(30.0, "--rmax", help="Last r, Å."),
    rstep: float = typer.Option(0.01, "--rstep", help="r spacing, Å."),
    radiation: str = typer.Option(pdfdefaults.RADIATION, "--radiation", help="xray or neutron."),
) -> None:
    """Simulate G(r) of crystal structures (PDFgui/pdffit2 conventions) to compare with a measurement.
    Needs the simulate extra (pip install 'sgmine[simulate]')."""
    _require_simulate_extra()
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


#: What ``sgmine simulate`` imports beyond the runtime: the ``simulate`` extra.
SIMULATE_MODULES = ("diffpy.structure", "periodictable")


def _require_simulate_extra() -> None:
    """Exit 2 with one line when a module of the ``simulate`` extra is not installed."""
    import importlib.util

    for name in SIMULATE_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # its parent package (diffpy) is missing
            found = False
        if not found:
            _fail(f"sgmine simulate needs {name}, which is not installed: pip install 'sgmine[simulate]'")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
