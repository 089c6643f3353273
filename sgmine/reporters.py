"""Reporters: hooks that receive every scored file, its candidates and its header metadata.

``sgmine scan --report NAME`` (repeatable) picks them. Built in:

- ``csv`` — the results table, one row per input, on stdout or ``--out``. It is always
  written (it is the scan's result), so naming it changes nothing; it is the default.
- ``json`` — a sidecar ``<input>.sgmine.json`` next to each scored input (see
  :func:`sidecar_path`), which a refinement script reads.

Any installed package adds a reporter by declaring an entry point in the group
``sgmine.reporters``::

    [project.entry-points."sgmine.reporters"]
    mydb = "mypackage.reporting:DatabaseReporter"

The entry point names a class (instantiated with no arguments) or an object with a
``report(prediction, context)`` method, called once per successfully scored file, in input
order. A reporter that raises does not stop the scan: the error is added to that file's
``message`` column (status stays ``ok``: the scores are valid), printed on stderr, and
``sgmine scan`` exits with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol

from sgmine.files import atomic_write
from sgmine.model import ModelInfo
from sgmine.prediction import Prediction
from sgmine.table import to_record

ENTRY_POINT_GROUP = "sgmine.reporters"
#: The suffix the ``json`` reporter appends to an input's path.
SIDECAR_SUFFIX = ".sgmine.json"
DEFAULT_REPORTERS = ("csv",)


class ReporterError(ValueError):
    """An unknown reporter name, or a reporter that cannot be loaded."""


@dataclass(frozen=True)
class ReportContext:
    """What a reporter may want to know about the scan besides the file itself."""

    model: ModelInfo
    model_path: str
    top_k: int
    sgmine_version: str


class Reporter(Protocol):
    """The reporter interface: one call per successfully scored file."""

    def report(self, prediction: Prediction, context: ReportContext) -> None:
        """Handle one scored file. Raise to signal failure; the scan goes on."""


@dataclass(frozen=True)
class ReporterFailure:
    """A reporter that raised on one file."""

    reporter: str
    source: str
    message: str


def sidecar_path(source: str | Path) -> Path:
    """Where the ``json`` reporter writes the sidecar of ``source``: ``Ni.gr`` → ``Ni.gr.sgmine.json``."""
    return Path(f"{source}{SIDECAR_SUFFIX}")


def sidecar_record(prediction: Prediction, context: ReportContext) -> dict[str, Any]:
    """The sidecar's content: the prediction's record plus the model and settings that made it."""
    record = to_record(prediction)
    record["top_k"] = context.top_k
    record["model"] = {
        **record["model"],
        "path": context.model_path,
        "version": context.model.model_version,
        "classes": list(context.model.classes),
        "symbols": list(context.model.symbols),
    }
    record["sgmine_version"] = context.sgmine_version
    return record


class JsonSidecarReporter:
    """Writes ``<input>.sgmine.json`` (atomically) next to each scored input."""

    def report(self, prediction: Prediction, context: ReportContext) -> None:
        """Write the sidecar of ``prediction`` (see :func:`sidecar_record`)."""
        if not Path(prediction.source).is_file():
            raise ValueError(f"{prediction.source}: not a file, so there is no place for its sidecar")
        text = json.dumps(sidecar_record(prediction, context), indent=2, ensure_ascii=False) + "\n"
        atomic_write(sidecar_path(prediction.source), text)


#: Built-in reporters; ``None`` marks the table, which the scan always writes itself.
BUILTIN: dict[str, type | None] = {"csv": None, "json": JsonSidecarReporter}


def _installed() -> dict[str, EntryPoint]:
    """Reporters declared by installed packages, by name (built-in names are not overridden)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN}


def available() -> list[str]:
    """Every reporter name ``--report`` accepts: the built-ins, then installed ones sorted."""
    return list(BUILTIN) + sorted(_installed())


def load_reporters(names: Iterable[str]) -> list[tuple[str, Reporter]]:
    """The per-file reporters for ``names`` (duplicates and ``csv`` dropped), ready to call.

    Raises :class:`ReporterError` naming the available reporters for an unknown name, and
    saying why for one that cannot be imported or has no ``report`` method.
    """
    installed = _installed()
    loaded: list[tuple[str, Reporter]] = []
    for name in dict.fromkeys(names):
        if name in BUILTIN:
            factory = BUILTIN[name]
            if factory is not None:
                loaded.append((name, factory()))
            continue
        if name not in installed:
            raise ReporterError(
                f"unknown reporter {name!r}; available: {', '.join(available())} (others come from "
                f"installed packages declaring one in the {ENTRY_POINT_GROUP!r} entry-point group)"
            )
        entry = installed[name]
        try:
            obj = entry.load()
            reporter = obj() if isinstance(obj, type) else obj
        except Exception as exc:
            raise ReporterError(f"reporter {name!r} ({entry.value}) cannot be loaded: {type(exc).__name__}: {exc}") from exc
        if not callable(getattr(reporter, "report", None)):
            raise ReporterError(f"reporter {name!r} ({entry.value}) has no report(prediction, context) method")
        loaded.append((name, reporter))
    return loaded


def run_reporters(
    predictions: Sequence[Prediction], reporters: Sequence[tuple[str, Reporter]], context: ReportContext
) -> list[ReporterFailure]:
    """Call every reporter on every scored prediction, in order; return what failed.

    A failure is also appended to that prediction's ``warnings`` (so it appears in the
    ``message`` column of the table); it never stops the other files or reporters.
    """
    failures = []
    for prediction in predictions:
        if not prediction.ok:
            continue
        for name, reporter in reporters:
            try:
                reporter.report(prediction, context)
            except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() must not end the scan either
                message = f"reporter {name} failed: {type(exc).__name__}: {exc}"
                prediction.warnings.append(message)
                failures.append(ReporterFailure(name, prediction.source, message))
    return failures
