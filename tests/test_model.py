"""The ONNX model contract: metadata in, probabilities out, clear errors for bad model files."""

import numpy as np
import onnx
import pytest

from conftest import CLASSES, SYMBOLS
from onnx_builder import build_model
from sgmine.grid import Grid
from sgmine.model import Model, ModelError, ModelInfo, attach_metadata


def test_metadata_round_trip():
    info = ModelInfo(
        classes=(2, 225), symbols=("P-1", "Fm-3m"), grid=Grid(1.0, 20.0, 100, "cubic", "none"),
        model_version="v9", training_data="toy", metrics={"top1": 0.5}, temperature=1.7,
    )
    meta = info.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert ModelInfo.from_metadata(meta) == info


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        (dict(classes=(), symbols=()), "at least one class"),
        (dict(classes=(2, 3), symbols=("P-1",)), "2 classes but 1 symbols"),
        (dict(classes=(2, 2), symbols=("P-1", "P-1")), "repeat"),
        (dict(classes=(231,), symbols=("X",)), "1–230"),
    ],
)
def test_invalid_model_info(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        ModelInfo(**kwargs)


def test_missing_metadata_key_is_named():
    meta = ModelInfo(classes=(2,), symbols=("P-1",)).to_metadata()
    del meta["npoints"]
    with pytest.raises(ValueError, match="lacks npoints"):
        ModelInfo.from_metadata(meta)


@pytest.mark.parametrize("rank", [2, 3])
def test_model_scores_probabilities(tmp_path, rank):
    model = Model(build_model(tmp_path / "m.onnx", CLASSES, SYMBOLS, input_rank=rank, model_version="x1"))
    assert model.info.classes == tuple(CLASSES)
    assert model.info.model_version == "x1"
    x = np.random.default_rng(0).random((600, 209))
    probs = model.predict_proba(x, batch_size=256)
    assert probs.shape == (600, len(CLASSES))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # batching must not change the answer
    np.testing.assert_allclose(model.predict_proba(x, batch_size=7), probs, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(n, 209\)"):
        model.predict_proba(np.zeros((2, 100)))


def test_temperature_softens_probabilities(tmp_path):
    x = np.random.default_rng(0).random((20, 209))
    sharp = Model(build_model(tmp_path / "a.onnx", CLASSES, SYMBOLS)).predict_proba(x)
    soft = Model(build_model(tmp_path / "b.onnx", CLASSES, SYMBOLS, temperature=3.0)).predict_proba(x)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert (soft.max(axis=1) < sharp.max(axis=1)).all()
    np.testing.assert_array_equal(soft.argmax(axis=1), sharp.argmax(axis=1))


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Model(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="cannot load model"):
        Model(junk)


def test_model_without_sgmine_metadata(tmp_path):
    path = build_model(tmp_path / "m.onnx", CLASSES, SYMBOLS)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="not an sgmine model.*lacks classes"):
        Model(path)


def test_model_whose_input_does_not_match_its_grid(tmp_path):
    path = build_model(tmp_path / "m.onnx", CLASSES, SYMBOLS)
    proto = onnx.load(str(path))
    attach_metadata(proto, ModelInfo(tuple(CLASSES), tuple(SYMBOLS), grid=Grid(npoints=100)))
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="does not match its grid of 100 points"):
        Model(path)
