"""Scoring many PDFs: file → curve → grid → model → candidates.

``predict`` is the Python API that refinement scripts call; ``sgmine scan`` is a thin CLI
around :func:`iter_predictions`. One bad input becomes one error :class:`Prediction`; it
never stops the batch.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Union

import numpy as np

from sgmine import plausibility, rmcprofile
from sgmine.gr import Curve, ReadError, read_gr
from sgmine.grid import GridError, Resampled, resample, resample_many
from sgmine.model import Model, none_of_these
from sgmine.prediction import ERROR, OK, Candidate, Prediction  # re-exported: their old home

#: An input: a path to a PDF file, an ``(r, G)`` pair of arrays, or an N×k array of rows whose
#: first two columns are r and G (what ``np.loadtxt`` gives: r, G, dr, dG, ...).
Item = Union[str, os.PathLike, tuple, np.ndarray]

#: Items in the first batch of :func:`iter_predictions` (the others are ``batch_size``).
FIRST_BATCH = 32


def expand_paths(patterns: Iterable[str | os.PathLike]) -> list[str]:
    """Turn files, globs and directories into a list of paths, in the order given.

    A directory contributes its ``*.gr`` files (sorted, not recursive). A glob contributes its
    matches (sorted). A path that exists as nothing and matches nothing is kept as given, so
    that it shows up as an error row rather than disappearing.
    """
    paths: list[str] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        if os.path.isdir(text):
            found = sorted(p for p in glob.glob(os.path.join(glob.escape(text), "*.gr")) if os.path.isfile(p))
            paths.extend(found if found else [text])
        elif os.path.lexists(text) or not glob.has_magic(text):
            paths.append(text)
        else:
            matches = sorted(glob.glob(text))
            paths.extend(matches if matches else [text])
    return paths


def _is_single_array_item(items: Any) -> bool:
    """True when ``items`` is one curve rather than a list of inputs: an ``(r, G)`` tuple of two
    numeric sequences, or any 2-D array (rows of r, G and maybe more columns, as ``np.loadtxt``
    gives, or 2×N columns; :func:`_columns` says what is wrong with any other shape)."""
    if isinstance(items, np.ndarray):
        return items.ndim == 2
    if isinstance(items, tuple) and len(items) == 2:
        return not any(isinstance(part, (str, os.PathLike, Curve, tuple)) for part in items) and all(
            np.ndim(part) == 1 for part in items
        )
    return False


def _columns(item: Any) -> tuple[Any, Any]:
    """r and G of an ``(r, G)`` pair or a 2-D array: N×k rows (k ≥ 2; r and G are the first two
    columns, as in a .gr file's r, G, dr, dG) or 2×N columns."""
    if isinstance(item, np.ndarray) and item.ndim == 2:
        rows, columns = item.shape
        if columns == 2 or (columns > 2 and rows != 2):
            return item[:, 0], item[:, 1]
        if rows == 2:
            return item[0], item[1]
        raise ReadError(f"a {rows}×{columns} array is not a curve: need N×k rows with r and G in the first two "
                        "columns, or 2×N columns")
    r, g = item
    return r, g


def _load_item(item: Item, r_range: tuple[float, float]) -> Curve:
    """Read a path (only its rows around ``r_range``), or wrap an ``(r, G)`` pair or N×k array, as a
    :class:`Curve`."""
    if isinstance(item, (str, os.PathLike)):
        if os.path.isdir(item):
            raise ReadError(f"{os.fspath(item)}: is a directory with no .gr files")
        return read_gr(item, r_range=r_range)
    if isinstance(item, Curve):
        return item
    try:
        r, g = _columns(item)
    except ReadError:
        raise
    except (TypeError, ValueError):
        raise ReadError("expected a file path, an (r, G) pair of arrays, or an N×k array of (r, G, ...) rows") from None
    try:
        r = np.asarray(r, dtype=np.float64).ravel()
        g = np.asarray(g, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ReadError(f"(r, G) arrays are not numeric: {exc}") from None
    return Curve(r=r, g=g, source="<array>")


def _describe(item: Item, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, Curve) and item.source:
        return item.source
    return f"<array {index}>"


def _without_source(message: str, source: str) -> str:
    """``message`` without a leading ``"<source>: "``: the row's ``file`` column already says it."""
    prefix = f"{source}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _read(item: Item, index: int, model: Model) -> Curve | Prediction:
    """Read one input (its rows from r = 0, where the checks look for the first peak, to the end
    of the model's r-range); an error Prediction when that fails or the file says it is not a G(r).

    An RMCProfile-format G(r) is converted to the PDFgui convention (:mod:`sgmine.rmcprofile`).
    """
    source = _describe(item, index)
    grid = model.grid
    try:
        curve = _load_item(item, (min(0.0, grid.rmin), grid.rmax))
    except ReadError as exc:
        return Prediction(source=source, status=ERROR, message=_without_source(str(exc), source))
    except Exception as exc:  # a reader bug must not cost the other files their results
        return Prediction(source=source, status=ERROR, message=f"unexpected error: {exc!r}")
    declared = plausibility.declared_quantity(metadata=curve.metadata, header_lines=curve.header_lines, source=source)
    if declared is not None:
        return Prediction(source=source, status=ERROR, message=declared, metadata=curve.metadata)
    lo, hi = curve.r_span
    if curve.span is not None and (hi < grid.rmin or lo > grid.rmax):
        return Prediction(source=source, status=ERROR, message=(
            f"measured r-range {lo:.4g}–{hi:.4g} Å does not overlap the model's {grid.rmin:g}–{grid.rmax:g} Å"))
    if rmcprofile.is_rmcprofile(curve.header_lines):
        curve.g = rmcprofile.to_pdfgui(curve.r, curve.g)
        curve.warnings = [*curve.warnings, rmcprofile.CONVERTED]
    return curve


def _resample_all(curves: list[Curve], model: Model) -> list[Resampled | Exception]:
    """Each curve on the model's grid, or the exception that stopped it; one curve's failure
    never costs the others (an unexpected one sends them through one by one)."""
    try:
        return resample_many([(curve.r, curve.g) for curve in curves], model.grid)
    except Exception:
        results: list[Resampled | Exception] = []
        for curve in curves:
            try:
                results.append(resample(curve.r, curve.g, model.grid))
            except Exception as exc:
                results.append(exc)
        return results


def top_candidates(probs: np.ndarray, model: Model, top_k: int) -> list[list[Candidate]]:
    """The ``top_k`` most probable classes of each row of ``probs``, best first."""
    classes, symbols = model.info.classes, model.info.symbols
    k = min(top_k, len(classes))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [Candidate(int(classes[j]), symbols[j], float(row[j])) for j in idx]
        for row, idx in zip(probs, order)
    ]


def _prepare_batch(items: Sequence[Item], start: int, model: Model) -> list[tuple[Prediction, np.ndarray | None]]:
    """Read and resample ``items`` (the ``start``-th onwards): a Prediction for each, with its
    curve on the grid, or an error Prediction and None."""
    read = [_read(item, start + i, model) for i, item in enumerate(items)]
    curves = [curve for curve in read if isinstance(curve, Curve)]
    on_grid = iter(_resample_all(curves, model))
    batch: list[tuple[Prediction, np.ndarray | None]] = []
    for i, curve in enumerate(read):
        if isinstance(curve, Prediction):
            batch.append((curve, None))
            continue
        source = _describe(items[i], start + i)
        result = next(on_grid)
        if isinstance(result, Exception):
            message = str(result)
            if not isinstance(result, GridError):
                message = f"unexpected error: {result!r}"
            batch.append((Prediction(source=source, status=ERROR, message=_without_source(message, source)), None))
            continue
        verdict = _check(curve, model)
        if verdict.refusal is not None:
            batch.append((Prediction(source=source, status=ERROR, message=verdict.refusal, metadata=curve.metadata),
                          None))
            continue
        prediction = Prediction(
            source=source,
            status=OK,
            warnings=curve.warnings + result.warnings + list(verdict.warnings),
            r_min=result.r_min,
            r_max=result.r_max,
            qmax=curve.qmax,
            metadata=curve.metadata,
            doubts=list(verdict.doubts),
        )
        batch.append((prediction, result.values))
    return batch


def _check(curve: Curve, model: Model) -> plausibility.Verdict:
    """:func:`sgmine.plausibility.check_curve` on a curve that the grid accepted."""
    try:
        return plausibility.check_curve(curve.r, curve.g, rmax=model.grid.rmax, span=curve.span)
    except Exception as exc:  # a checker bug must not cost a file its result
        return plausibility.Verdict(doubts=(f"could not check that this is a G(r): {exc!r}",))


def _score_batch(batch: list[tuple[Prediction, np.ndarray | None]], model: Model, top_k: int) -> list[Prediction]:
    for prediction, _ in batch:
        prediction.model, prediction.model_version = model.name, model.info.model_version
    rows = [values for _, values in batch if values is not None]
    if rows:
        probs = model.predict_proba(np.stack(rows))
        rest = none_of_these(probs) if model.info.none_of_these else [None] * len(probs)
        ranked = iter(zip(top_candidates(probs, model, top_k), probs.max(axis=1), rest))
        for prediction, values in batch:
            if values is not None:
                prediction.candidates, confidence, other = next(ranked)
                prediction.confidence = float(confidence)
                prediction.none_of_these = None if other is None else float(other)
                prediction.in_domain = (False if prediction.doubts
                                        else model.info.in_domain(prediction.confidence, prediction.none_of_these))
    return [prediction for prediction, _ in batch]


def iter_predictions(
    items: Sequence[Item],
    model: Model,
    top_k: int = 3,
    batch_size: int = 256,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per item, in order, scoring ``batch_size`` items at a time.

    The next batch is read and resampled in a background thread while the model scores the
    current one (onnxruntime releases the GIL), so reading and scoring overlap. The first
    batch is small (:data:`FIRST_BATCH` items), so that scoring starts early instead of
    waiting, one core idle, for a whole batch to be read.
    ``on_progress(n)`` is called after each batch with the number of items it finished.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    first = min(batch_size, FIRST_BATCH)
    bounds = [0, *range(first, len(items), batch_size), len(items)] if items else []
    chunks = list(zip(bounds, bounds[1:]))
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sgmine-read") as reader:
        lo, hi = chunks[0]
        pending = reader.submit(_prepare_batch, items[lo:hi], lo, model)
        for k in range(len(chunks)):
            batch = pending.result()
            if k + 1 < len(chunks):
                lo, hi = chunks[k + 1]
                pending = reader.submit(_prepare_batch, items[lo:hi], lo, model)
            yield from _score_batch(batch, model, top_k)
            if on_progress is not None:
                on_progress(len(batch))


@lru_cache(maxsize=4)
def _cached_model(path: str | None, int8: bool = False) -> Model:
    return Model(path, int8=int8)


def load_model(model: Model | str | os.PathLike | None = None, int8: bool = False) -> Model:
    """A :class:`Model` from a path or a shipped model's name (loaded once per process), the
    default shipped model for None (:func:`sgmine.models.resolve_model`).

    With ``int8=True``, the INT8 file beside it (``<stem>.int8.onnx``, see
    :func:`sgmine.model.int8_model_path`); :class:`~sgmine.model.ModelError` when there is none.
    """
    if isinstance(model, Model):
        if not int8 or model.int8_agreement is not None:
            return model
        model = model.path
    return _cached_model(os.fspath(model) if model is not None else None, int8)


def predict(
    items: Item | Iterable[Item],
    top_k: int = 3,
    model: Model | str | os.PathLike | None = None,
    batch_size: int = 256,
    int8: bool = False,
) -> list[Prediction]:
    """Score PDFs and return their top-``top_k`` candidate space groups, one Prediction per item.

    Parameters
    ----------
    items
        Paths to PDF files (``.gr``, ``.gr.gz`` or any two-column text), ``(r, G)`` pairs of
        arrays, N×k arrays of rows whose first two columns are r and G (what ``np.loadtxt``
        gives, also for r, G, dr, dG files), or a list of these; a single path, ``(r, G)`` pair
        or 2-D array is one item. Directories and globs are not
        expanded here (see :func:`expand_paths`).
    top_k
        How many candidates to return per item (at most the model's number of classes).
    model
        An ONNX model file, the name of a model shipped with sgmine (``"sg8"``; ``sgmine
        models`` lists them) or a loaded :class:`~sgmine.model.Model`; None uses the default
        shipped model.
    batch_size
        How many curves the model scores per call (memory against speed; the results do not
        depend on it).
    int8
        Score with the INT8 version of the model (``<stem>.int8.onnx`` beside it, made by
        ``sgmine-train quantize``): faster on CPUs with VNNI, and its top-1 class agreed with
        the float32 model on at least 99.5% of a held-out test set.

    Returns
    -------
    list of Prediction
        In input order. ``status`` is ``"ok"`` with ``candidates`` best first, or
        ``"error"`` with ``message`` saying what is wrong with that input (also when the
        input is not a G(r): see :mod:`sgmine.plausibility`). ``in_domain`` is False, with
        the reasons in ``doubts``, for a G(r) the model cannot judge.

    Examples
    --------
    >>> from sgmine import predict
    >>> for p in predict(["Ni.gr", "Si.gr"], top_k=2):       # doctest: +SKIP
    ...     print(p.source, p.status, [(c.space_group, c.symbol, c.probability) for c in p.candidates])
    """
    if isinstance(items, (str, os.PathLike, Curve)) or _is_single_array_item(items):
        items = [items]
    items = list(items)
    return list(iter_predictions(items, load_model(model, int8=int8), top_k=top_k, batch_size=batch_size))
