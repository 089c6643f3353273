"""Screening a structure library against a measured G(r): one precomputed curve per structure,
stretched instead of resimulated.

Every structure gets one G(r) (:func:`structure_curve`: Uiso :data:`NOMINAL_UISO`, delta2
no Q damping, no Qmax termination, on ``r = 0, 0.05, ..., 36 Å``)
per radiation, computed once and cached per machine (:func:`library_curves`). For a measured
file the whole matrix gets the file's Qdamp envelope ``exp(-(Qdamp r)²/2)`` and Qmax low-pass
(a sine transform cut at Qmax, as the simulation does), then each curve is stretched: scaling
all lengths of a crystal by ``s`` maps G(r) to G(r/s)/s² (the peak widths scale too, which the
tests show costs little over ±10 %), so ``G(r_k / s)`` by linear interpolation serves every ``s``
of a ±10 % search without a new simulation. The free scale is solved in closed form, and

    Rw = sqrt(1 − <g, m>² / (<g, g> <m, m>))      (0 for <g, m> ≤ 0: Rw = 1)

is pdffit2's unit-weight Rw at the best scale, over the measured part of 1.5–30 Å. A coarse
pass over :data:`STRETCHES` (0.5 % steps) is followed by a fine pass (0.1 % steps) around the
best stretch of the best :data:`FINE_TOP` structures. All of it is numpy over the whole library.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgmine import pdfdefaults

#: The stored curves' grid (Å): r = 0, STEP, ..., RMAX.
CURVE_STEP, CURVE_RMAX = 0.05, 36.0
#: Nominal settings of the stored curves.
NOMINAL_UISO, NOMINAL_DELTA2 = pdfdefaults.UISO, pdfdefaults.DELTA2
#: Qdamp (Å⁻¹) applied when the file gives none.
DEFAULT_QDAMP = pdfdefaults.QDAMP
#: Screening range (Å) and grid step.
SCREEN_RMIN, SCREEN_RMAX, SCREEN_STEP = 1.5, 30.0, 0.05
#: The coarse stretch search: ±10 % in 0.5 % steps.
STRETCHES = np.linspace(0.9, 1.1, 41)
#: How many structures get the fine stretch search (±0.5 % in 0.1 % steps).
FINE_TOP = 300
#: Bump when the stored curves change meaning (names the cache files).
CURVES_VERSION = 1


@dataclass
class ScreenResult:
    """Per library structure: Rw at the best stretch and scale (``inf`` without a curve)."""

    rw: np.ndarray
    stretch: np.ndarray
    npoints: int
    r_range: tuple[float, float]

    def best(self, n: int) -> np.ndarray:
        """Indices of the ``n`` lowest Rw, best first."""
        n = min(n, len(self.rw))
        part = np.argpartition(self.rw, n - 1)[:n] if n < len(self.rw) else np.arange(len(self.rw))
        return part[np.argsort(self.rw[part], kind="stable")]


def curve_grid() -> np.ndarray:
    """The r-grid (Å) of the stored curves."""
    return CURVE_STEP * np.arange(int(round(CURVE_RMAX / CURVE_STEP)) + 1)


def structure_curve(structure, radiation: str) -> np.ndarray:
    """The stored curve of one structure (diffpy Structure) under ``radiation``
    (``"xray"``/``"neutron"``), on :func:`curve_grid`."""
    from sgmine.simulate import PDFParams, pair_table, pdf

    table = pair_table(structure, rmax=CURVE_RMAX, radiation=radiation)
    params = PDFParams(qmax=0.0, qdamp=0.0, uiso=NOMINAL_UISO, delta2=NOMINAL_DELTA2, radiation=radiation)
    return pdf(table, curve_grid(), params)


def _curve_task(args):
    structure, radiation = args
    try:
        return structure_curve(structure, radiation).astype(np.float32)
    except Exception:  # an element without neutron length, a degenerate cell: no curve
        return None


def compute_curves(structures, radiation: str, *, workers: int | None = None, progress=None) -> np.ndarray:
    """Stored curves (float32 rows; NaN for a structure that cannot be simulated) of an
    iterable of diffpy Structures."""
    structures = list(structures)
    n_grid = len(curve_grid())
    out = np.full((len(structures), n_grid), np.nan, dtype=np.float32)
    workers = workers or min(os.cpu_count() or 1, 8)
    tasks = [(s, radiation) for s in structures]
    if workers > 1 and len(tasks) > 50:
        import multiprocessing

        with multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(workers) as pool:
            for i, row in enumerate(pool.imap(_curve_task, tasks, chunksize=32)):
                if row is not None:
                    out[i] = row
                if progress and (i + 1) % 2000 == 0:
                    progress(i + 1, len(tasks))
    else:
        for i, task in enumerate(tasks):
            row = _curve_task(task)
            if row is not None:
                out[i] = row
    return out


def cache_dir() -> Path:
    """Where screening curves are cached: ``$SGMINE_CACHE`` or ``~/.cache/sgmine``."""
    root = os.environ.get("SGMINE_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "sgmine")
    return Path(root) / "identify"


def library_curves(library, radiation: str, *, cache: Path | None = None, workers: int | None = None, say=None) -> np.ndarray:
    """The stored curves of a :class:`~sgmine_diffpy.structlib.StructureLibrary` under
    ``radiation``, from the cache when there, else computed (all CPU cores) and cached."""
    from sgmine.files import atomic_save

    folder = cache or cache_dir()
    path = folder / f"curves-v{CURVES_VERSION}-{library.digest}-{radiation}.npy"
    if path.is_file():
        try:
            curves = np.load(path, mmap_mode="r")
            if curves.shape == (len(library), len(curve_grid())):
                return curves
        except (OSError, ValueError):
            pass
    if say:
        say(f"computing the {radiation} screening curves of {len(library)} structures once (cached in {folder}) ...")
    curves = compute_curves((library.structure(i) for i in range(len(library))), radiation, workers=workers,
                            progress=(lambda i, n: say(f"  {i} of {n}")) if say else None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save(lambda p: np.save(p, curves), path)
    except OSError as exc:
        if say:
            say(f"cannot cache the curves in {folder}: {exc.strerror or exc}")
    return curves


def prepare(curves: np.ndarray, *, qmax: float | None, qdamp: float | None) -> np.ndarray:
    """The stored curves with the file's Qdamp envelope and Qmax low-pass (float32 copy).

    ``qmax`` None or 0 leaves the curves unterminated; ``qdamp`` None means :data:`DEFAULT_QDAMP`.
    """
    from scipy import fft as sfft

    r = curve_grid()
    m = np.nan_to_num(np.asarray(curves, dtype=np.float32), nan=0.0)
    if qmax and qmax > 0:
        n = len(r)
        taper_start = CURVE_RMAX - 2.0
        x = np.clip((r - taper_start) / (CURVE_RMAX - taper_start), 0.0, 1.0)
        m = m * (0.5 * (1 + np.cos(math.pi * x))).astype(np.float32)
        coef = sfft.dst(m[:, 1:], type=1, axis=1)  # odd about r = 0 and r = RMAX
        qk = math.pi * np.arange(1, n) / ((n) * CURVE_STEP)
        weights = np.clip((qmax - qk) / (qk[1] - qk[0]) + 0.5, 0.0, 1.0).astype(np.float32)
        m = np.concatenate((np.zeros((len(m), 1), np.float32), sfft.idst(coef * weights, type=1, axis=1).astype(np.float32)), axis=1)
    d = DEFAULT_QDAMP if qdamp is None else qdamp
    if d > 0:
        m *= np.exp(-0.5 * (r * d) ** 2).astype(np.float32)
    return m


def measured_grid(r: np.ndarray, g: np.ndarray, rmin: float = SCREEN_RMIN, rmax: float = SCREEN_RMAX):
    """``(r_k, g_k)``: the measured curve on the screening grid over its part of ``rmin``–``rmax``."""
    r = np.asarray(r, dtype=float)
    g = np.asarray(g, dtype=float)
    ok = np.isfinite(r) & np.isfinite(g)
    r, g = r[ok], g[ok]
    order = np.argsort(r)
    r, g = r[order], g[order]
    lo, hi = max(rmin, float(r.min())), min(rmax, float(r.max()))
    if hi - lo < 2.0:
        raise ValueError(f"the data cover only {lo:.2f}–{hi:.2f} Å of the screening range {rmin:g}–{rmax:g} Å")
    rk = np.arange(math.ceil(lo / SCREEN_STEP - 1e-9), math.floor(hi / SCREEN_STEP + 1e-9) + 1) * SCREEN_STEP
    return rk, np.interp(rk, r, g)


def _rw_at(m: np.ndarray, rk: np.ndarray, gk: np.ndarray, gg: float, s: float | np.ndarray) -> np.ndarray:
    """Rw of every row of ``m`` stretched by ``s`` (scalar, or one per row)."""
    pos = rk[None, :] / np.atleast_1d(s)[:, None] / CURVE_STEP  # (1 or n, k)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, m.shape[1] - 2)
    t = (pos - i0).astype(np.float32)
    if pos.shape[0] == 1:
        ms = m[:, i0[0]] * (1 - t[0]) + m[:, i0[0] + 1] * t[0]
    else:
        rows = np.arange(m.shape[0])[:, None]
        ms = m[rows, i0] * (1 - t) + m[rows, i0 + 1] * t
    dots = ms @ gk.astype(np.float32)
    norms = np.einsum("ij,ij->i", ms, ms)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where((dots > 0) & (norms > 0), dots.astype(np.float64) ** 2 / (norms.astype(np.float64) * gg), 0.0)
    return np.sqrt(np.clip(1.0 - frac, 0.0, 1.0))


def screen(r: np.ndarray, g: np.ndarray, prepared: np.ndarray, *, rmin: float = SCREEN_RMIN, rmax: float = SCREEN_RMAX,
           stretches: np.ndarray = STRETCHES, fine_top: int = FINE_TOP, valid: np.ndarray | None = None) -> ScreenResult:
    """Rw of every prepared curve (:func:`prepare`) against the measured ``(r, g)`` at its best
    stretch (see the module text). ``valid`` marks the rows that have a curve (others: inf)."""
    rk, gk = measured_grid(r, g, rmin, rmax)
    gg = float(gk @ gk)
    if not gg > 0:
        raise ValueError("the measured curve is zero over the screening range")
    n = prepared.shape[0]
    best_rw = np.full(n, np.inf)
    best_s = np.ones(n)
    for s in stretches:
        rw = _rw_at(prepared, rk, gk, gg, float(s))
        better = rw < best_rw
        best_rw[better], best_s[better] = rw[better], s
    if fine_top and len(stretches) > 1:
        step = float(np.min(np.diff(np.sort(stretches))))
        top = np.argsort(best_rw, kind="stable")[:fine_top]
        sub = prepared[top]
        for ds in np.linspace(-step, step, 11):
            s = best_s[top] + ds
            rw = _rw_at(sub, rk, gk, gg, s)
            better = rw < best_rw[top]
            best_rw[top[better]], best_s[top[better]] = rw[better], s[better]
    if valid is not None:
        best_rw[~valid] = np.inf
    return ScreenResult(best_rw, best_s, len(rk), (float(rk[0]), float(rk[-1])))
