"""The model's r-grid: put a measured G(r) onto the points the model was trained on.

The convention follows spacegroupMining (Liu et al. 2019): the curve is cut to the model's
r-range, interpolated (quadratic spline) onto ``npoints`` equally spaced points from ``rmin``
to ``rmax``, filled with zero where the measurement does not reach, and min-max normalised
to [0, 1]. Every setting comes from the model file (see :class:`sgmine.model.ModelInfo`);
nothing here is specific to one model.

The same functions build training data (``training.dataset``), so a simulated PDF and a
measured one reach the network through exactly the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sgmine.spline import quadratic_spline

#: Fewest measured points inside the model's r-range that can still be scored.
MIN_POINTS = 5

INTERPOLATIONS = ("linear", "quadratic", "cubic")
NORMALISATIONS = ("minmax", "none")


class GridError(ValueError):
    """A curve that cannot be put on the model's grid (no overlap, too few points, flat)."""


@dataclass(frozen=True)
class Grid:
    """Equally spaced r-points ``linspace(rmin, rmax, npoints)`` and how curves reach them."""

    rmin: float = 1.5
    rmax: float = 30.0
    npoints: int = 209
    interpolation: str = "quadratic"
    normalisation: str = "minmax"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rmin) and np.isfinite(self.rmax) and self.rmax > self.rmin):
            raise ValueError(f"grid needs finite rmin < rmax, got {self.rmin}, {self.rmax}")
        if int(self.npoints) != self.npoints or self.npoints < 2:
            raise ValueError(f"grid needs at least 2 points, got {self.npoints}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; use one of {INTERPOLATIONS}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalisation!r}; use one of {NORMALISATIONS}")

    @property
    def r(self) -> np.ndarray:
        """The grid points, in Å."""
        return np.linspace(self.rmin, self.rmax, int(self.npoints))

    @property
    def step(self) -> float:
        """Spacing of the grid points, in Å."""
        return (self.rmax - self.rmin) / (int(self.npoints) - 1)

    def as_dict(self) -> dict[str, Any]:
        """The grid as plain values (``dataset.json``, ``history.json``); :meth:`from_dict` reads it."""
        return {"rmin": float(self.rmin), "rmax": float(self.rmax), "npoints": int(self.npoints),
                "interpolation": self.interpolation, "normalisation": self.normalisation}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, npoints: int | None = None) -> "Grid":
        """The grid that :meth:`as_dict` wrote; missing entries take the defaults.

        Parameters
        ----------
        values
            ``rmin``, ``rmax``, ``npoints``, ``interpolation``, ``normalisation`` (any may be missing).
        npoints
            The number of points when ``values`` does not give it (e.g. the data's width).
        """
        values = dict(values or {})
        default = cls()
        return cls(
            rmin=float(values.get("rmin", default.rmin)),
            rmax=float(values.get("rmax", default.rmax)),
            npoints=int(values.get("npoints", npoints if npoints is not None else default.npoints)),
            interpolation=str(values.get("interpolation", default.interpolation)),
            normalisation=str(values.get("normalisation", default.normalisation)),
        )


@dataclass
class Resampled:
    """A curve on the model grid, with what a person should know about how it got there."""

    values: np.ndarray
    r_min: float  # lowest measured r used (within the grid range)
    r_max: float  # highest measured r used
    warnings: list[str] = field(default_factory=list)


