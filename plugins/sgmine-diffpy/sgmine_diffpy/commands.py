"""The plug-in's commands, ``sgmine refine`` and ``sgmine identify``: their options and help.

sgmine finds them through the ``sgmine.commands`` entry points in this package's
pyproject.toml (see :mod:`sgmine.commands`). This module imports only typer, because
``sgmine --help`` loads it to list the commands; each command imports its work
(:func:`sgmine_diffpy.cli.run_refine`, :func:`sgmine_diffpy.identify.run_identify`) when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, NoReturn, Optional

import typer

from sgmine.pdfdefaults import QDAMP, RADIATION

EXIT_USAGE = 2


def _fail(message: str) -> NoReturn:
    """Print a one-line error to stderr and exit with the usage status."""
    typer.echo(f"sgmine: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def refine(
    paths: List[str] = typer.Argument(..., help="PDF files, globs, or directories (their .gr files).", show_default=False),
    cif_dir: Path = typer.Option(..., "--cif-dir", "-c", help="Folder of candidate structures (*.cif).", show_default=False),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Candidate space groups whose structures are refined."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the table here (atomically) instead of stdout."),
    model_path: Optional[Path] = typer.Option(None, "--model", "-m", metavar="NAME|FILE", help="Shipped model name (see `sgmine models`) or ONNX file [default: sg8]."),
    qmax: Optional[float] = typer.Option(None, "--qmax", help="Qmax (1/Å) for files whose header has none [default: 0, no termination ripples]."),
    qdamp: Optional[float] = typer.Option(None, "--qdamp", help=f"Qdamp (1/Å) for files whose header has none [default: {QDAMP:g}]."),
    fit_qdamp: bool = typer.Option(False, "--fit-qdamp", help="Refine Qdamp too (for a calibration standard such as Ni)."),
    rmin: float = typer.Option(1.5, "--rmin", help="Fit range start (Å)."),
    rmax: float = typer.Option(30.0, "--rmax", help="Fit range end (Å)."),
    plot_dir: Optional[Path] = typer.Option(None, "--plot-dir", help="Where <file>.best-fit.png goes [default: --out's folder, else the current one]."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw each file's best fit (data, model, difference)."),
    structures: Optional[Path] = typer.Option(
        None, "--structures", metavar="DIR",
        help="Where each file's best fit goes for PDFgui or diffpy.srfit: <file>.best-fit.cif (the refined structure, "
             "the CIF's site labels) and <file>.best-fit.fgr (r, Gobs, Gcalc, Gdiff); made if missing "
             "[default: --out's folder, else the current one]."),
    every: bool = typer.Option(
        False, "--all",
        help="Refine every structure of --cif-dir, also those whose space group is not among the model's top-k "
             "(without it they are listed as skipped rows, with the reason)."),
) -> None:
    """Refine every library structure in the top-k space groups against the measured G(r) with
    pdffit2 (scale; lattice; isotropic ADPs and delta2; then the atom coordinates the space group
    leaves free); rows sorted by Rw. Each file's best fit is written as a CIF and an .fgr that
    PDFgui or diffpy.srfit open. Needs the sgmine-diffpy plugin (pip install ./plugins/sgmine-diffpy)."""
    try:
        from sgmine_diffpy.cli import run_refine
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("sgmine_diffpy"):
            _fail("sgmine refine needs the sgmine-diffpy plugin: install plugins/sgmine-diffpy "
                  "(pip install ./plugins/sgmine-diffpy)")
        _fail(f"the sgmine-diffpy plugin needs {exc.name}, which is not installed "
              "(pip install ./plugins/sgmine-diffpy installs its dependencies)")
    status = run_refine(paths, cif_dir, top_k=top_k, out=out, model_path=model_path, qmax=qmax, qdamp=qdamp,
                        rmin=rmin, rmax=rmax, fit_qdamp=fit_qdamp, plot_dir=plot_dir, plot=plot,
                        structures=structures, every=every)
    raise typer.Exit(status)


def identify(
    paths: List[str] = typer.Argument(..., help="PDF files, globs, or directories (their .gr files).", show_default=False),
    library: str = typer.Option("default", "--library", "-l", help="'default' (shipped), a folder of CIFs, a CIF table (.csv/.csv.gz) or a .npz library."),
    top: int = typer.Option(10, "--top", "-n", min=1, help="Best-screened structures refined per file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the table here (atomically) instead of stdout; the per-file summary goes beside it (<name>.summary.csv)."),
    summary: Optional[Path] = typer.Option(None, "--summary", help="Write the per-file summary here [default: beside --out]."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for <file>.identify.png, the best fit of each file (made if missing)."),
    model_path: Optional[Path] = typer.Option(None, "--model", "-m", metavar="NAME|FILE", help="Shipped model name (see `sgmine models`) or ONNX file [default: sg8]."),
    qmax: Optional[float] = typer.Option(None, "--qmax", help="Qmax (1/Å) for files whose header has none [default: no termination]."),
    qdamp: Optional[float] = typer.Option(None, "--qdamp", help=f"Qdamp (1/Å) for files whose header has none [default: {QDAMP:g}]."),
    radiation: Optional[str] = typer.Option(None, "--radiation", help=f"xray or neutron, for files whose header does not say [default: {RADIATION}]."),
    rmin: float = typer.Option(1.5, "--rmin", help="Screen and fit range start (Å)."),
    rmax: float = typer.Option(30.0, "--rmax", help="Screen and fit range end (Å)."),
    composition: Optional[str] = typer.Option(
        None, "--composition", "-c", metavar="FORMULA",
        help="The sample's composition for every file (La0.8Ca0.2MnO3, 'C 10 H 8'); wins over the header's."),
    compositions: Optional[Path] = typer.Option(
        None, "--compositions", metavar="TABLE.csv",
        help="Per-file compositions: a CSV with columns file,composition (a file matches by its name as given "
             "or its base name); wins over --composition and the header."),
    structures: Optional[Path] = typer.Option(
        None, "--structures", metavar="DIR",
        help="Where each file's answer goes for PDFgui or diffpy.srfit: <file>.identify.cif (the refined structure) "
             "and <file>.identify.fgr (r, Gobs, Gcalc, Gdiff); made if missing. A file with no answer gets none."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=0,
        help="Files identified at once on this machine, each in a process of its own (0: one per core); "
             "the same table as one after another."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", metavar="ADDRESS",
        help="Run each file as a task on this Dask cluster (tcp://host:8786; needs dask.distributed); the workers "
             "must read the files and the library at the same paths. Instead of --jobs."),
) -> None:
    """Screen a structure library against each measured G(r), refine the best --top with pdffit2,
    and rank the space groups by refined Rw and the CNN's probability. With the sample's
    composition (header, --composition or --compositions), structure types decorated with its
    elements and its chemical system's compounds are screened and refined too, in any space
    group. Needs the sgmine-diffpy plugin (pip install ./plugins/sgmine-diffpy)."""
    try:
        from sgmine_diffpy.identify import run_identify
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("sgmine_diffpy"):
            _fail("sgmine identify needs the sgmine-diffpy plugin: install plugins/sgmine-diffpy "
                  "(pip install ./plugins/sgmine-diffpy)")
        _fail(f"the sgmine-diffpy plugin needs {exc.name}, which is not installed "
              "(pip install ./plugins/sgmine-diffpy installs its dependencies)")
    status = run_identify(paths, library=library, top=top, out=out, summary_out=summary, plots=plots,
                          model_path=model_path, qmax=qmax, qdamp=qdamp, radiation=radiation, rmin=rmin, rmax=rmax,
                          composition=composition, compositions=compositions, structures=structures, jobs=jobs,
                          scheduler=scheduler)
    raise typer.Exit(status)
