"""The results table of a scan: CSV (one row per input) or JSON, written atomically.

(Formerly ``sgmine.report``, a name that read like :mod:`sgmine.reporters`, the per-file
reporter plug-ins; ``sgmine.report`` is kept as another name of this module.)

Long scans save their table as they go (:class:`Checkpointer`), and ``sgmine scan --resume``
reads it back (:func:`read_previous`, :func:`rows_to_keep`) to score only what is missing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sgmine.files import atomic_write  # here for the scan's writers, and re-exported
from sgmine.prediction import Candidate, Prediction

#: Columns after the candidates, in order (the README's table lists them in this order).
EXTRA_COLUMNS = ("confidence", "in_domain", "none_of_these", "r_min", "r_max", "qmax", "message")


def csv_columns(top_k: int) -> list[str]:
    """``file,status,sg_1,symbol_1,prob_1,...,sg_K,symbol_K,prob_K,confidence,in_domain,none_of_these,r_min,r_max,qmax,message``."""
    columns = ["file", "status"]
    for i in range(1, top_k + 1):
        columns += [f"sg_{i}", f"symbol_{i}", f"prob_{i}"]
    return columns + list(EXTRA_COLUMNS)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _message(prediction: Prediction) -> str:
    """The error for an error row; the warnings and doubts, joined, for a scored row."""
    return prediction.message if not prediction.ok else "; ".join([*prediction.warnings, *prediction.doubts])


def csv_row(prediction: Prediction, top_k: int) -> list[str]:
    """One CSV row; candidate cells beyond those the prediction has are left empty."""
    row = [prediction.source, prediction.status]
    for i in range(top_k):
        if i < len(prediction.candidates):
            c = prediction.candidates[i]
            row += [str(c.space_group), c.symbol, f"{c.probability:.4f}"]
        else:
            row += ["", "", ""]
    row += [
        _number(prediction.confidence, 4),
        _flag(prediction.in_domain),
        _number(prediction.none_of_these, 4),
        _number(prediction.r_min, 3),
        _number(prediction.r_max, 3),
        _number(prediction.qmax, 3),
        _message(prediction),
    ]
    return row


def _flag(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


def _flag_or_none(text: str | None) -> bool | None:
    return {"true": True, "false": False}.get((text or "").strip().lower())


def to_csv(predictions: Sequence[Prediction], top_k: int) -> str:
    """The whole CSV document as text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns(top_k))
    writer.writerows(csv_row(p, top_k) for p in predictions)
    return buffer.getvalue()


def to_record(prediction: Prediction) -> dict[str, Any]:
    """A JSON-ready dict for one prediction."""
    return {
        "file": prediction.source,
        "status": prediction.status,
        "candidates": [
            {"space_group": c.space_group, "symbol": c.symbol, "probability": round(c.probability, 6)}
            for c in prediction.candidates
        ],
        "confidence": prediction.confidence,
        "in_domain": prediction.in_domain,
        "none_of_these": prediction.none_of_these,
        "r_min": prediction.r_min,
        "r_max": prediction.r_max,
        "qmax": prediction.qmax,
        "message": prediction.message,
        "warnings": list(prediction.warnings),
        "doubts": list(prediction.doubts),
        "metadata": {k: v for k, v in prediction.metadata.items() if isinstance(v, (str, int, float))},
        "model": {"name": prediction.model, "version": prediction.model_version},
    }


def to_json(predictions: Sequence[Prediction]) -> str:
    """The whole JSON document (a list of records, each naming the model that scored it) as text."""
    return json.dumps([to_record(p) for p in predictions], indent=2, ensure_ascii=False) + "\n"


def render(predictions: Sequence[Prediction], fmt: str, top_k: int) -> str:
    """The whole output document in ``fmt`` (``"csv"`` or ``"json"``)."""
    return to_json(predictions) if fmt == "json" else to_csv(predictions, top_k)


