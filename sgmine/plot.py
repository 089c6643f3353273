"""Pictures of scan results: a series of files at a glance, or one file's curve and candidates.

``sgmine plot RESULTS.csv --out FIG.png`` (and ``sgmine scan ... --plot FIG.png``) draw

- for several files, a heatmap of **every** class's probability (rows: space groups, symbol and
  number; columns: the files along the series, ordered by name or by a header value such as
  the temperature), out-of-domain files marked with a red ``×`` and error rows greyed out;
- for one file, its curve on the model's r-grid (what the model saw) beside a bar chart of its
  candidates.

A table holds only each file's top-k candidates, so the files are scored again here to get
every class's probability (cheap: a second for hundreds of files). Files that cannot be read
any more are drawn from the table's top-k, the other classes left blank (grey). The header
values for ``--order header:KEY`` come from the files too. Another model than the one that
wrote the table is refused (:func:`check_model`: a JSON table names its model and version, and
no table may name a space group the model does not have); for a CSV table, which does not
name its model, files whose top candidate differs are reported in one warning.

Needs matplotlib (the ``plot`` extra); the figure is built with :class:`matplotlib.figure.Figure`
directly (no pyplot, no display), and written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sgmine.files import atomic_save
from sgmine.gr import read_gr
from sgmine.grid import resample
from sgmine.header import header_value
from sgmine.model import Model
from sgmine.prediction import Prediction
from sgmine.scan import iter_predictions
from sgmine.watch import natural_key

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Figure size (inches) and resolution of every picture: the PNG is 1200 × 660 pixels.
FIGSIZE = (10.0, 5.5)
DPI = 120
#: At most this many file labels on the series axis (every n-th beyond that).
MAX_TICKS = 40


class PlotError(ValueError):
    """Results that cannot be drawn (no rows, an unknown ``--order``, no header value...)."""


@dataclass
class Point:
    """One file of the series: the probability of every class, and how to label it."""

    source: str
    label: str
    status: str
    in_domain: bool | None
    #: One per class of :attr:`Series.classes`; NaN where unknown (a file drawn from the table's top-k).
    probabilities: np.ndarray
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Series:
    """What the figure shows: files in order, the model's classes, and the axis title."""

    points: list[Point]
    classes: list[int]
    symbols: list[str]
    axis_title: str
    #: For a single file: its curve on the model grid (r, values), when it could be read.
    curve: tuple[np.ndarray, np.ndarray] | None = None
    #: Things the user should know (files drawn from the table, another model...).
    warnings: list[str] = field(default_factory=list)

    def class_labels(self) -> list[str]:
        """``"Fm-3m (225)"`` for each class."""
        return [f"{symbol} ({sg})" for sg, symbol in zip(self.classes, self.symbols)]


def read_results(path: str | os.PathLike) -> list[Prediction]:
    """The rows of an ``sgmine scan`` or ``sgmine watch`` table (CSV, or JSON by suffix)."""
    from sgmine.table import read_previous

    path = Path(path)
    fmt = "json" if path.suffix.lower() == ".json" else "csv"
    try:
        rows = read_previous(path, fmt)
    except ValueError as exc:
        raise PlotError(str(exc)) from None
    if not rows:
        raise PlotError(f"{path} has no rows to plot")
    return rows


def _vector(prediction: Prediction, index: dict[int, int], n: int) -> np.ndarray:
    values = np.full(n, np.nan)
    for candidate in prediction.candidates:
        if candidate.space_group in index:
            values[index[candidate.space_group]] = candidate.probability
    return values


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def check_model(predictions: Sequence[Prediction], model: Model) -> None:
    """Refuse a table that another model wrote.

    Parameters
    ----------
    predictions
        The table's rows.
    model
        The model that is to score the files again.

    Raises
    ------
    PlotError
        When the rows name a model version (a JSON table does) and none is ``model``'s, or name a
        space group that ``model`` does not have; the message says which model to use.
    """
    versions = {p.model_version: p.model for p in predictions if p.model_version}
    if versions and model.info.model_version not in versions:
        version, name = sorted(versions.items())[0]
        raise PlotError(f"the table was written with model {name} (version {version}), not with {model.name} "
                        f"(version {model.info.model_version}): plot it with --model {name}")
    unknown = sorted({c.space_group for p in predictions for c in p.candidates} - set(model.info.classes))
    if unknown:
        raise PlotError(f"the table names space group {unknown[0]}, which model {model.name} does not have: "
                        "plot it with the --model that wrote it")


