"""sgmine-train shrink: a model's weights stored in float16 or 8-bit integers, checked against the original."""

from __future__ import annotations

import numpy as np
import pytest

from sgmine.model import Model


@pytest.mark.parametrize("precision, suffix, factor", [("float16", "f16", 2), ("int8", "i8", 4)])
def test_shrunk_weights_score_like_the_original(template_model, tmp_path, precision, suffix, factor):
    """The nearest-template test model (templates: a 209 x 8 constant) stored smaller: each large
    weight takes 1/2 or 1/4 of its bytes, the metadata is kept, the scores move only a little."""
    import onnx
    from onnx import numpy_helper

    from training.shrink import STORAGE_KEY, check_curves, shrink_model

    out = tmp_path / f"small.{suffix}.onnx"
    result = shrink_model(template_model, out, precision=precision)
    big = [t for t in onnx.load(str(template_model)).graph.initializer if np.prod(t.dims) >= 1024]
    assert big, "the test model needs a weight large enough to shrink"
    stored = {t.name: t for t in onnx.load(str(out)).graph.initializer}
    for tensor in big:
        assert numpy_helper.to_array(stored[f"{tensor.name}__{suffix}"]).nbytes * factor == numpy_helper.to_array(tensor).nbytes
    small = Model(out)
    assert small.info.classes == Model(template_model).info.classes
    assert dict(small._session.get_modelmeta().custom_metadata_map)[STORAGE_KEY] == precision
    x = check_curves(209)
    np.testing.assert_allclose(small.predict_proba(x), Model(template_model).predict_proba(x), atol=result.max_difference + 1e-7)
    assert 0 < result.max_difference < (1e-3 if precision == "float16" else 2e-2)


def test_a_shrunk_file_that_moves_probabilities_too_far_is_not_written(template_model, tmp_path):
    from training.shrink import ShrinkError, shrink_model

    with pytest.raises(ShrinkError, match="move a probability by up to"):
        shrink_model(template_model, tmp_path / "small.onnx", precision="int8", tolerance=1e-9)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="statically quantised INT8"):
        shrink_model(template_model, tmp_path / "model.int8.onnx")


def test_a_shrunk_ensemble_reads_back_into_keras(tmp_path):
    """Warm start reads a float16 file like its float32 original (to the float16 rounding)."""
    pytest.importorskip("tf2onnx")
    from test_warm_start import tiny_network

    from training.ensemble import build_ensemble
    from training.export import keras_to_onnx, probe_curves
    from training.onnx_keras import load_member, member_probabilities
    from training.shrink import shrink_proto

    proto = keras_to_onnx(build_ensemble([tiny_network(1), tiny_network(2)]))
    small = shrink_proto(proto, "float16", min_elements=16)
    model = tiny_network(3)
    load_member(model, small, 1)
    x = probe_curves(209, n=16)[:, :, None]
    np.testing.assert_allclose(model.predict(x, verbose=0), member_probabilities(small, x, 1), atol=1e-5)
    assert np.max(np.abs(member_probabilities(small, x, 1) - member_probabilities(proto, x, 1))) < 1e-2
