"""The quadratic interpolating spline of scipy's ``interp1d(kind="quadratic")``, in numpy alone.

The model's grid convention interpolates with ``scipy.interpolate.interp1d(kind="quadratic")``,
which is ``make_interp_spline(x, y, k=2)``: a quadratic B-spline with knots at the midpoints
between data points (the second and second-to-last left out, "not-a-knot" style) that passes
through every point. Importing ``scipy.interpolate`` costs about half a second, more than
``sgmine scan`` spends on anything else before its first result, so this module builds the
same spline with numpy: the collocation system is tridiagonal, and it is solved by cyclic
reduction, vectorised over the rows and over many curves at once.

Cyclic reduction does not pivot, so it is used only where the system is diagonally dominant
(it is for any data on an even r-step, as measured PDFs are); :func:`quadratic_spline` returns
None otherwise, and the caller uses scipy. ``tests/test_spline.py`` checks the values against
scipy's to round-off.
"""

from __future__ import annotations

import numpy as np


def _knots(x: np.ndarray) -> np.ndarray:
    """scipy's knots for k=2: the data ends three times, the midpoints between the inner points."""
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([np.repeat(x[0], 3), mid[1:-1], np.repeat(x[-1], 3)])


def _basis(t: np.ndarray, at: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each point of ``at``: the knot interval ``l`` (``t[l] <= p < t[l+1]``, the last one
    closed) and the three quadratic B-splines non-zero there, ``B[l-2]``, ``B[l-1]``, ``B[l]``."""
    l = np.clip(np.searchsorted(t, at, side="right") - 1, 2, n - 1)
    t_lm1, t_l, t_lp1, t_lp2 = t[l - 1], t[l], t[l + 1], t[l + 2]
    # degree 1 (Cox-de Boor), then degree 2
    left1 = (t_lp1 - at) / (t_lp1 - t_l)
    right1 = (at - t_l) / (t_lp1 - t_l)
    b0 = (t_lp1 - at) / (t_lp1 - t_lm1) * left1
    b1 = (at - t_lm1) / (t_lp1 - t_lm1) * left1 + (t_lp2 - at) / (t_lp2 - t_l) * right1
    b2 = (at - t_l) / (t_lp2 - t_l) * right1
    return l, np.stack([b0, b1, b2], axis=-1)


def _solve_tridiagonal(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Solve ``a[i] x[i-1] + b[i] x[i] + c[i] x[i+1] = d[i]`` (``a[0]`` and ``c[-1]`` unused) by
    cyclic reduction; ``d`` has shape (n, curves)."""
    n = b.size
    if n == 1:
        return d / b[0]
    a = a.copy()
    c = c.copy()
    a[0] = 0.0
    c[-1] = 0.0
    even, odd = slice(0, n, 2), slice(1, n, 2)
    # eliminate the odd unknowns from the even equations
    a_e, b_e, c_e, d_e = a[even], b[even], c[even], d[even]
    a_o, b_o, c_o, d_o = a[odd], b[odd], c[odd], d[odd]
    n_e, n_o = b_e.size, b_o.size
    alpha = np.zeros(n_e)
    gamma = np.zeros(n_e)
    alpha[1:] = -a_e[1:] / b_o[: n_e - 1]  # the odd neighbour below each even row (none for row 0)
    gamma[:n_o] = -c_e[:n_o] / b_o  # the odd neighbour above (none for the last row if n is odd)
    new_a = np.zeros(n_e)
    new_c = np.zeros(n_e)
    new_a[1:] = alpha[1:] * a_o[: n_e - 1]
    new_c[:n_o] = gamma[:n_o] * c_o
    new_b = b_e.copy()
    new_b[1:] += alpha[1:] * c_o[: n_e - 1]
    new_b[:n_o] += gamma[:n_o] * a_o
    new_d = d_e.copy()
    new_d[1:] += alpha[1:, None] * d_o[: n_e - 1]
    new_d[:n_o] += gamma[:n_o, None] * d_o
    x = np.empty_like(d)
    x[even] = _solve_tridiagonal(new_a, new_b, new_c, new_d)
    # back-substitute the odd unknowns
    below = x[0 : 2 * n_o : 2]
    above = np.zeros_like(d_o)
    above[: (n - 1) // 2] = x[2 : n : 2][: (n - 1) // 2]
    x[odd] = (d_o - a_o[:, None] * below - c_o[:, None] * above) / b_o[:, None]
    return x


def quadratic_spline(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray | None:
    """Values at ``at`` of scipy's quadratic interpolating spline through ``(x, y)``.

    ``x`` strictly increasing with at least 3 points, ``y`` of shape (len(x),) or
    (len(x), curves), ``at`` inside ``[x[0], x[-1]]``. Returns an array of shape
    (len(at),) or (len(at), curves), or None when the collocation system is not diagonally
    dominant (then use ``scipy.interpolate.make_interp_spline(x, y, k=2)``).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    if n < 3:
        raise ValueError(f"a quadratic spline needs at least 3 points, got {n}")
    t = _knots(x)
    l, basis = _basis(t, x, n)
    # row i holds B[l-2], B[l-1], B[l] at x[i]; rows 1..n-2 have l = i + 1 except row 1 (l = 2),
    # which is the same columns; rows 0 and n-1 are the identity at the ends.
    inner = slice(1, n - 1)
    if np.any(l[inner] - 2 != np.arange(n)[inner] - 1):  # not columns i-1, i, i+1: not tridiagonal
        return None
    a = np.zeros(n)
    b = np.ones(n)
    c = np.zeros(n)
    a[inner], b[inner], c[inner] = basis[inner, 0], basis[inner, 1], basis[inner, 2]
    if np.any(np.abs(b[inner]) < np.abs(a[inner]) + np.abs(c[inner])):
        return None
    single = y.ndim == 1
    d = y[:, None] if single else y
    coef = _solve_tridiagonal(a, b, c, d)
    l_at, b_at = _basis(t, np.asarray(at, dtype=np.float64), n)
    values = (
        b_at[:, 0, None] * coef[l_at - 2] + b_at[:, 1, None] * coef[l_at - 1] + b_at[:, 2, None] * coef[l_at]
    )
    return values[:, 0] if single else values
