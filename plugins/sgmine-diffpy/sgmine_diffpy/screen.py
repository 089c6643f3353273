"""Screening a structure library against a measured G(r): one precomputed curve per structure,
stretched instead of resimulated.

Every structure gets one G(r) (:func:`structure_curve`: Uiso :data:`NOMINAL_UISO`, delta2
no Q damping, no Qmax termination, on ``r = 0, 0.05, ..., 36 Å``)
per radiation, computed once and cached per machine (:func:`library_curves`). For a measured
file the whole matrix gets the file's Qdamp envelope ``exp(-(Qdamp r)²/2)`` and Qmax low-pass
(a sine transform cut at Qmax, as the simulation does), then each curve is stretched: scaling
all lengths of a crystal by ``s`` maps G(r) to G(r/s)/s² (the peak widths scale too, which the
tests show costs little over ±10 %), so ``G(r_k / s)`` by cubic interpolation serves every ``s``
of a ±10 % search without a new simulation. The free scale is solved in closed form, and

    Rw = sqrt(1 − <g, m>² / (<g, g> <m, m>))      (0 for <g, m> ≤ 0: Rw = 1)

is pdffit2's unit-weight Rw at the best scale, over the measured part of 1.5–30 Å. A coarse
pass over :data:`STRETCHES` (0.5 % steps) and the particle diameters :data:`DIAMETERS` (bulk,
and the spherical envelope of a nanoparticle) is followed by a fine pass (0.1 % steps) around
the best stretch of the best :data:`FINE_TOP` structures. All of it is numpy over the whole
library.
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
#: Spherical-particle diameters (Å) the screen tries (inf: bulk): a nanoparticle's G(r) fades
#: with the particle's envelope 1 − 3r/2D + r³/2D³, which no stretch or scale of a bulk curve
#: reproduces (CeO2 nanoparticles of about 2.5 nm: fluorite screened 80th without it).
DIAMETERS = (math.inf, 64.0, 40.0, 25.0, 16.0)
#: Bump when the stored curves change meaning (names the cache files).
CURVES_VERSION = 1


@dataclass
class ScreenResult:
    """Per library structure: Rw at the best stretch, particle diameter and scale (``inf``
    without a curve)."""

    rw: np.ndarray
    stretch: np.ndarray
    npoints: int
    r_range: tuple[float, float]
    diameter: np.ndarray | None = None  # Å, inf for bulk

    def best(self, n: int) -> np.ndarray:
        """Indices of the ``n`` lowest Rw, best first."""
        n = min(n, len(self.rw))
        part = np.argpartition(self.rw, n - 1)[:n] if n < len(self.rw) else np.arange(len(self.rw))
        return part[np.argsort(self.rw[part], kind="stable")]


def curve_grid() -> np.ndarray:
    """The r-grid (Å) of the stored curves."""
    return CURVE_STEP * np.arange(int(round(CURVE_RMAX / CURVE_STEP)) + 1)


def structure_curve(structure, radiation: str, table=None) -> np.ndarray:
    """The stored curve of one structure (diffpy Structure) under ``radiation``
    (``"xray"``/``"neutron"``), on :func:`curve_grid`."""
    from sgmine.simulate import PDFParams, pair_table, pdf

    table = table or pair_table(structure, rmax=CURVE_RMAX, radiation="xray")
    params = PDFParams(qmax=0.0, qdamp=0.0, uiso=NOMINAL_UISO, delta2=NOMINAL_DELTA2, radiation=radiation)
    return pdf(table, curve_grid(), params)


def _curve_task(args):
    """The structure's curve under each radiation (None where it cannot be simulated: an
    element without a neutron length, a degenerate cell)."""
    from sgmine.simulate import pair_table

    structure, radiations = args
    try:
        table = pair_table(structure, rmax=CURVE_RMAX, radiation="xray")
    except Exception:
        return [None] * len(radiations)
    out = []
    for radiation in radiations:
        try:
            out.append(structure_curve(structure, radiation, table).astype(np.float32))
        except Exception:
            out.append(None)
    return out


def compute_curves(structures, radiation, *, workers: int | None = None, progress=None):
    """Stored curves (float32 rows; NaN for a structure that cannot be simulated) of an
    iterable of diffpy Structures: one matrix for a radiation name, a list of matrices for a
    tuple of names (one pair table serves all)."""
    radiations = (radiation,) if isinstance(radiation, str) else tuple(radiation)
    structures = list(structures)
    n_grid = len(curve_grid())
    out = [np.full((len(structures), n_grid), np.nan, dtype=np.float32) for _ in radiations]
    workers = workers or min(os.cpu_count() or 1, 8)
    tasks = [(s, radiations) for s in structures]
    if workers > 1 and len(tasks) > 50:
        import multiprocessing

        with multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(workers) as pool:
            results = pool.imap(_curve_task, tasks, chunksize=16)
            for i, rows in enumerate(results):
                for matrix, row in zip(out, rows):
                    if row is not None:
                        matrix[i] = row
                if progress and (i + 1) % 1000 == 0:
                    progress(i + 1, len(tasks))
    else:
        for i, task in enumerate(tasks):
            for matrix, row in zip(out, _curve_task(task)):
                if row is not None:
                    matrix[i] = row
    return out[0] if isinstance(radiation, str) else out


def cache_dir() -> Path:
    """Where screening curves are cached: ``$SGMINE_CACHE`` or ``~/.cache/sgmine``."""
    from sgmine.cache import cache_root

    return cache_root() / "identify"


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
    radiations = ("xray", "neutron")
    if say:
        say(f"computing the screening curves of {len(library)} structures once (cached in {folder}) ...")
    matrices = compute_curves((library.structure(i) for i in range(len(library))), radiations, workers=workers,
                              progress=(lambda i, n: say(f"  {i} of {n}")) if say else None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, matrix in zip(radiations, matrices):
            target = folder / f"curves-v{CURVES_VERSION}-{library.digest}-{name}.npy"
            atomic_save(lambda p, m=matrix: np.save(p, m), target)
    except OSError as exc:
        if say:
            say(f"cannot cache the curves in {folder}: {exc.strerror or exc}")
    return matrices[radiations.index(radiation)]


def prepare(curves: np.ndarray, *, qmax, qdamp) -> np.ndarray:
    """The stored curves with the file's Qdamp envelope and then its Qmax low-pass, as the
    simulation applies them (float32 copy).

    ``qmax`` None or 0 leaves the curves unterminated; ``qdamp`` None means :data:`DEFAULT_QDAMP`.
    Either may also be an array with one value per row (the fine stretch pass uses ``qmax · s``
    and ``qdamp · s`` so that the stretched curve has the file's own Qmax and Qdamp).
    """
    from scipy import fft as sfft

    r = curve_grid()
    m = np.nan_to_num(np.asarray(curves, dtype=np.float32), nan=0.0)
    d = np.asarray(DEFAULT_QDAMP if qdamp is None else qdamp, dtype=float)
    if np.any(d > 0):
        m = m * np.exp(-0.5 * (r[None, :] * np.reshape(d, (-1, 1))) ** 2).astype(np.float32)
    q = np.asarray(0.0 if qmax is None else qmax, dtype=float)
    if np.any(q > 0):
        n = len(r)
        taper_start = CURVE_RMAX - 2.0
        x = np.clip((r - taper_start) / (CURVE_RMAX - taper_start), 0.0, 1.0)
        m = m * (0.5 * (1 + np.cos(math.pi * x))).astype(np.float32)
        coef = sfft.dst(m[:, 1:], type=1, axis=1)  # odd about r = 0 and r = RMAX
        qk = math.pi * np.arange(1, n) / (n * CURVE_STEP)
        qcol = np.reshape(np.where(q > 0, q, np.inf), (-1, 1))
        weights = np.clip((qcol - qk[None, :]) / (qk[1] - qk[0]) + 0.5, 0.0, 1.0).astype(np.float32)
        filtered = sfft.idst(coef * weights, type=1, axis=1).astype(np.float32)
        m = np.concatenate((np.zeros((len(m), 1), np.float32), filtered), axis=1)
    return m


#: :func:`estimate_qmax`: the last Q where the data's smoothed |F(Q)| is above this share of its
#: maximum. Checked against the Qmax that 17 measured files' headers give: within 1 Å⁻¹ for 16
#: (the 17th, a file reduced without background subtraction, came out 8 Å⁻¹ high).
QMAX_LEVEL = 0.02
#: :func:`estimate_qmax`: the length (Å) at the end of the data tapered to 0 by a cos² window.
QMAX_TAPER = 3.0


def estimate_qmax(r: np.ndarray, g: np.ndarray, level: float = QMAX_LEVEL) -> float | None:
    """The Qmax (Å⁻¹) a measured G(r) was transformed with, from its own spectrum: F(Q) =
    ∫ G(r) sin(Qr) dr over the data up to 40 Å is the reduced structure function up to Qmax and
    nothing beyond it, so Qmax is where |F(Q)| (smoothed over 1 Å⁻¹) last exceeds ``level`` of its
    maximum. The last :data:`QMAX_TAPER` Å of the data are tapered to 0 first: the step where the
    data end otherwise leaks into F(Q) at every Q (a curve transformed at Qmax 18 read as 31-38).
    Where the signal fades before Qmax (large ADPs), the estimate is where it fades. None when
    the data are too short or too coarse to tell."""
    r = np.asarray(r, dtype=float)
    g = np.asarray(g, dtype=float)
    keep = np.isfinite(r) & np.isfinite(g) & (r > 0.5) & (r <= 40.0)
    r, g = r[keep], g[keep]
    if len(r) < 50:
        return None
    dr = float(np.median(np.diff(r)))
    if not dr > 0:
        return None
    q = np.arange(1.0, min(60.0, 0.95 * math.pi / dr), 0.1)
    if len(q) < 50:
        return None
    taper = np.clip((r - (r[-1] - QMAX_TAPER)) / QMAX_TAPER, 0.0, 1.0)
    g = g * np.cos(0.5 * math.pi * taper) ** 2
    f = np.abs(np.sin(np.outer(q, r)) @ g) * dr
    smooth = np.convolve(f, np.ones(10) / 10, mode="same")
    above = np.nonzero(smooth > level * smooth[q > 3].max())[0]
    return float(q[above[-1]]) if len(above) else None


def step_grid(lo: float, hi: float, step: float = SCREEN_STEP) -> np.ndarray:
    """The multiples of ``step`` from ``lo`` to ``hi`` (both inclusive when on the grid), rounded
    to 1e-9 Å: the screening grid, and the refinement's (:func:`sgmine_diffpy.refinements.fit_grid`)."""
    k = np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)
    return np.round(k * step, 9)


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
    rk = step_grid(lo, hi)
    return rk, np.interp(rk, r, g)


