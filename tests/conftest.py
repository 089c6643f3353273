"""Shared fixtures: the real measured data shipped in examples/data, and small ONNX models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_builder import build_model

from sgmine.gr import read_gr
from sgmine.grid import Grid, resample

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"

# The reference's eight classes with their symbols, deliberately not in ascending order so
# that a test notices if anything assumes the order instead of reading it from the model.
CLASSES = [225, 2, 14, 15, 62, 139, 194, 227]
SYMBOLS = ["Fm-3m", "P-1", "P2_1/c", "C2/c", "Pnma", "I4/mmm", "P6_3/mmc", "Fd-3m"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def template_model(tmp_path_factory) -> Path:
    """A nearest-template model whose Fm-3m template is the measured Ni curve and whose Fd-3m
    template is the measured Si curve; the other classes get smooth decoy curves."""
    grid = Grid()
    ni = resample(*_rg(DATA / "Ni.gr"), grid).values
    si = resample(*_rg(DATA / "Si.gr"), grid).values
    rng = np.random.default_rng(1)
    templates = []
    for sg in CLASSES:
        if sg == 225:
            templates.append(ni)
        elif sg == 227:
            templates.append(si)
        else:
            t = np.cumsum(rng.normal(size=grid.npoints))
            templates.append((t - t.min()) / (t.max() - t.min()))
    path = tmp_path_factory.mktemp("models") / "template.onnx"
    return build_model(
        path, CLASSES, SYMBOLS, templates=np.array(templates), sharpness=0.5,
        model_version="test-template", training_data="measured Ni and Si templates (tests only)",
    )


@pytest.fixture(scope="module")
def curves(data_dir) -> np.ndarray:
    """The measured examples on the model grid, as the network reads them: (3, 209, 1)."""
    rows = []
    for name in ("Ni.gr", "Si.gr", "CdSe-nanoparticle.gr"):
        curve = read_gr(data_dir / name)
        rows.append(resample(curve.r, curve.g, Grid()).values)
    return np.asarray(rows, np.float32)[:, :, None]


def _rg(path: Path):
    curve = read_gr(path)
    return curve.r, curve.g


@pytest.fixture(scope="module")
def tf():
    """TensorFlow (and tf2onnx) for the training tests, on two threads; skipped without them."""
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from training.fit import configure_threads

    configure_threads(2)
    return tf