class Checkpointer:
    """Rewrites a scan's output file, atomically, with the rows so far while the scan runs.

    A scan that is killed then leaves a complete, valid table of the files scored up to the
    last save, which ``sgmine scan --resume`` continues. :meth:`due` says when to save: every
    ``interval`` seconds, but never so often that saving takes more than about 5 % of the time
    (a table of 100 000 rows takes a moment to write); ``interval <= 0`` never saves early.
    """

    def __init__(self, path: str | Path, fmt: str, top_k: int, interval: float = 30.0) -> None:
        self.path, self.fmt, self.top_k, self.interval = Path(path), fmt, top_k, interval
        self.saves = 0
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        """True when the rows so far should be saved now."""
        return self.interval > 0 and time.monotonic() >= self._next

    def save(self, predictions: Sequence[Prediction]) -> None:
        """Write ``predictions`` (in input order) atomically to the output file."""
        started = time.monotonic()
        try:
            atomic_write(self.path, render(predictions, self.fmt, self.top_k))
            self.saves += 1
        finally:  # after a failed save too: the next try waits its turn
            took = time.monotonic() - started
            self._next = time.monotonic() + max(self.interval, 20 * took)


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def from_csv_row(row: dict[str, str]) -> Prediction:
    """Rebuild a Prediction from a row this module wrote (for ``--resume``)."""
    candidates = []
    i = 1
    while f"sg_{i}" in row:
        if row[f"sg_{i}"]:
            candidates.append(Candidate(int(row[f"sg_{i}"]), row[f"symbol_{i}"], float(row[f"prob_{i}"])))
        i += 1
    ok = row["status"] == "ok"
    message = row.get("message", "")
    return Prediction(
        source=row["file"],
        status=row["status"],
        candidates=candidates,
        message="" if ok else message,
        warnings=[w for w in message.split("; ") if w] if ok else [],
        r_min=_float_or_none(row.get("r_min")),
        r_max=_float_or_none(row.get("r_max")),
        qmax=_float_or_none(row.get("qmax")),
        confidence=_float_or_none(row.get("confidence")),
        in_domain=_flag_or_none(row.get("in_domain")),
        none_of_these=_float_or_none(row.get("none_of_these")),
    )


def from_record(record: dict[str, Any]) -> Prediction:
    """Rebuild a Prediction from a JSON record this module wrote (for ``--resume``)."""
    return Prediction(
        source=record["file"],
        status=record["status"],
        candidates=[Candidate(int(c["space_group"]), c["symbol"], float(c["probability"])) for c in record["candidates"]],
        message=record.get("message", ""),
        warnings=list(record.get("warnings", [])),
        doubts=list(record.get("doubts", [])),
        r_min=record.get("r_min"),
        r_max=record.get("r_max"),
        qmax=record.get("qmax"),
        metadata=dict(record.get("metadata", {})),
        confidence=record.get("confidence"),
        in_domain=record.get("in_domain"),
        none_of_these=record.get("none_of_these"),
        model=str((record.get("model") or {}).get("name", "")),
        model_version=str((record.get("model") or {}).get("version", "")),
    )


def read_previous(path: str | Path, fmt: str) -> list[Prediction]:
    """The predictions in an output file an earlier ``sgmine scan`` wrote (CSV or JSON).

    Raises ``ValueError`` naming the file when it is not such an output.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        if fmt == "json":
            return [from_record(r) for r in json.loads(text)]
        rows = list(csv.DictReader(io.StringIO(text)))
        if text and not text.startswith("file,status,"):
            raise ValueError("its header is not that of an sgmine scan")
        return [from_csv_row(r) for r in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not an sgmine {fmt.upper()} output: {exc}") from None


def resume_key(source: str | os.PathLike) -> str:
    """What identifies an input across runs: its absolute, normalised path."""
    return os.path.abspath(os.fspath(source))


def rows_to_keep(items: Sequence[str | os.PathLike], previous: Sequence[Prediction]) -> dict[int, Prediction]:
    """The rows of an earlier output that ``--resume`` keeps, by index into ``items``.

    Only scored (``ok``) rows are kept; error rows are scored again (the file may have been
    fixed or finished meanwhile). A kept row takes the input's spelling in ``items`` as its
    ``file``; rows for inputs not in ``items`` are dropped.
    """
    done = {resume_key(p.source): p for p in previous if p.ok}
    kept: dict[int, Prediction] = {}
    for index, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike)):
            continue
        found = done.get(resume_key(item))
        if found is not None:
            kept[index] = replace(found, source=os.fspath(item), warnings=list(found.warnings))
    return kept