def envelope(r: np.ndarray, diameter: float | np.ndarray) -> np.ndarray:
    """The spherical-particle envelope 1 − 3r/2D + r³/2D³ (0 beyond D; 1 for D = inf), as
    pdffit2's ``spdiameter``; ``diameter`` may be one per row (then rows × len(r))."""
    d = np.asarray(diameter, dtype=float)
    x = np.asarray(r, dtype=float) / (d[..., None] if d.ndim else d)
    return np.where(x < 1.0, 1.0 - 1.5 * x + 0.5 * x ** 3, 0.0)


def _rw_at(m: np.ndarray, rk: np.ndarray, gk: np.ndarray, gg: float, s: float | np.ndarray,
           env: np.ndarray | None = None) -> np.ndarray:
    """Rw of every row of ``m`` stretched by ``s`` (scalar, or one per row), times ``env``
    (the particle envelope at ``rk``, one row per row of ``m``) where given."""
    pos = rk[None, :] / np.atleast_1d(s)[:, None] / CURVE_STEP  # (1 or n, k)
    i0 = np.clip(np.floor(pos).astype(np.int64), 1, m.shape[1] - 3)
    t = (pos - i0).astype(np.float32)
    # Catmull-Rom cubic interpolation (linear would err by ~3 % on peaks of σ ≈ 0.1 Å)
    t2, t3 = t * t, t * t * t
    weights = (0.5 * (-t3 + 2 * t2 - t), 0.5 * (3 * t3 - 5 * t2 + 2), 0.5 * (-3 * t3 + 4 * t2 + t), 0.5 * (t3 - t2))
    if pos.shape[0] == 1:
        ms = sum(m[:, i0[0] + k - 1] * w[0] for k, w in enumerate(weights))
    else:
        rows = np.arange(m.shape[0])[:, None]
        ms = sum(m[rows, i0 + k - 1] * w for k, w in enumerate(weights))
    if env is not None:
        ms = ms * env.astype(np.float32)
    dots = ms @ gk.astype(np.float32)
    norms = np.einsum("ij,ij->i", ms, ms)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where((dots > 0) & (norms > 0), dots.astype(np.float64) ** 2 / (norms.astype(np.float64) * gg), 0.0)
    return np.sqrt(np.clip(1.0 - frac, 0.0, 1.0))


