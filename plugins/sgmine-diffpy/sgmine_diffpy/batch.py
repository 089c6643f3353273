"""``sgmine identify`` on many files: in parallel on this machine (``--jobs N``) or on a Dask
cluster (``--scheduler ADDRESS``); the same table as one file after another.

How a file runs
    One at a time (``--jobs 1``, the default), each file is identified in this process
    (:func:`~sgmine_diffpy.identify.identify_file`, which refines its candidates in child
    processes, one per core). In parallel, each file is identified in a fresh Python process of
    its own (:func:`identify_in_process`) that opens the library and the model itself (about a
    second) and hands back the file's rows and summary. So

    - a crash while one file is identified (the screen, memory) costs that file an error row,
      never the batch;
    - the file's process can start its refinement processes, also inside Dask's worker
      processes, which are daemonic by default and may not start multiprocessing children;
    - nothing crosses a fork that must not (the CNN's onnxruntime threads).

``--jobs N``
    N threads here, each running one file's process at a time (``--jobs 0``: one per core).
    Each file refines ``cores // N`` candidates at once, so that files × refinements fill the
    cores without oversubscribing them. The library's screening curves are computed here first
    where they are not cached yet, so that the files' processes share them.

``--scheduler ADDRESS``
    One Dask task per file (:func:`dask_client`); the task runs the file's process on its worker,
    with ``cores // (Dask threads on that host)`` refinements at once. The workers need
    sgmine-diffpy installed and must read the files, the library and the model at the paths
    given here (a shared file system; relative paths are taken from the folder the command ran
    in). One worker of each host first computes the library's screening curves where that host
    has none cached (``$SGMINE_CACHE``), so that its other workers do not all compute them.

:func:`identify_files` yields the files as they finish, with their index;
:func:`~sgmine_diffpy.identify.run_identify` writes the table in input order.
"""

from __future__ import annotations

import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

#: Seconds ``--scheduler`` waits for the Dask scheduler to answer.
SCHEDULER_TIMEOUT = 10.0
#: What the file's process runs (:func:`main`).
_CHILD = "import sys; from sgmine_diffpy.batch import main; sys.exit(main(sys.argv[1:]))"


class BatchError(ValueError):
    """A batch that cannot start: no dask.distributed, or a scheduler that does not answer."""


class _ChildError(RuntimeError):
    """A file's process that ended without its result."""


