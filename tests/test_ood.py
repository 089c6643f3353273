"""The out-of-class inputs used to check (and train) the in-domain flag."""

import numpy as np
import pytest

from sgmine.grid import Grid
from training.ood import amorphous_curves, read_curves, two_phase_mixtures


def test_mixtures_mix_two_different_groups_and_stay_normalised():
    rng = np.random.default_rng(0)
    x = rng.random((6, 209)).astype(np.float32)
    y = np.array([225, 225, 225, 14, 14, 14])
    mixed = two_phase_mixtures(x, y, 50, seed=1)
    assert mixed.shape == (50, 209)
    assert np.allclose(mixed.min(axis=1), 0) and np.allclose(mixed.max(axis=1), 1)
    for row in mixed:  # never a rescaled copy of a single input curve
        assert min(np.abs(row - (xi - xi.min()) / np.ptp(xi)).max() for xi in x) > 1e-3
    with pytest.raises(ValueError, match="two space groups"):
        two_phase_mixtures(x, np.full(6, 225), 5)


def test_amorphous_curves_have_no_long_range_order():
    pytest.importorskip("diffpy.structure")
    grid = Grid()
    x = amorphous_curves(2, seed=0, grid=grid)
    assert x.shape == (2, grid.npoints) and np.isfinite(x).all()
    tail = x[:, grid.r > 22]
    assert np.ptp(tail, axis=1).max() < 0.1 * np.ptp(x, axis=1).min()  # flat beyond the envelope


def test_read_curves_uses_the_runtime_reader(data_dir):
    x = read_curves([data_dir / "Ni.gr", data_dir / "Si.gr"])
    assert x.shape == (2, 209) and np.allclose(x.max(axis=1), 1)
