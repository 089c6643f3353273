"""The ONNX model contract: metadata in, probabilities out, clear errors for bad model files."""

import numpy as np
import onnx
import pytest
from conftest import CLASSES, SYMBOLS
from onnx import numpy_helper
from onnx_builder import build_model
from typer.testing import CliRunner

from sgmine.cli import app
from sgmine.grid import Grid
from sgmine.model import Model, ModelError, ModelInfo, apply_temperature, attach_metadata, none_of_these


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


def test_none_of_these_threshold_decides_in_domain():
    info = ModelInfo(classes=(2, 225), symbols=("P-1", "Fm-3m"), in_domain_threshold=0.3,
                     none_of_these=True, none_of_these_threshold=0.4)
    assert ModelInfo.from_metadata(info.to_metadata()) == info
    assert info.in_domain(0.9, 0.5) is False and info.in_domain(0.1, 0.3) is True
    assert info.in_domain(0.1) is False  # no none-of-these value given: the top-1 threshold
    probs = np.array([[0.5, 0.1], [0.2, 0.1], [0.9, 0.1]])  # none of these 0.4, 0.7, 0.0
    np.testing.assert_array_equal(info.in_domain_many(probs), [True, False, True])
    with pytest.raises(ValueError, match="none-of-these output"):
        ModelInfo(classes=(2,), symbols=("P-1",), none_of_these_threshold=0.4)


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


def _softmax(z, t=1.0):
    e = np.exp(z / t - (z / t).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_temperature_is_the_softmax_of_scaled_logits():
    z = np.random.default_rng(1).normal(0, 3, (50, 8))
    np.testing.assert_allclose(apply_temperature(_softmax(z), 0.6), _softmax(z, 0.6), atol=1e-12)
    assert np.all(none_of_these(_softmax(z)) == 0)


def test_temperature_keeps_the_none_of_these_remainder():
    """A model that shows 8 of its 9 softmax outputs (the 9th: none of these): temperature acts on
    all 9 and the class outputs still leave the scaled 9th as the remainder."""
    z = np.random.default_rng(2).normal(0, 3, (50, 9))
    shown = _softmax(z)[:, :8]
    for t in (0.5, 2.0):
        scaled = apply_temperature(shown, t, remainder=True)
        np.testing.assert_allclose(scaled, _softmax(z, t)[:, :8], atol=1e-10)
        np.testing.assert_allclose(1 - scaled.sum(axis=1), _softmax(z, t)[:, 8], atol=1e-10)


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


# Every way a model file can be unusable gives one clear line: ModelError from Python, exit 2
# from the CLI (issue: reliability).

def _edit(path, change):
    """Load the ONNX model at ``path``, let ``change(proto)`` alter it, save it back."""
    proto = onnx.load(str(path))
    change(proto)
    onnx.save(proto, str(path))
    return path


def _drop_metadata(proto):
    del proto.metadata_props[:]


def _wrong_grid(proto):
    attach_metadata(proto, ModelInfo(tuple(CLASSES), tuple(SYMBOLS), grid=Grid(npoints=100)))


def _five_channels(proto):
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 5


def _rank_four(proto):
    proto.graph.input[0].type.tensor_type.shape.dim.add().dim_value = 1


def _bad_metadata_value(proto):
    for entry in proto.metadata_props:
        if entry.key == "rmin":
            entry.value = "one and a half"


def _bad_model(tmp_path, kind):
    """A broken model file of the given kind, and the text its error must contain."""
    good = build_model(tmp_path / f"{kind}.onnx", CLASSES, SYMBOLS)
    if kind == "missing":
        good.unlink()
        return good, "does not exist"
    if kind == "directory":
        good.unlink()
        good.mkdir()
        return good, "is a directory"
    if kind == "empty":
        good.write_bytes(b"")
        return good, "cannot load model"
    if kind == "junk":
        good.write_bytes(b"this is not a protobuf")
        return good, "cannot load model"
    if kind == "truncated":
        good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return good, "cannot load model"
    edits = {
        "no_metadata": (_drop_metadata, "not an sgmine model: model metadata lacks classes"),
        "bad_metadata": (_bad_metadata_value, "not an sgmine model"),
        "wrong_grid": (_wrong_grid, "does not match its grid of 100 points"),
        "five_channels": (_five_channels, "has 5 channels"),
        "rank_four": (_rank_four, "does not match its grid"),
    }
    change, text = edits[kind]
    return _edit(good, change), text


MODEL_FAULTS = ["missing", "directory", "empty", "junk", "truncated", "no_metadata", "bad_metadata",
                "wrong_grid", "five_channels", "rank_four"]


@pytest.mark.parametrize("kind", MODEL_FAULTS)
def test_broken_model_raises_model_error(tmp_path, kind):
    path, text = _bad_model(tmp_path, kind)
    with pytest.raises(ModelError, match=text) as caught:
        Model(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", MODEL_FAULTS)
def test_broken_model_exits_2_with_one_line(tmp_path, kind, data_dir):
    path, text = _bad_model(tmp_path, kind)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["scan", str(data_dir / "Ni.gr"), "--model", str(path), "-o", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sgmine: error: ") and text in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_model_input_of_another_type(tmp_path):
    def as_double(proto):
        proto.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
        proto.graph.node.insert(0, onnx.helper.make_node("Cast", ["pdf"], ["pdf_f"], to=onnx.TensorProto.FLOAT))
        proto.graph.node[1].input[0] = "pdf_f"

    path = _edit(build_model(tmp_path / "m.onnx", CLASSES, SYMBOLS), as_double)
    with pytest.raises(ModelError, match=r"input is tensor\(double\); sgmine gives tensor\(float\)"):
        Model(path)


def test_model_that_fails_while_scoring(tmp_path, data_dir):
    """A graph that loads but cannot run on some batches: ModelError naming the file, not an
    onnxruntime exception."""

    def reshape_by_pairs(proto):
        for init in proto.graph.initializer:
            if init.name == "flat_shape":
                init.CopyFrom(numpy_helper.from_array(np.array([-1, 418], dtype=np.int64), "flat_shape"))
            if init.name == "W":
                weight = np.zeros((418, len(CLASSES)), np.float32)
                init.CopyFrom(numpy_helper.from_array(weight, "W"))

    path = _edit(build_model(tmp_path / "m.onnx", CLASSES, SYMBOLS), reshape_by_pairs)
    model = Model(path)
    assert model.predict_proba(np.zeros((2, 209))).shape == (1, len(CLASSES))  # 2 curves fit one row
    with pytest.raises(ModelError, match=f"model {path} failed to score a batch"):
        model.predict_proba(np.zeros((3, 209)))
    result = CliRunner().invoke(app, ["scan", str(data_dir / "Ni.gr"), "--model", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"sgmine: error: model {path} failed to score a batch")
    assert len(result.stderr.splitlines()) == 1
