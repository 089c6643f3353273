"""ONNX -> Keras: a network's weights read back from an exported file (``fit --init-from MODEL.onnx``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "sgmine" / "data" / "model.onnx"


def tiny_network(seed: int, filters: int = 4):
    """A small chain of the compact network's layer kinds, with BatchNormalization statistics
    that are not 0 and 1 (so that reading them back is really exercised)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((209, 1))
    x = layers.BatchNormalization()(inputs)
    x = layers.Conv1D(filters, 5, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(6, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(8, activation="relu")(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n) * rng.choice([-1, 1], n), rng.normal(0, 0.5, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.2, 3.0, n)])
    return model


def run_onnx(proto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_onnx_to_keras_to_onnx_gives_the_same_outputs(tf, curves):
    """Each member of a two-network ensemble file, read into a fresh network and exported again,
    scores the measured curves as the file's member does (to 1e-5)."""
    from training.ensemble import build_ensemble
    from training.export import keras_to_onnx
    from training.onnx_keras import load_member, member_outputs, member_probabilities

    members = [tiny_network(1), tiny_network(2)]
    proto = keras_to_onnx(build_ensemble(members))
    assert len(member_outputs(proto.graph)) == 2
    for k, original in enumerate(members):
        expected = original.predict(curves, verbose=0)
        np.testing.assert_allclose(member_probabilities(proto, curves, k), expected, atol=1e-5)
        fresh = tiny_network(10 + k)
        assert np.max(np.abs(fresh.predict(curves, verbose=0) - expected)) > 1e-3  # other weights before
        load_member(fresh, proto, k)
        np.testing.assert_allclose(fresh.predict(curves, verbose=0), expected, atol=1e-5)
        np.testing.assert_allclose(run_onnx(keras_to_onnx(fresh), curves), member_probabilities(proto, curves, k),
                                   atol=1e-5)


def test_a_file_that_does_not_fit_is_refused(tf):
    from training.ensemble import build_ensemble
    from training.export import keras_to_onnx
    from training.onnx_keras import OnnxWeightsError, load_member

    proto = keras_to_onnx(build_ensemble([tiny_network(1), tiny_network(2)]))
    with pytest.raises(OnnxWeightsError, match="holds 2 networks; choose one with --member"):
        load_member(tiny_network(3), proto)
    with pytest.raises(OnnxWeightsError, match="member 2 does not exist"):
        load_member(tiny_network(3), proto, 2)
    with pytest.raises(OnnxWeightsError, match=r"kernel of shape \(5, 1, 5\), the file's \(5, 1, 4\)"):
        load_member(tiny_network(3, filters=5), proto, 0)


def test_rebased_batch_norms_keep_the_outputs_and_take_the_data_statistics(tf, curves):
    from training.export import keras_to_onnx
    from training.onnx_keras import load_member, rebase_batch_norms

    original = tiny_network(4)
    model = tiny_network(5)
    load_member(model, keras_to_onnx(original))
    rng = np.random.default_rng(0)
    x = (curves[rng.integers(0, 3, 64)] * rng.uniform(0.8, 1.2, (64, 1, 1))).astype(np.float32)
    rebase_batch_norms(model, x)
    np.testing.assert_allclose(model.predict(curves, verbose=0), original.predict(curves, verbose=0), atol=1e-5)
    first = model.layers[1]
    np.testing.assert_allclose(first.moving_mean.numpy(), [x.mean()], rtol=1e-4)
    np.testing.assert_allclose(first.moving_variance.numpy(), [x.var()], rtol=1e-3)


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped model")
def test_the_shipped_models_first_member_reads_back(tf, curves):
    """Member 0 of the shipped ensemble (the compact network with its "none of these" output) read
    into a new compact network, and exported again, scores the measured curves as in the file."""
    from training.compact import build_model
    from training.export import keras_to_onnx
    from training.onnx_keras import file_info, member_probabilities, read_onnx, warm_start

    proto = read_onnx(SHIPPED)
    model = build_model(len(file_info(proto).classes) + 1)
    assert warm_start(model, SHIPPED, curves, member=0) <= 1e-5
    np.testing.assert_allclose(run_onnx(keras_to_onnx(model), curves), member_probabilities(proto, curves, 0),
                               atol=1e-5)
