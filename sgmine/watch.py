"""Watching a folder: score each PDF file as it lands, and keep a results table up to date.

``sgmine watch DIR`` is a loop around :func:`sgmine.scan.iter_predictions`. Each pass lists
the folder's files that match the pattern and compares them with the table:

- a file is scored once it is *complete*: its size and modification time have not changed for
  ``settle`` seconds (a file still being written is never scored half-way; if it changes after
  it was scored, it is scored again);
- a file that is rewritten (new size or mtime) is scored again; a deleted file loses its row;
  a renamed file keeps its row under the new name (same size and mtime, nothing rescored);
- after every change the table is rewritten atomically (:func:`sgmine.files.atomic_write`),
  one row per file in natural file-name order (``T90K`` before ``T100K``).

The table is ``sgmine scan``'s CSV (:func:`sgmine.table.csv_row`) with two more columns,
``size`` and ``mtime_ns``: the file's state when it was scored. A restarted watch reads them
back and keeps every row whose file is unchanged, so nothing is scored twice.

File events come from ``watchfiles`` (the ``watch`` extra) when it is installed; they only
wake the loop early. With ``poll`` seconds (network file systems, where events do not
arrive) or without ``watchfiles``, the folder is listed every ``poll`` seconds instead.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sgmine.files import atomic_write
from sgmine.model import Model
from sgmine.prediction import Prediction
from sgmine.scan import iter_predictions
from sgmine.table import csv_columns, csv_row, from_csv_row

#: Columns after ``sgmine scan``'s: the scored file's size and mtime (ns), for restarts.
STATE_COLUMNS = ("size", "mtime_ns")
#: Seconds a file's size and mtime must stay unchanged before it is scored.
DEFAULT_SETTLE = 2.0
#: Seconds between passes when polling without file events.
DEFAULT_POLL = 1.0
#: Longest wait (s) for file events before a pass anyway (files waiting to settle).
EVENT_TIMEOUT = 0.5

_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def natural_key(name: str) -> tuple:
    """Sort key that orders numbers in names by value: ``T90K`` < ``T100K``, ``x0.5`` > ``x0.12``."""
    parts = _NUMBER.split(name)
    return tuple((0, float(part), part) if i % 2 else (1, 0.0, part.lower()) for i, part in enumerate(parts))


@dataclass(frozen=True)
class FileState:
    """What says a file has changed: its size in bytes and its modification time in ns."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike) -> FileState | None:
        """The state of ``path``, or None when it is gone (or not a regular file)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not os.path.isfile(path):
            return None
        return cls(st.st_size, st.st_mtime_ns)


@dataclass
class Row:
    """One file's row: its prediction and the file's state when it was scored."""

    prediction: Prediction
    state: FileState | None


@dataclass
class _Pending:
    """A file seen but not yet scored: its state and since when (monotonic s) it has had it."""

    state: FileState
    since: float


@dataclass
class Changes:
    """What one pass did, for the log."""

    scored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.scored or self.removed or self.renamed)


class WatchTable:
    """The results table of one watched folder, and the pass that brings it up to date.

    Parameters
    ----------
    directory
        The folder to watch (not recursive).
    out
        The CSV file to keep up to date.
    model
        The model to score with.
    pattern
        Shell pattern of the file names to score (hidden files are always skipped).
    top_k
        Candidates per file (at most the model's number of classes).
    settle
        Seconds a file's size and mtime must stay unchanged before it is scored.
    log
        Called with one line of text for each file scored, renamed or dropped.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        out: str | os.PathLike,
        model: Model,
        pattern: str = "*.gr",
        top_k: int = 3,
        settle: float = DEFAULT_SETTLE,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.directory = Path(directory)
        self.out = Path(out)
        self.model = model
        self.pattern = pattern
        self.top_k = min(top_k, len(model.info.classes))
        self.settle = settle
        self.log = log
        self.rows: dict[str, Row] = {}
        self._pending: dict[str, _Pending] = {}
        self._saved_text: str | None = None
        self._passes = 0

    # -- restart -------------------------------------------------------------------------

    def resume(self) -> int:
        """Take over the rows of an existing ``out`` whose files are unchanged; returns how many.

        Rows of files that changed or are gone, rows with another number of candidates (another
        ``--top-k``) or naming classes the model does not have (another model) are dropped and
        their files scored again. Raises ``ValueError`` when ``out`` is not a watch table.
        """
        if not self.out.exists():
            return 0
        try:
            text = self.out.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {self.out}: {exc}") from None
        if text and not text.startswith("file,status,"):
            raise ValueError(f"{self.out} is not an sgmine table (its header is not that of an sgmine scan)")
        classes = set(self.model.info.classes)
        kept = 0
        for raw in csv.DictReader(io.StringIO(text)):
            try:
                prediction = from_csv_row(raw)
                state = FileState(int(raw["size"]), int(raw["mtime_ns"]))
            except (KeyError, TypeError, ValueError):
                continue  # not written by watch (no state), or damaged: score the file again
            name = Path(prediction.source).name
            if FileState.of(self.directory / name) != state:
                continue
            if prediction.ok and (len(prediction.candidates) != self.top_k
                                  or any(c.space_group not in classes for c in prediction.candidates)):
                continue
            prediction = replace(prediction, source=os.fspath(self.directory / name))
            self.rows[name] = Row(prediction, state)
            kept += 1
        self._saved_text = text
        return kept

    # -- one pass ------------------------------------------------------------------------

    def _listing(self) -> dict[str, FileState] | None:
        """The folder's matching files now, with their states; None when the folder is gone
        (unmounted, say: the rows are kept until it is back). The table itself is never listed."""
        try:
            names = os.listdir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return None
        own = self.out.name if _same_folder(self.out.parent, self.directory) else None
        found = {}
        for name in names:
            if name.startswith(".") or name == own or not fnmatch.fnmatch(name, self.pattern):
                continue
            state = FileState.of(self.directory / name)
            if state is not None:
                found[name] = state
        return found

    def update(self, *, now: float | None = None) -> Changes:
        """Bring the table up to date with the folder; saves ``out`` when anything changed.

        Parameters
        ----------
        now
            The monotonic time of the pass (tests pass their own clock).
        """
        now = time.monotonic() if now is None else now
        changes = Changes()
        listing = self._listing()
        if listing is None:
            if self._passes == 0:
                self.save()
            self._passes += 1
            return changes
        self._drop_and_rename(listing, changes)
        ready = []
        for name, state in listing.items():
            row = self.rows.get(name)
            if row is not None and row.state == state:
                self._pending.pop(name, None)
                continue
            pending = self._pending.get(name)
            if pending is None or pending.state != state:
                self._pending[name] = _Pending(state, now)
            elif now - pending.since >= self.settle:
                ready.append(name)
        for name in list(self._pending):
            if name not in listing:
                del self._pending[name]
        if ready:
            self._score(sorted(ready, key=natural_key), changes)
        if changes or self._passes == 0:
            self.save()
        self._passes += 1
        return changes

    def _drop_and_rename(self, listing: dict[str, FileState], changes: Changes) -> None:
        """Rows of files that are gone: moved to a new name with the same state, else dropped."""
        gone = [name for name in self.rows if name not in listing]
        if not gone:
            return
        unscored = {state: name for name, state in sorted(listing.items()) if name not in self.rows}
        for old in gone:
            row = self.rows.pop(old)
            new = unscored.pop(row.state, None) if row.state is not None else None
            if new is None:
                changes.removed.append(old)
                self.log(f"{old}: gone; its row is removed")
                continue
            row.prediction = replace(row.prediction, source=os.fspath(self.directory / new))
            self.rows[new] = row
            self._pending.pop(new, None)
            changes.renamed.append((old, new))
            self.log(f"{old}: renamed to {new}; row kept")

    def _score(self, names: Sequence[str], changes: Changes) -> None:
        """Score ``names``; a file that changed while it was read stays pending."""
        paths = [os.fspath(self.directory / name) for name in names]
        before = [FileState.of(path) for path in paths]
        predictions = list(iter_predictions(paths, self.model, top_k=self.top_k))
        for name, path, state, prediction in zip(names, paths, before, predictions):
            if state is None or FileState.of(path) != state:
                continue  # written to (or removed) while it was scored: the next passes see it
            self.rows[name] = Row(prediction, state)
            self._pending.pop(name, None)
            changes.scored.append(name)
            self.log(f"{name}: {describe(prediction)}")

    # -- the table -----------------------------------------------------------------------

    def predictions(self) -> list[Prediction]:
        """The rows' predictions, in natural file-name order."""
        return [self.rows[name].prediction for name in sorted(self.rows, key=natural_key)]

    def render(self) -> str:
        """The table as CSV text: ``sgmine scan``'s columns, then ``size`` and ``mtime_ns``."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*csv_columns(self.top_k), *STATE_COLUMNS])
        for name in sorted(self.rows, key=natural_key):
            row = self.rows[name]
            state = [str(row.state.size), str(row.state.mtime_ns)] if row.state else ["", ""]
            writer.writerow([*csv_row(row.prediction, self.top_k), *state])
        return buffer.getvalue()

    def save(self) -> None:
        """Rewrite ``out`` atomically when its text would change."""
        text = self.render()
        if text != self._saved_text:
            atomic_write(self.out, text)
            self._saved_text = text


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def describe(prediction: Prediction) -> str:
    """One line about a scored file: its best candidates, or why it failed."""
    if not prediction.ok:
        return f"error: {prediction.message}"
    best = ", ".join(f"{c.symbol} ({c.space_group}) {c.probability:.2f}" for c in prediction.candidates[:3])
    flag = "" if prediction.in_domain is not False else " [in_domain = false]"
    return best + flag


def wakeups(directory: str | os.PathLike, *, stop: threading.Event, poll: float | None) -> Iterator[None]:
    """Yield whenever the folder may have changed, until ``stop`` is set.

    With ``watchfiles`` and no ``poll``: on file events, and at least every
    :data:`EVENT_TIMEOUT` s (files waiting to settle). Otherwise every ``poll`` seconds
    (:data:`DEFAULT_POLL` when ``poll`` is None and ``watchfiles`` is missing).
    """
    if poll is None:
        try:
            import watchfiles
        except ModuleNotFoundError:
            poll = DEFAULT_POLL
        else:
            for _ in watchfiles.watch(
                directory, stop_event=stop, debounce=200, step=50, rust_timeout=int(EVENT_TIMEOUT * 1000),
                yield_on_timeout=True, recursive=False, raise_interrupt=False,
            ):
                if stop.is_set():
                    return
                yield
            return
    while not stop.wait(poll):
        yield


def events_available() -> bool:
    """Whether ``watchfiles`` is installed (else :func:`wakeups` polls)."""
    import importlib.util

    return importlib.util.find_spec("watchfiles") is not None
