"""Resampling onto the model grid, checked against hand computations and the reference recipe."""

import numpy as np
import pytest
from scipy.interpolate import interp1d

from sgmine.gr import read_gr
from sgmine.grid import MIN_POINTS, Grid, GridError, normalise, resample


def test_default_grid_is_the_spacegroupmining_convention():
    grid = Grid()
    assert grid.r.shape == (209,)
    assert grid.r[0] == 1.5 and grid.r[-1] == 30.0
    np.testing.assert_allclose(np.diff(grid.r), 28.5 / 208)


def test_quadratic_curve_is_reproduced_exactly():
    # A quadratic spline through samples of a parabola is the parabola itself, so the
    # resampled values must equal the min-max normalised parabola on the grid points.
    r = np.arange(0.0, 40.0, 0.05)
    g = 0.02 * r**2 - 0.7 * r + 3.0
    grid = Grid()
    expected = 0.02 * grid.r**2 - 0.7 * grid.r + 3.0
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(resample(r, g, grid).values, expected, atol=1e-10)


def test_linear_interpolation_by_hand():
    # Grid 0, 1, ..., 8 on data points 0, 2, ..., 10 with values 0, 4, 2, 1, 0, 1: interpolated
    # by hand 0, 2, 4, 3, 2, 1.5, 1, .5, 0 -> min-max (divide by 4)
    grid = Grid(rmin=0.0, rmax=8.0, npoints=9, interpolation="linear")
    r = np.array([0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    g = np.array([0.0, 4.0, 2.0, 1.0, 0.0, 1.0])
    expected = np.array([0, 2, 4, 3, 2, 1.5, 1, 0.5, 0]) / 4
    np.testing.assert_allclose(resample(r, g, grid).values, expected)


def test_zero_fill_beyond_measured_range_is_before_normalisation():
    # Data only to 2 Å on a 0..4 grid: points at 3 and 4 are G = 0, which min-max maps with the rest.
    grid = Grid(rmin=0.0, rmax=4.0, npoints=5, interpolation="linear")
    r = np.linspace(0.0, 2.0, 9)
    g = 1.0 + r  # G = 1, 2, 3 at grid points 0, 1, 2; then zero at 3 and 4
    out = resample(r, g, grid)
    np.testing.assert_allclose(out.values, [1 / 3, 2 / 3, 1, 0, 0])
    assert out.r_max == pytest.approx(2.0)
    assert any("2 of 5 grid points set to zero" in w for w in out.warnings)


@pytest.mark.parametrize("name", ["Ni", "Si", "CdSe-nanoparticle"])
def test_matches_reference_recipe_on_measured_data(data_dir, name):
    # spacegroupMining: interp1d(r, G, kind='quadratic') on the whole curve, then min-max.
    curve = read_gr(data_dir / f"{name}.gr")
    grid = Grid()
    ref = interp1d(curve.r, curve.g, kind="quadratic")(grid.r)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    out = resample(curve.r, curve.g, grid)
    np.testing.assert_allclose(out.values, ref, atol=1e-9)
    assert out.warnings == []
    assert (out.r_min, out.r_max) == (1.5, 30.0)


def test_partial_coverage_warns_and_scores():
    r = np.linspace(0.0, 20.0, 2001)
    out = resample(r, np.sin(2 * r), Grid())
    assert out.values.min() == 0.0 and out.values.max() == 1.0
    assert out.r_max == pytest.approx(20.0)
    assert "cover 1.5–20 Å" in out.warnings[0]


def test_no_overlap_is_an_error():
    with pytest.raises(GridError, match="does not overlap"):
        resample(np.linspace(31, 60, 100), np.sin(np.linspace(31, 60, 100)), Grid())


def test_too_few_points_is_an_error():
    r = np.linspace(2.0, 3.0, MIN_POINTS - 1)
    with pytest.raises(GridError, match="only 4 measured points"):
        resample(r, np.sin(r), Grid())


def test_constant_curve_is_an_error():
    r = np.linspace(0, 40, 400)
    with pytest.raises(GridError, match="no variation"):
        resample(r, np.full_like(r, 0.3), Grid())


def test_non_finite_rows_are_dropped_with_a_warning():
    r = np.linspace(0, 40, 401)
    g = np.sin(r)
    g_bad = g.copy()
    g_bad[[10, 200]] = [np.nan, np.inf]
    out = resample(r, g_bad, Grid(interpolation="linear"))
    assert "ignored 2 rows with NaN" in out.warnings[0]
    assert np.isfinite(out.values).all()


def test_unsorted_and_repeated_r():
    r = np.linspace(0, 40, 401)
    g = np.cos(r)
    order = np.random.default_rng(0).permutation(r.size)
    np.testing.assert_allclose(resample(r[order], g[order], Grid()).values, resample(r, g, Grid()).values)
    out = resample(np.concatenate([r, r[:5]]), np.concatenate([g, g[:5]]), Grid())
    assert any("repeated r" in w for w in out.warnings)


def test_normalise_rows():
    x = np.array([[1.0, 3.0, 2.0], [0.0, -2.0, 2.0]])
    np.testing.assert_allclose(normalise(x), [[0, 1, 0.5], [0.5, 0, 1]])
    np.testing.assert_array_equal(normalise(x, "none"), x)


@pytest.mark.parametrize(
    "kwargs", [dict(rmin=3, rmax=2), dict(npoints=1), dict(interpolation="nearest"), dict(normalisation="z")]
)
def test_invalid_grid_settings(kwargs):
    with pytest.raises(ValueError):
        Grid(**kwargs)


def test_resample_many_matches_resample_one_by_one(data_dir):
    """Curves sharing r-points are interpolated together; the values are those of one-by-one
    resampling, errors stay in their places, and the others are unaffected."""
    from sgmine.gr import read_gr
    from sgmine.grid import GridError, resample, resample_many

    grid = Grid()
    ni, si = read_gr(data_dir / "Ni.gr"), read_gr(data_dir / "Si.gr")
    rng = np.random.default_rng(0)
    curves = [
        (ni.r, ni.g),
        (ni.r, ni.g + rng.normal(0, 0.01, ni.g.size)),  # same r as the first: one spline solve
        (si.r, si.g),
        (np.array([40.0, 41.0]), np.array([1.0, 2.0])),  # no overlap
        (ni.r, np.ones_like(ni.g)),  # flat
        (ni.r[ni.r < 20], ni.g[ni.r < 20]),  # partial coverage, a warning
        (si.r, si.g * 3),
    ]
    many = resample_many(curves, grid)
    assert len(many) == len(curves)
    for (r, g), result in zip(curves, many):
        try:
            one = resample(r, g, grid)
        except GridError as exc:
            assert isinstance(result, GridError) and str(result) == str(exc)
            continue
        np.testing.assert_allclose(result.values, one.values, rtol=0, atol=1e-12)
        assert result.warnings == one.warnings
        assert (result.r_min, result.r_max) == (one.r_min, one.r_max)
    assert "set to zero" in many[5].warnings[0]


def test_grid_round_trips_through_its_dict():
    grid = Grid(rmin=1.0, rmax=20.0, npoints=100, interpolation="linear")
    assert Grid.from_dict(grid.as_dict()) == grid
    assert Grid.from_dict(None) == Grid() and Grid.from_dict({}, npoints=50) == Grid(npoints=50)
    assert Grid.from_dict({"npoints": 30}, npoints=50).npoints == 30