@dataclass(frozen=True)
class FileJob:
    """What a process needs to identify a file as ``sgmine identify`` would (picklable).

    Attributes
    ----------
    library : str
        ``--library`` as given: ``default``, a CIF folder, a CIF table or a ``.npz`` library.
    model : str or None
        ``--model`` as given (a shipped model's name or an ONNX file); None: the default.
    options : dict
        :func:`~sgmine_diffpy.identify.identify_file`'s keyword options (``top``, ``qmax``,
        ``composition``, ``compositions`` ...).
    workers : int or None
        Refinements each file runs at once; None: one per core.
    cwd : str
        The folder that relative paths start from.
    """

    library: str = "default"
    model: str | None = None
    options: dict = field(default_factory=dict)
    workers: int | None = None
    cwd: str = field(default_factory=os.getcwd)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def identify_files(files: list[str], job: FileJob, *, jobs: int = 1, client=None, library=None, model=None,
                   say=None) -> Iterator[tuple[int, list, object]]:
    """Identify ``files``, one after another or in parallel (module text).

    Parameters
    ----------
    files
        The input files, as the user named them.
    job
        How to identify each (:class:`FileJob`; its ``workers`` is set here).
    jobs
        Files at once on this machine; 0: one per core. At most one per file: one file (or
        ``jobs=1``) is identified in this process with ``library`` and ``model``.
    client
        A ``dask.distributed.Client`` (:func:`dask_client`): one task per file on its cluster,
        ``jobs`` unused; closed when the files are done.
    library, model
        The open :class:`~sgmine_diffpy.identify.ScreeningLibrary` and model of ``job``.
    say
        Where progress lines go (stderr).

    Yields
    ------
    tuple
        ``(index in files, rows, summary)`` of each file as it finishes; a file whose process or
        task failed is one error row, and its summary says why.
    """
    if client is not None:
        yield from _on_dask(files, job, client)
        return
    parallel = min(jobs or available_cores(), len(files))
    if parallel <= 1:
        yield from _here(files, job, library, model, say)
        return
    if library is not None:
        library.curves("xray", say)  # computed (both radiations) and cached once, not by every file's process
    yield from _on_this_machine(files, replace(job, workers=max(1, available_cores() // parallel)), parallel)


def _here(files, job: FileJob, library, model, say):
    from sgmine_diffpy.identify import identify_file

    for index, path in enumerate(files):
        yield (index, *identify_file(path, library, model=model, say=say, workers=job.workers, **job.options))


def _on_this_machine(files, job: FileJob, jobs: int):
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sgmine-identify")
    try:
        futures = {pool.submit(identify_in_process, path, job): index for index, path in enumerate(files)}
        for future in as_completed(futures):
            index = futures[future]
            yield (index, *_outcome(future, files[index]))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _outcome(future, path: str, where: str = ""):
    """The future's ``(rows, summary)``, or the file's error row where it raised."""
    from sgmine_diffpy.identify import _failed
    from sgmine_diffpy.rows import FileSummary

    try:
        return future.result()
    except Exception as exc:  # a process that could not start, a task the cluster lost
        return _failed(FileSummary(path), f"{where}{type(exc).__name__}: {exc}", time.perf_counter())


# --------------------------------------------------------------------------- Dask


def dask_client(address: str, *, timeout: float | None = None):
    """A ``dask.distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``).

    Raises
    ------
    BatchError
        dask.distributed is not installed, or the scheduler does not answer within ``timeout``
        seconds (default :data:`SCHEDULER_TIMEOUT`).
    """
    try:
        from distributed import Client
    except ImportError:
        raise BatchError("--scheduler needs dask.distributed (pip install distributed)") from None
    seconds = SCHEDULER_TIMEOUT if timeout is None else timeout
    try:
        return Client(address, timeout=seconds, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:  # distributed's comm errors are OSErrors
        raise BatchError(f"--scheduler {address}: no Dask scheduler answered within {seconds:g} s ({exc})") from None


def _on_dask(files, job: FileJob, client):
    from distributed import as_completed as finished

    try:
        threads, first = _hosts(client)
        warm = [client.submit(prepare_in_process, job, workers=[address], pure=False) for address in first.values()]
        client.gather(warm, errors="skip")
        futures = [client.submit(_dask_task, path, job, threads, pure=False) for path in files]
        index = {future.key: i for i, future in enumerate(futures)}
        for future in finished(futures, loop=client.loop):
            i = index[future.key]
            yield (i, *_outcome(future, files[i], "on the Dask cluster: "))
    finally:
        client.close()


def _hosts(client) -> tuple[dict[str, int], dict[str, str]]:
    """``(Dask threads per host, one worker address per host)`` of the connected workers."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before 2025: every worker without asking
        workers = client.scheduler_info()["workers"]
    threads: Counter = Counter()
    first: dict[str, str] = {}
    for address, info in workers.items():
        threads[info["host"]] += int(info.get("nthreads") or 1)
        first.setdefault(info["host"], address)
    return dict(threads), first


def _dask_task(path: str, job: FileJob, threads: dict[str, int]):
    """One file on a Dask worker: its process, with this host's share of the cores."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    here = threads.get(get_address_host(worker.address)) or worker.state.nthreads
    return identify_in_process(path, replace(job, workers=max(1, available_cores() // max(1, here))))


# --------------------------------------------------------------------------- the file's process


def identify_in_process(path: str, job: FileJob) -> tuple[list, object]:
    """Identify ``path`` as ``job`` says in a fresh Python process (module text).

    Returns
    -------
    tuple
        ``(rows, summary)`` as :func:`~sgmine_diffpy.identify.identify_file` gives them; one
        error row where the process crashed or ended without them.
    """
    from sgmine_diffpy.identify import _failed
    from sgmine_diffpy.rows import FileSummary

    start = time.perf_counter()
    try:
        return _in_child((path, job), job.cwd)
    except _ChildError as exc:
        return _failed(FileSummary(path), str(exc), start)


def prepare_in_process(job: FileJob) -> None:
    """Compute the screening curves of ``job``'s library (cached on this machine) in a process
    of its own; a library that cannot be opened is left to the files to report."""
    try:
        _in_child((None, job), job.cwd)
    except _ChildError:
        pass


def _in_child(task: tuple, cwd: str):
    """Run :func:`main` on ``task`` in a fresh interpreter, its output on our stderr."""
    with tempfile.TemporaryDirectory(prefix="sgmine-identify-") as folder:
        given, taken = Path(folder) / "task.pickle", Path(folder) / "result.pickle"
        given.write_bytes(pickle.dumps(task))
        code = subprocess.run([sys.executable, "-c", _CHILD, str(given), str(taken)], stdin=subprocess.DEVNULL,
                              stdout=2, cwd=cwd if os.path.isdir(cwd) else None).returncode
        if code == 0 and taken.is_file():
            return pickle.loads(taken.read_bytes())
    raise _ChildError(f"identification crashed (killed by signal {-code})" if code < 0
                      else f"identification ended without a result (exit status {code})")


def main(argv: list[str]) -> int:
    """The file's process: ``TASK RESULT``, two pickle files. Identifies the task's file (or,
    for a task without one, computes the library's screening curves) and writes the outcome."""
    given, taken = argv
    path, job = pickle.loads(Path(given).read_bytes())
    outcome = _identify_here(path, job) if path is not None else _prepare_here(job)
    Path(taken).write_bytes(pickle.dumps(outcome))
    return 0


def _identify_here(path: str, job: FileJob):
    from sgmine.model import ModelError
    from sgmine.scan import load_model
    from sgmine_diffpy.cli import _say
    from sgmine_diffpy.identify import _failed, identify_file, open_library
    from sgmine_diffpy.rows import FileSummary
    from sgmine_diffpy.structlib import StructureLibraryError

    start = time.perf_counter()
    try:
        library, model = open_library(job.library), load_model(job.model)
    except (StructureLibraryError, ModelError) as exc:
        return _failed(FileSummary(path), f"cannot open the library or the model on {platform.node()}: {exc}", start)
    return identify_file(path, library, model=model, say=_say, workers=job.workers, **job.options)


def _prepare_here(job: FileJob) -> None:
    from sgmine_diffpy.cli import _say
    from sgmine_diffpy.identify import open_library

    open_library(job.library).curves("xray", _say)