def _order_finite(r: np.ndarray, g: np.ndarray, warnings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Drop non-finite rows, sort by r and drop repeated r values, noting each in ``warnings``."""
    finite = np.isfinite(r) & np.isfinite(g)
    if not finite.all():
        warnings.append(f"ignored {int((~finite).sum())} rows with NaN or infinite values")
        r, g = r[finite], g[finite]
    if r.size > 1 and np.any(np.diff(r) <= 0):
        order = np.argsort(r, kind="stable")
        r, g = r[order], g[order]
        keep = np.concatenate(([True], np.diff(r) > 0))
        if not keep.all():
            warnings.append(f"ignored {int((~keep).sum())} rows with repeated r values")
            r, g = r[keep], g[keep]
        else:
            warnings.append("r values were not increasing; sorted them")
    return r, g


def _interpolate(r: np.ndarray, g: np.ndarray, at: np.ndarray, kind: str) -> np.ndarray:
    """Interpolate ``g(r)`` at points ``at`` (all inside [r[0], r[-1]]) as scipy's interp1d does
    (the quadratic spline by :func:`sgmine.spline.quadratic_spline`, the same values without
    scipy's import cost); ``g`` may hold several curves as columns, shape (len(r), n)."""
    if kind == "quadratic" and r.size >= 3:  # the convention's spline without importing scipy
        values = quadratic_spline(r, g, at)
        if values is not None:
            return values
    from scipy.interpolate import interp1d

    order = {"linear": 1, "quadratic": 2, "cubic": 3}[kind]
    if r.size <= order:  # too few points for the spline order: fall back to straight lines
        kind = "linear"
    return interp1d(r, g, kind=kind, axis=0, assume_sorted=True)(at)


def normalise(values: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Scale each row of ``values`` to [0, 1] (``minmax``) or return it unchanged (``none``).

    Raises :class:`GridError` for a row with no variation.
    """
    values = np.asarray(values, dtype=np.float64)
    if method == "none":
        return values
    if method != "minmax":
        raise ValueError(f"unknown normalisation {method!r}")
    biggest = np.abs(values).max() if values.size else 0.0
    if biggest > 1e300:  # max - min would overflow; min-max is scale-free, so scale first
        values = values / biggest
    lo = values.min(axis=-1, keepdims=True)
    span = values.max(axis=-1, keepdims=True) - lo
    scale = np.abs(values).max(axis=-1, keepdims=True)
    if np.any(span <= 1e-9 * scale) or np.any(span <= 0):  # flat up to round-off
        raise GridError("G(r) has no variation on the model's r-range (constant curve)")
    return (values - lo) / span


@dataclass
class _Cut:
    """A curve cut to the grid's range (one measured point kept either side), ready to interpolate."""

    r: np.ndarray
    g: np.ndarray
    used_min: float
    used_max: float
    warnings: list[str]


def _cut(r: np.ndarray, g: np.ndarray, grid: Grid) -> _Cut:
    """Validate, order and cut a curve to ``grid``'s range; :class:`GridError` when it cannot be scored."""
    r = np.asarray(r, dtype=np.float64).ravel()
    g = np.asarray(g, dtype=np.float64).ravel()
    if r.shape != g.shape:
        raise GridError(f"r and G have different lengths ({r.size} and {g.size})")
    warnings: list[str] = []
    r, g = _order_finite(r, g, warnings)
    if r.size == 0:
        raise GridError("no finite data points")

    # Cut to the grid range, keeping one measured point either side so the spline is local
    # but still spans the grid points at the edges.
    lo = max(int(np.searchsorted(r, grid.rmin, side="right")) - 1, 0)
    hi = min(int(np.searchsorted(r, grid.rmax, side="left")) + 1, r.size)
    r_cut, g_cut = r[lo:hi], g[lo:hi]
    inside = (r_cut >= grid.rmin) & (r_cut <= grid.rmax)
    if not inside.any() and not (r_cut.size >= 2 and r_cut[0] < grid.rmin and r_cut[-1] > grid.rmax):
        raise GridError(
            f"measured r-range {r[0]:.4g}–{r[-1]:.4g} Å does not overlap the model's "
            f"{grid.rmin:g}–{grid.rmax:g} Å"
        )
    n_inside = int(inside.sum())
    if n_inside < MIN_POINTS:
        raise GridError(
            f"only {n_inside} measured point{'s' if n_inside != 1 else ''} within {grid.rmin:g}–{grid.rmax:g} Å "
            f"(need at least {MIN_POINTS})"
        )
    used_min, used_max = max(r_cut[0], grid.rmin), min(r_cut[-1], grid.rmax)
    return _Cut(r_cut, g_cut, float(used_min), float(used_max), warnings)


def resample(r: np.ndarray, g: np.ndarray, grid: Grid) -> Resampled:
    """Put a measured curve ``g(r)`` on ``grid``: cut, interpolate, zero-fill, normalise.

    Rows with non-finite values are dropped and unsorted r is sorted, each with a warning.
    A curve that covers only part of the grid is scored with a warning; one that does not
    overlap it, has fewer than :data:`MIN_POINTS` points on it, or is flat raises
    :class:`GridError`.
    """
    result = resample_many([(r, g)], grid)[0]
    if isinstance(result, GridError):
        raise result
    return result


def resample_many(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: Grid) -> list[Resampled | GridError]:
    """:func:`resample` for many ``(r, G)`` curves: a :class:`Resampled` or the
    :class:`GridError` for each, in order.

    Curves measured on the same r-points (as a beamtime's files usually are) are interpolated
    together, one spline solve for all of them, which is several times faster than one by one
    and gives the same values to round-off.
    """
    results: list[Resampled | GridError | None] = [None] * len(curves)
    groups: dict[bytes, list[tuple[int, _Cut]]] = {}
    for index, (r, g) in enumerate(curves):
        try:
            cut = _cut(r, g, grid)
        except GridError as exc:
            results[index] = exc
            continue
        groups.setdefault(cut.r.tobytes(), []).append((index, cut))
    points = grid.r
    for members in groups.values():
        r_cut = members[0][1].r
        covered = (points >= r_cut[0]) & (points <= r_cut[-1])
        values = np.zeros((len(members), points.size))
        g_cuts = np.stack([cut.g for _, cut in members], axis=1)  # (points of r_cut, curves)
        values[:, covered] = _interpolate(r_cut, g_cuts, points[covered], grid.interpolation).T
        coverage = []
        if not covered.all():
            used_min, used_max = members[0][1].used_min, members[0][1].used_max
            coverage.append(
                f"data cover {used_min:.4g}–{used_max:.4g} Å of the model's {grid.rmin:g}–{grid.rmax:g} Å; "
                f"{int((~covered).sum())} of {points.size} grid points set to zero"
            )
        for (index, cut), row in zip(members, values):
            try:
                results[index] = Resampled(
                    normalise(row, grid.normalisation), cut.used_min, cut.used_max, cut.warnings + coverage
                )
            except GridError as exc:
                results[index] = exc
    return results