def build_series(predictions: Sequence[Prediction], *, model: Model, order: str = "name") -> Series:
    """Score the tabled files again for every class's probability, and put them in order.

    Parameters
    ----------
    predictions
        The table's rows (:func:`read_results`, or a scan's predictions).
    model
        The model that scores the files (the table's, for the same numbers).
    order
        ``"name"`` (natural file-name order), ``"table"`` (as given) or ``"header:KEY"`` (by
        the value of ``KEY`` in each file's header, numerically when it is a number; files
        without it go last, with a warning).

    Raises
    ------
    PlotError
        For another model than the table's (:func:`check_model`), an unknown ``order``, or
        ``header:KEY`` when no file has ``KEY``.
    """
    if not predictions:
        raise PlotError("no results to plot")
    check_model(predictions, model)
    if order not in ("name", "table") and not (order.startswith("header:") and order[len("header:"):].strip()):
        raise PlotError(f"unknown order {order!r}; use name, table or header:KEY (e.g. header:temperature)")
    pairs = sorted(zip(model.info.classes, model.info.symbols))
    classes, symbols = [sg for sg, _ in pairs], [sym for _, sym in pairs]
    index = {sg: i for i, sg in enumerate(classes)}
    warnings: list[str] = []

    readable = [i for i, p in enumerate(predictions) if os.path.isfile(p.source)]
    again = dict(zip(readable, iter_predictions([predictions[i].source for i in readable], model, top_k=len(classes))))
    points, metadata, differ = [], [], []
    for i, row in enumerate(predictions):
        name = Path(row.source).name
        fresh = again.get(i)
        if fresh is None:
            if row.ok:
                warnings.append(f"{row.source}: cannot be read any more; drawn from the table's top-"
                                f"{len(row.candidates)} candidates")
            points.append(Point(row.source, name, row.status, row.in_domain, _vector(row, index, len(classes)),
                                row.message))
            metadata.append({})
            continue
        if row.ok and fresh.ok and row.best and fresh.best and row.best.space_group != fresh.best.space_group:
            differ.append(f"{name} {row.best.space_group} → {fresh.best.space_group}")
        points.append(Point(row.source, name, fresh.status, fresh.in_domain, _vector(fresh, index, len(classes)),
                            fresh.message))
        metadata.append(fresh.metadata)
    if differ:
        warnings.append(f"{len(differ)} of {len(predictions)} file(s) have another top candidate than in the table ("
                        + ", ".join(differ[:5]) + (" ..." if len(differ) > 5 else "")
                        + "): was the table written with another --model?")

    axis_title = "file"
    if order == "name":
        ranked = sorted(range(len(points)), key=lambda i: natural_key(points[i].label))
    elif order == "table":
        ranked = list(range(len(points)))
    else:
        key = order[len("header:"):].strip()
        values = [header_value(m, key) for m in metadata]
        if all(v is None for v in values):
            raise PlotError(f"no file has {key!r} in its header (--order header:{key}); use --order name")
        missing = [points[i].label for i, v in enumerate(values) if v is None]
        if missing:
            warnings.append(f"{len(missing)} file(s) have no {key!r} in their header and come last: "
                            + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        for point, value in zip(points, values):
            point.label = _format(value) if value is not None else f"{point.label} (no {key})"

        def rank(i: int) -> tuple:
            v = values[i]
            if v is None:
                return (2, 0.0, natural_key(points[i].label))
            if isinstance(v, (int, float)) and math.isfinite(v):
                return (0, float(v), ())
            return (1, 0.0, natural_key(str(v)))

        ranked = sorted(range(len(points)), key=rank)
        axis_title = f"{key} (from the file headers)"
    series = Series([points[i] for i in ranked], classes, symbols, axis_title, warnings=warnings)
    if len(series.points) == 1 and series.points[0].ok:
        series.curve = _on_grid(series.points[0].source, model)
    return series


def _on_grid(source: str, model: Model) -> tuple[np.ndarray, np.ndarray] | None:
    """A file's curve as the model saw it (on its r-grid, normalised), or None."""
    try:
        curve = read_gr(source)
        return model.grid.r, resample(curve.r, curve.g, model.grid).values
    except (OSError, ValueError):  # ReadError, GridError: drawn without the curve, the bars still say it
        return None


def figure(series: Series) -> Figure:
    """The picture of ``series``: a heatmap for several files, curve and bars for one."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    if len(series.points) == 1:
        _single(fig, series)
    else:
        _heatmap(fig, series)
    return fig


def _heatmap(fig: Figure, series: Series) -> None:
    import matplotlib as mpl

    ax = fig.add_subplot()
    grid = np.array([p.probabilities for p in series.points]).T  # classes × files
    cmap = mpl.colormaps["viridis"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                      interpolation="nearest", origin="lower")
    fig.colorbar(image, ax=ax, label="probability", pad=0.01)
    n = len(series.points)
    step = max(1, math.ceil(n / MAX_TICKS))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [series.points[i].label for i in ticks], rotation=60 if n > 6 else 0,
                  ha="right" if n > 6 else "center")
    for tick, i in zip(ax.get_xticklabels(), ticks):
        point = series.points[i]
        if not point.ok:
            tick.set_color("0.5")
        elif point.in_domain is False:
            tick.set_color("tab:red")
    ax.set_yticks(range(len(series.classes)), series.class_labels())
    ax.set_xlabel(series.axis_title)
    ax.set_ylabel("space group")
    doubted = [i for i, p in enumerate(series.points) if p.ok and p.in_domain is False]
    errors = [i for i, p in enumerate(series.points) if not p.ok]
    top = len(series.classes) - 0.5
    for i in doubted:
        ax.text(i, top, "×", color="tab:red", ha="center", va="bottom", fontsize=12, fontweight="bold", clip_on=False)
    for i in errors:
        ax.text(i, (len(series.classes) - 1) / 2, "error", color="0.3", ha="center", va="center", rotation=90)
    notes = []
    if doubted:
        notes.append("× in_domain = false: do not trust the candidates")
    if errors:
        notes.append("grey: not scored (error)")
    title = f"candidate space groups of {n} files"
    ax.set_title(title + ("\n" + "; ".join(notes) if notes else ""), fontsize=10, pad=14 if doubted else 6)


def _single(fig: Figure, series: Series) -> None:
    point = series.points[0]
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    if series.curve is not None:
        r, values = series.curve
        left.plot(r, values, color="tab:blue", lw=1.2)
        left.set_xlabel("r (Å)")
        left.set_ylabel("G(r), normalised")
        left.set_title(f"{point.label}: on the model grid", fontsize=10)
    else:
        left.set_axis_off()
        left.text(0.5, 0.5, f"{point.label}\n{point.message or 'curve not available'}", ha="center", va="center",
                  wrap=True, transform=left.transAxes)
    known = ~np.isnan(point.probabilities)
    order = [i for i in np.argsort(-np.nan_to_num(point.probabilities, nan=-1.0), kind="stable") if known[i]]
    labels = [series.class_labels()[i] for i in order]
    values = [point.probabilities[i] for i in order]
    colour = "tab:red" if point.in_domain is False else "tab:green"
    right.barh(range(len(order)), values, color=colour)
    right.set_yticks(range(len(order)), labels)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("probability")
    verdict = {True: "in domain", False: "in_domain = false: do not trust", None: ""}[point.in_domain]
    right.set_title("candidates" + (f" ({verdict})" if verdict else ""), fontsize=10,
                    color="tab:red" if point.in_domain is False else "black")


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` to ``path`` atomically (the format from its suffix: .png, .pdf, .svg)."""
    atomic_save(lambda tmp: fig.savefig(tmp, dpi=DPI), path)


def plot_results(
    predictions: Sequence[Prediction], out: str | os.PathLike, *, model: Model, order: str = "name"
) -> Series:
    """Build the series of ``predictions``, draw it and save it to ``out``; returns the series."""
    series = build_series(predictions, model=model, order=order)
    save_figure(figure(series), out)
    return series
