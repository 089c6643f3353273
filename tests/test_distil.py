"""Knowledge distillation (``sgmine-train fit --teacher MODEL.onnx``): soft targets and a student."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

GROUPS = (225, 227, 194, 62)


def tiny_member(seed: int, outputs: int = 3, sharpness: float = 1.0):
    """A small chain of the compact network's layer kinds ending in a softmax (its last kernel
    times ``sharpness``: confident, and so different answers for different curves)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((209, 1))
    x = layers.BatchNormalization()(inputs)
    x = layers.Conv1D(4, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling1D(4)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(8, activation="relu")(x)
    model = keras.Model(inputs, layers.Dense(outputs, activation="softmax")(x))
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * sharpness, bias])
    return model


def test_soft_targets_are_the_members_averaged_probabilities(tf, curves, tmp_path, monkeypatch):
    """The teacher's soft targets on the measured curves are the mean of its members' own outputs
    (not the ensemble's renormalised or calibrated ones), cached by file and curves."""
    import onnx

    from training.distil import cache_file, mix_targets, soft_targets, teacher_probabilities
    from training.ensemble import build_ensemble
    from training.export import keras_to_onnx

    monkeypatch.setenv("SGMINE_CACHE", str(tmp_path / "cache"))
    members = [tiny_member(1), tiny_member(2), tiny_member(3)]
    path = tmp_path / "teacher.onnx"
    onnx.save(keras_to_onnx(build_ensemble(members)), str(path))
    expected = np.mean([m.predict(curves, verbose=0) for m in members], axis=0)
    assert np.max(np.abs(members[0].predict(curves, verbose=0) - expected)) > 1e-3  # members do differ

    np.testing.assert_allclose(teacher_probabilities(path, curves, batch=2), expected, atol=1e-5)
    np.testing.assert_allclose(teacher_probabilities(path, curves[:, :, 0]), expected, atol=1e-5)
    assert not cache_file(path, curves).exists()
    first = soft_targets(path, curves)
    assert cache_file(path, curves).is_file()
    np.testing.assert_allclose(first, expected, atol=1e-5)
    np.save(cache_file(path, curves), np.full_like(first, 0.25))  # a second call reads the cache
    assert np.all(soft_targets(path, curves) == 0.25)
    assert cache_file(path, curves[:2]) != cache_file(path, curves)

    labels = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(mix_targets(labels, first, weight=0.25), 0.25 * first + 0.75 * labels, atol=1e-7)
    with pytest.raises(ValueError, match="gives 3 outputs per curve, the network has 4"):
        mix_targets(np.eye(3, 4, dtype=np.float32), first)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mix_targets(labels, first, weight=1.5)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, data_dir):
    """Simulated PDFs: Ni and Si from examples/data plus 9 synthetic crystals, 4 PDFs each."""
    pytest.importorskip("pyxtal")
    from training import structures
    from training.dataset import build_dataset

    out = tmp_path_factory.mktemp("data") / "sim"
    tasks = structures.cif_directory(data_dir) + structures.synthetic_crystals(9, list(GROUPS), seed=3)
    build_dataset(tasks, out, augment=4, seed=3, space_groups=GROUPS, workers=1, progress=False,
                  description="test: simulated PDFs of Ni, Si and 9 synthetic crystals")
    return out


def _divergence(teacher: np.ndarray, student: np.ndarray) -> float:
    """Mean KL(teacher || student) over the rows."""
    p = np.clip(teacher, 1e-7, 1)
    q = np.clip(student, 1e-7, 1)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def test_a_distilled_student_moves_towards_its_teacher(tf, simulated, tmp_path, monkeypatch):
    """Two students from the same start on the same rows: the one taught by the teacher (weight 1)
    ends closer to it than the one taught by the labels alone, history.json names the teacher, and
    a teacher of other classes (or, with a teacher, an --init-from run of another split) is refused
    before anything is written."""
    import onnx

    from sgmine.model import ModelInfo, attach_metadata
    from training.datafiles import read_dataset
    from training.distil import teacher_probabilities
    from training.ensemble import build_ensemble
    from training.export import keras_to_onnx
    from training.fit import FitConfig, fit
    from training.run import RunDir

    monkeypatch.setenv("SGMINE_CACHE", str(tmp_path / "cache"))
    data = read_dataset(simulated)
    n = len(data.classes)
    proto = keras_to_onnx(build_ensemble([tiny_member(11, n, 40.0), tiny_member(12, n, 40.0)]))
    info = ModelInfo(classes=tuple(data.classes), symbols=tuple(str(c) for c in data.classes),
                     model_version="test-teacher", training_data="random tiny members (tests only)", grid=data.grid)
    teacher = tmp_path / "teacher.onnx"
    onnx.save(attach_metadata(proto, info), str(teacher))

    base = dict(epochs=6, batch_size=4, verbose=0, architecture="compact", init_seed=4, dropout=0.0)
    plain = fit(data, tmp_path / "plain", FitConfig(**base), source=simulated)
    taught = fit(data, tmp_path / "taught", FitConfig(teacher=str(teacher), teacher_weight=1.0, **base),
                 source=simulated)
    run = RunDir(taught.run_dir)
    x = data.x[run.split(len(data)).train][:, :, None]
    target = teacher_probabilities(teacher, x)
    # each network as it trained (batch statistics of all the rows; no dropout): its moving statistics
    # after a few dozen steps say little
    plain_out = np.asarray(RunDir(plain.run_dir).load_keras()(x, training=True))
    taught_out = np.asarray(run.load_keras()(x, training=True))
    plain_gap, taught_gap = _divergence(target, plain_out), _divergence(target, taught_out)
    assert taught_gap < 0.5 * plain_gap, (taught_gap, plain_gap)
    same = [np.mean(out.argmax(axis=1) == target.argmax(axis=1)) for out in (plain_out, taught_out)]
    assert same[1] > same[0] + 0.2, same  # the teacher's own answer, row by row

    record = json.loads(run.history_file.read_text())
    assert record["teacher"]["members"] == 2 and record["teacher"]["weight"] == 1.0
    assert record["teacher"]["model_version"] == "test-teacher" and record["teacher"]["rows"] == len(x)
    assert record["config"]["teacher"] == str(teacher)

    other = tmp_path / "other.onnx"
    elsewhere = dataclasses.replace(info, classes=tuple(data.classes[:-1]) + (230,))
    onnx.save(attach_metadata(keras_to_onnx(build_ensemble([tiny_member(13, n)])), elsewhere), str(other))
    with pytest.raises(ValueError, match="its classes are"):
        fit(data, tmp_path / "refused", FitConfig(teacher=str(other), **base))
    assert not (tmp_path / "refused").exists()
    with pytest.raises(ValueError, match="its split of this dataset differs"):  # --init-from RUN is still checked
        fit(data, tmp_path / "split", FitConfig(teacher=str(teacher), init_from=str(plain.run_dir), seed=5, **base))
    with pytest.raises(ValueError, match="exported .onnx file"):
        FitConfig(teacher=str(tmp_path / "run"), **base)
