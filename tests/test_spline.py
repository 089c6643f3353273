"""sgmine.spline against scipy: the quadratic spline the grid uses, without importing scipy."""

import numpy as np
import pytest
from scipy.interpolate import interp1d

from sgmine.spline import quadratic_spline


def _scipy(x, y, at):
    return interp1d(x, y, kind="quadratic", axis=0, assume_sorted=True)(at)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8, 31, 32, 33, 1000, 2853])
def test_matches_scipy_on_an_even_step(n):
    rng = np.random.default_rng(n)
    x = 1.48 + 0.01 * np.arange(n)
    y = rng.normal(size=(n, 3))
    at = np.linspace(x[0], x[-1], 209)
    got = quadratic_spline(x, y, at)
    np.testing.assert_allclose(got, _scipy(x, y, at), rtol=0, atol=1e-12 * np.abs(y).max())
    # one curve at a time gives the same as all together
    np.testing.assert_allclose(quadratic_spline(x, y[:, 1], at), got[:, 1], rtol=0, atol=1e-14)


def test_matches_scipy_at_the_data_points_and_the_ends():
    x = np.linspace(0.0, 30.0, 3001)
    y = np.sin(3 * x) * np.exp(-x / 10)
    np.testing.assert_allclose(quadratic_spline(x, y, x), y, atol=1e-12)  # it interpolates
    ends = np.array([x[0], x[1], x[-2], x[-1]])
    np.testing.assert_allclose(quadratic_spline(x, y, ends), _scipy(x, y, ends), atol=1e-13)


@pytest.mark.parametrize("seed", range(20))
def test_matches_scipy_on_uneven_steps_or_declines(seed):
    """Irregular r: either the same values as scipy, or None (not diagonally dominant)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 400))
    x = np.cumsum(rng.uniform(0.001, 1.0, n) ** rng.uniform(1, 4))
    y = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3)
    at = np.sort(rng.uniform(x[0], x[-1], 50))
    got = quadratic_spline(x, y, at)
    if got is not None:
        np.testing.assert_allclose(got, _scipy(x, y, at), rtol=1e-9, atol=1e-9 * np.abs(y).max())


def test_declines_a_system_it_cannot_solve_without_pivoting():
    x = np.array([0.0, 1.0, 1.001, 5.0, 5.002, 9.0])
    assert quadratic_spline(x, np.arange(6.0), np.array([2.0])) is None


def test_needs_three_points():
    with pytest.raises(ValueError, match="at least 3 points"):
        quadratic_spline(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0.5]))