def _interpolation_weights(rk: np.ndarray, s: float, n_grid: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(i0, [w0, w1, w2, w3])``: the curve at ``rk / s`` is ``Σ_k w_k · curve[i0 + k - 1]``
    (Catmull-Rom, as :func:`_rw_at`); row k of the interpolation matrix W_s holds ``w_k`` in
    column ``i0 + k - 1``."""
    pos = rk / s / CURVE_STEP
    i0 = np.clip(np.floor(pos).astype(np.int64), 1, n_grid - 3)
    t = pos - i0
    t2, t3 = t * t, t * t * t
    return i0, [0.5 * (-t3 + 2 * t2 - t), 0.5 * (3 * t3 - 5 * t2 + 2), 0.5 * (-3 * t3 + 4 * t2 + t), 0.5 * (t3 - t2)]


def _rw_all_stretches(m: np.ndarray, rk: np.ndarray, gk: np.ndarray, gg: float, stretches: np.ndarray,
                      envs: list[np.ndarray | None]) -> np.ndarray:
    """Rw (n × len(envs) × len(stretches)) of every row of ``m`` at every stretch and particle
    envelope (``None``: bulk; else the envelope at ``rk``), by matrix products alone.

    With W_s the interpolation matrix, ⟨g, W_s m⟩ = m · (W_sᵀ g) and ⟨W_s m, W_s m⟩ =
    Σ_o Σ_j m_j m_(j+o) (W_sᵀW_s)_(j, j+o), where W_sᵀW_s is banded (|o| ≤ 3) and built from the
    four weights per point of W_s (:func:`_interpolation_weights`) by ``bincount``: a few
    products of the library matrix with (n_grid × n_envelopes·n_stretches) matrices. An
    envelope weights the rows of W_s.
    """
    n_grid = m.shape[1]
    weights = [_interpolation_weights(rk, float(s), n_grid) for s in stretches]
    columns = [(env, i0, w) for env in envs for i0, w in weights]
    v = np.empty((n_grid, len(columns)), dtype=np.float32)
    band = np.empty((4, n_grid, len(columns)), dtype=np.float32)
    for c, (env, i0, w) in enumerate(columns):
        w = w if env is None else [wk * env for wk in w]
        v[:, c] = sum(np.bincount(i0 + k - 1, weights=wk * gk, minlength=n_grid) for k, wk in enumerate(w))
        for o in range(4):
            band[o, :, c] = sum(np.bincount(i0 + k - 1, weights=w[k] * w[k + o], minlength=n_grid) for k in range(4 - o))
    dots = (m @ v).astype(np.float64)
    norms = ((m * m) @ band[0]).astype(np.float64)
    for o in range(1, 4):
        norms += 2.0 * ((m[:, : n_grid - o] * m[:, o:]) @ band[o, : n_grid - o])
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where((dots > 0) & (norms > 0), dots**2 / (norms * gg), 0.0)
    return np.sqrt(np.clip(1.0 - frac, 0.0, 1.0)).reshape(m.shape[0], len(envs), len(stretches))


def screen(r: np.ndarray, g: np.ndarray, prepared: np.ndarray, *, rmin: float = SCREEN_RMIN, rmax: float = SCREEN_RMAX,
           stretches: np.ndarray = STRETCHES, fine_top: int = FINE_TOP, valid: np.ndarray | None = None,
           curves: np.ndarray | None = None, qmax: float | None = None, qdamp: float | None = None,
           diameters=DIAMETERS) -> ScreenResult:
    """Rw of every prepared curve (:func:`prepare`) against the measured ``(r, g)`` at its best
    stretch and particle diameter (see the module text). ``valid`` marks the rows that have a
    curve (others: inf). With the stored ``curves`` (and the file's ``qmax``, ``qdamp``), the
    fine pass prepares each of the best ``fine_top`` at ``qmax · s`` and ``qdamp · s`` for its
    coarse best stretch s, so that the stretched curve carries the file's own Qmax and Qdamp."""
    rk, gk = measured_grid(r, g, rmin, rmax)
    gg = float(gk @ gk)
    if not gg > 0:
        raise ValueError("the measured curve is zero over the screening range")
    n = prepared.shape[0]
    stretches = np.asarray(stretches, dtype=float)
    best_rw = np.full(n, np.inf)
    best_s = np.ones(n)
    best_d = np.full(n, np.inf)
    envs = [None if math.isinf(diameter) else envelope(rk, diameter) for diameter in diameters]
    rw_all = _rw_all_stretches(prepared, rk, gk, gg, stretches, envs)
    for k, diameter in enumerate(diameters):
        pick = np.argmin(rw_all[:, k], axis=1)
        rw = rw_all[np.arange(n), k, pick]
        better = rw < best_rw
        best_rw[better], best_s[better], best_d[better] = rw[better], stretches[pick][better], diameter
    if fine_top and len(stretches) > 1:
        step = float(np.min(np.diff(np.sort(stretches))))
        top = np.argsort(best_rw, kind="stable")[:fine_top]
        s0 = best_s[top].copy()
        env = envelope(rk, best_d[top])
        if curves is not None:
            d = DEFAULT_QDAMP if qdamp is None else qdamp
            sub = prepare(np.asarray(curves[np.sort(top)])[np.argsort(np.argsort(top))], qmax=(qmax or 0.0) * s0, qdamp=d * s0)
            best_rw[top] = _rw_at(sub, rk, gk, gg, s0, env)
        else:
            sub = prepared[top]
        for ds in np.linspace(-step, step, 11):
            s = s0 + ds
            rw = _rw_at(sub, rk, gk, gg, s, env)
            better = rw < best_rw[top]
            best_rw[top[better]], best_s[top[better]] = rw[better], s[better]
    if valid is not None:
        best_rw[~valid] = np.inf
    return ScreenResult(best_rw, best_s, len(rk), (float(rk[0]), float(rk[-1])), best_d)
