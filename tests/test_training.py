"""Training: the recipe's pieces, then a tiny end-to-end run on simulated PDFs.

dataset (simulated PDFs of Ni, Si and synthetic PyXtal crystals) -> fit (2 epochs) -> evaluate
-> export to ONNX -> the runtime scores it, and ONNX matches Keras. Kept small for 2 CPU cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.fit import FitConfig, class_weights, learning_rate, one_hot
from training.metrics import score_report, top_k_accuracy
from training.run import split_indices

GROUPS = (194, 225, 227)


# --------------------------------------------------------------------------- recipe (no TensorFlow)


@pytest.mark.parametrize(
    "epoch, rate", [(0, 5e-4), (39, 5e-4), (40, 5e-5), (59, 5e-5), (60, 5e-6), (99, 5e-6)]
)
def test_learning_rate_steps(epoch, rate):
    assert learning_rate(epoch) == rate
    assert learning_rate(epoch, 1.0) == rate  # Keras passes the current rate; it does not matter


def test_class_weights_are_total_over_count():
    weights = class_weights({2: 10, 14: 30, 225: 60}, (2, 14, 225))
    assert weights == {0: 10.0, 1: 100 / 30, 2: 100 / 60}
    # counted from labels gives the same, and the order follows ``classes``
    labels = np.array([225] * 60 + [2] * 10 + [14] * 30)
    assert class_weights(labels, (2, 14, 225)) == weights
    assert class_weights({2: 10, 14: 30, 225: 60}, (225, 2, 14))[0] == pytest.approx(100 / 60)
    # a class with no rows never occurs, so its weight is irrelevant: 0, not a division by zero
    assert class_weights({2: 5, 14: 0}, (2, 14)) == {0: 1.0, 1: 0.0}


def test_class_weighting_sqrt_and_none():
    counts = {2: 10, 14: 40, 225: 50}
    assert class_weights(counts, (2, 14, 225), weighting="sqrt") == pytest.approx({0: 10**0.5, 1: 2.5**0.5, 2: 2**0.5})
    assert class_weights(counts, (2, 14, 225), weighting="none") == {0: 1.0, 1: 1.0, 2: 1.0}
    with pytest.raises(ValueError, match="class weighting"):
        class_weights(counts, weighting="inverse")
    with pytest.raises(ValueError, match="class weighting"):
        FitConfig(class_weighting="inverse")


def test_dropout_is_a_compact_network_setting(tf):
    from training.fit import build_architecture

    def rates(model):
        return [layer.rate for layer in model.layers if layer.__class__.__name__ == "Dropout"]

    assert rates(build_architecture("compact", 45, 209)) == [0.5, 0.5]
    assert rates(build_architecture("compact", 45, 209, dropout=0.2)) == [0.2, 0.2]
    assert FitConfig(architecture="compact", dropout=0.2).dropout == 0.2
    with pytest.raises(ValueError, match="reference CNN keeps its own dropout"):
        FitConfig(dropout=0.2)
    with pytest.raises(ValueError, match="dropout must be in"):
        FitConfig(architecture="compact", dropout=1.0)


def test_width_is_a_compact_network_setting(tf):
    from training.fit import build_architecture

    def shapes(model):
        return [layer.kernel.shape[-1] for layer in model.layers if hasattr(layer, "kernel")]

    assert shapes(build_architecture("compact", 45, 209)) == [32, 64, 128, 128, 256, 45]
    assert shapes(build_architecture("compact", 45, 209, width=2)) == [64, 128, 256, 256, 512, 45]
    assert FitConfig(architecture="compact", width=2).width == 2
    with pytest.raises(ValueError, match="reference CNN keeps its own width"):
        FitConfig(width=2)
    with pytest.raises(ValueError, match="width must be at least 1"):
        FitConfig(architecture="compact", width=0)


def test_one_hot_follows_the_class_order():
    y = one_hot(np.array([14, 2, 227]), (227, 2, 14))
    np.testing.assert_array_equal(y, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="space group 15 is not among the classes"):
        one_hot(np.array([15]), (2, 14))


def test_split_is_deterministic_and_stratified():
    y = np.repeat([2, 14, 15, 225], [50, 100, 30, 20])
    train, test = split_indices(y, seed=7)
    again_train, again_test = split_indices(y, seed=7)
    np.testing.assert_array_equal(test, again_test)
    np.testing.assert_array_equal(train, again_train)
    assert not np.array_equal(test, split_indices(y, seed=8)[1])
    assert len(test) == 40 and len(train) == 160 and not set(train) & set(test)
    # every class keeps its share (stratified)
    for group, n in zip([2, 14, 15, 225], [50, 100, 30, 20]):
        assert int(np.sum(y[test] == group)) == n // 5


def test_split_by_structure_keeps_variants_together():
    rng = np.random.default_rng(0)
    structure = np.repeat(np.arange(60), 5)  # 60 structures, 5 augmented PDFs each
    y = np.repeat(rng.choice([2, 14, 225], 60), 5)
    train, test = split_indices(y, structure, test_size=0.2, seed=1)
    assert not set(structure[train]) & set(structure[test])
    assert len(train) + len(test) == len(y)
    assert 0.1 < len(test) / len(y) < 0.3
    np.testing.assert_array_equal(test, split_indices(y, structure, test_size=0.2, seed=1)[1])
    with pytest.raises(ValueError, match="cannot split 3 structures"):
        split_indices(y[:15], structure[:15])


def test_top_k_and_metrics():
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.1, 0.7], [0.1, 0.5, 0.4], [0.5, 0.1, 0.4]])
    y = np.array([2, 14, 225, 225])  # predicted: 2, 225, 14, 2
    assert top_k_accuracy(np.array([0, 1, 2, 2]), proba, 1) == 0.25
    assert top_k_accuracy(np.array([0, 1, 2, 2]), proba, 2) == 0.75
    m = score_report(y, proba, (2, 14, 225))
    assert m["top1_accuracy"] == 0.25 and m["top2_accuracy"] == 0.75 and m["top3_accuracy"] == 1.0
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [1, 1, 0]]
    assert m["per_class"]["2"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["cross_entropy"] == pytest.approx(-np.mean(np.log([0.6, 0.1, 0.4, 0.4])))


def test_symbols_come_from_spglib():
    from training.symbols import hm_symbols

    assert hm_symbols((2, 14, 15, 62, 139, 194, 225, 227)) == (
        "P-1", "P2_1/c", "C2/c", "Pnma", "I4/mmm", "P6_3/mmc", "Fm-3m", "Fd-3m",
    )
    with pytest.raises(ValueError):
        hm_symbols((231,))


def test_more_rows_keep_held_out_structures_out_of_training():
    """fit --more: extra rows of the model's classes join training unless their split group is
    in the validation or test part; other groups and held-out structures are dropped."""
    import numpy as np

    from training.datafiles import Dataset
    from training.fit import more_rows
    from training.run import Split

    data = Dataset(x=np.zeros((6, 4), np.float32), y=np.array([225, 225, 227, 227, 225, 227]),
                   groups=np.array(["Ni|225", "Cu|225", "Si|227", "Ge|227", "Al|225", "C|227"]), classes=(225, 227))
    split = Split(train=np.array([0, 2, 4]), validation=np.array([1]), test=np.array([3, 5]))
    more = Dataset(x=np.arange(24, dtype=np.float32).reshape(6, 4), y=np.array([225, 225, 227, 227, 194, 225]),
                   groups=np.array(["Ni|225", "Cu|225", "Ge|227", "Si|227", "Mg|194", "Pt|225"]), classes=(194, 225, 227))
    x, y, dropped = more_rows(more, data, split)
    assert y.tolist() == [225, 227, 225]  # Ni (train), Si (train), Pt (a structure the dataset lacks)
    assert x[:, 0].tolist() == [0.0, 12.0, 20.0]
    assert dropped == 2  # Cu (validation), Ge (test); Mg is not a class
    with pytest.raises(ValueError, match="split groups"):
        more_rows(Dataset(x=more.x, y=more.y, groups=None, classes=more.classes), data, split)
    with pytest.raises(ValueError, match="points"):
        more_rows(Dataset(x=more.x[:, :3], y=more.y, groups=more.groups, classes=more.classes), data, split)
    with pytest.raises(ValueError, match="no --more row"):
        more_rows(Dataset(x=more.x[1:2], y=more.y[1:2], groups=more.groups[1:2], classes=more.classes), data, split)

    # two --more datasets are joined first: their split groups travel with their rows
    from training.fit import _joined

    first = Dataset(x=more.x[:3], y=more.y[:3], groups=more.groups[:3], classes=(225, 227), info={"description": "variants"})
    second = Dataset(x=more.x[3:], y=more.y[3:], groups=more.groups[3:], classes=(194, 225, 227),
                     info={"description": "synthetic"})
    joined = _joined([first, second])
    assert joined.description == "variants; synthetic" and joined.classes == (194, 225, 227)
    x2, y2, dropped2 = more_rows(joined, data, split)
    assert np.array_equal(x2, x) and y2.tolist() == y.tolist() and dropped2 == dropped


# --------------------------------------------------------------------------- with TensorFlow


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, data_dir):
    """60 simulated PDFs: Ni and Si from examples/data plus 13 synthetic crystals, 4 PDFs each."""
    pytest.importorskip("pyxtal")
    from training import structures
    from training.dataset import build_dataset

    out = tmp_path_factory.mktemp("data") / "sim"
    tasks = structures.cif_directory(data_dir) + structures.synthetic_crystals(13, list(GROUPS), seed=3)
    build_dataset(tasks, out, augment=4, seed=3, space_groups=GROUPS, workers=1, progress=False,
                  description="test: simulated PDFs of Ni, Si and 13 synthetic crystals")
    return out


@pytest.fixture(scope="module")
def run(tf, simulated, tmp_path_factory):
    """A 2-epoch run of the CNN on the simulated data."""
    from training.datafiles import read_dataset
    from training.fit import FitConfig, fit

    data = read_dataset(simulated)
    run_dir = tmp_path_factory.mktemp("run")
    result = fit(data, run_dir, FitConfig(epochs=2, batch_size=16, verbose=0), source=simulated)
    return result


def test_model_is_the_reference_architecture(tf):
    from training.cnn import build_model

    model = build_model(8)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "BatchNormalization", "Conv1D", "BatchNormalization", "Conv1D", "BatchNormalization",
        "MaxPooling1D", "Dropout", "Flatten", "Dense", "BatchNormalization", "Dropout", "Dense",
    ]
    conv1, conv2 = (layer for layer in model.layers if type(layer).__name__ == "Conv1D")
    assert (conv1.filters, conv1.kernel_size, conv1.padding) == (256, (32,), "same")
    assert (conv2.filters, conv2.kernel_size, conv2.padding) == (64, (32,), "same")
    first_bn = model.layers[1]
    assert first_bn.epsilon == 1e-6 and first_bn.momentum == 0.9
    for layer in model.layers:
        if type(layer).__name__ in ("Conv1D", "Dense"):
            assert layer.kernel_regularizer.get_config()["l2"] == pytest.approx(1e-5)
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert model.layers[-4].units == 128
    assert tuple(model.input_shape) == (None, 209, 1) and tuple(model.output_shape) == (None, 8)
    # the paper's 45 groups work too
    out = build_model(45)(np.random.default_rng(0).random((3, 209, 1), dtype=np.float32))
    assert out.shape == (3, 45)
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)


def test_fit_writes_the_run(run, simulated):
    from training.datafiles import read_dataset

    files = {p.name for p in run.run_dir.iterdir()}
    assert {"model.keras", "history.json", "split.npz", "config.json", "checkpoints"} <= files
    record = json.loads((run.run_dir / "history.json").read_text())
    assert record["epochs_run"] == 2 and len(record["history"]["loss"]) == 2
    assert record["history"]["learning_rate"] == [5e-4, 5e-4]
    assert record["classes"] == list(GROUPS)
    assert record["split"]["by_structure"] is True
    data = read_dataset(simulated)
    counts = data.class_counts()
    total = sum(counts.values())
    assert record["class_weights"] == {str(g): pytest.approx(total / counts[g]) for g in GROUPS}
    # the split is by structure: no structure on both sides
    with np.load(run.run_dir / "split.npz") as split:
        parts = [set(data.groups[split[k]]) for k in ("train", "validation", "test")]
    assert not (parts[0] & parts[2]) and not (parts[1] & parts[2]) and not (parts[0] & parts[1])


def test_resume_continues_where_it_stopped(tf, simulated, tmp_path):
    from training.datafiles import read_dataset
    from training.fit import FitConfig, fit

    data = read_dataset(simulated)
    fit(data, tmp_path, FitConfig(epochs=1, batch_size=32, verbose=0))
    first_split = np.load(tmp_path / "split.npz")["test"].copy()
    result = fit(data, tmp_path, FitConfig(epochs=2, batch_size=32, verbose=0), resume=True)
    assert result.epochs_run == 2
    record = json.loads((tmp_path / "history.json").read_text())
    assert len(record["history"]["loss"]) == 2
    np.testing.assert_array_equal(np.load(tmp_path / "split.npz")["test"], first_split)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        fit(data, tmp_path / "new", FitConfig(epochs=1), resume=True)


def test_evaluate_writes_report_and_plots(run, simulated):
    from training.datafiles import read_dataset
    from training.evaluate import evaluate_run

    report = evaluate_run(run.run_dir, read_dataset(simulated))
    folder = run.run_dir / "report"
    for name in ("training_curves.png", "confusion_matrix.png", "class_proportions.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["symbols"] == ["P6_3/mmc", "Fm-3m", "Fd-3m"]
    assert 0 <= report["top1_accuracy"] <= report["top2_accuracy"] <= report["top3_accuracy"] == 1.0
    assert sum(map(sum, report["confusion_matrix"])) == report["n_test"] > 0
    assert np.isfinite(report["test_loss"])
    assert report["baseline"]["n_test"] == report["n_test"]  # same test rows for the baseline
    assert "logistic regression" in (folder / "report.md").read_text()


def test_export_matches_keras_and_runs_in_the_runtime(run, simulated, tmp_path):
    import keras

    from sgmine.model import Model
    from training.datafiles import read_dataset
    from training.export import export_model

    data = read_dataset(simulated)
    out = tmp_path / "model.onnx"
    result = export_model(run.model_path, out, data=data, model_version="test-1")
    assert result.max_difference <= 1e-4 and "test curves" in result.checked_on

    scorer = Model(out)
    assert scorer.info.classes == GROUPS
    assert scorer.info.symbols == ("P6_3/mmc", "Fm-3m", "Fd-3m")
    assert scorer.info.model_version == "test-1"
    assert scorer.info.training_data.startswith("test: simulated PDFs")
    assert scorer.grid == data.grid
    expected = keras.saving.load_model(run.model_path).predict(data.x[:, :, None], verbose=0)
    np.testing.assert_allclose(scorer.predict_proba(data.x), expected, atol=1e-4)


@pytest.mark.parametrize("converter", ["direct", "tf2onnx"])
def test_export_refuses_when_onnx_differs(run, simulated, tmp_path, monkeypatch, converter):
    """Swap the converted graph for one with perturbed weights: parity must catch it."""
    import keras

    from training import export as export_module
    from training.datafiles import read_dataset

    convert = export_module.convert

    def perturbed(model, how):
        other = keras.models.clone_model(model)
        other.set_weights([w + 0.05 for w in model.get_weights()])
        return convert(other, how)

    monkeypatch.setattr(export_module, "convert", perturbed)
    out = tmp_path / "model.onnx"
    with pytest.raises(export_module.ExportError, match="differ by up to"):
        export_module.export_model(run.model_path, out, data=read_dataset(simulated), converter=converter)
    assert not out.exists() and not list(tmp_path.iterdir())


def _with_batch_norm_statistics(model, seed: int, negative_scale: bool = False):
    """Give every BatchNormalization layer non-trivial statistics (a fresh model has 0/1),
    so that folding them into neighbouring layers is really exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            gamma = rng.uniform(0.5, 2.0, n)
            if negative_scale:  # not foldable into the layer before (it does not commute with ReLU)
                gamma[::3] *= -1
            layer.set_weights([gamma, rng.normal(0, 0.5, n), rng.normal(0, 0.3, n), rng.uniform(0.2, 3.0, n)])
    return model


@pytest.mark.parametrize("negative_scale", [False, True])
def test_direct_graph_matches_keras_and_tf2onnx(tf, negative_scale):
    """The hand-laid ONNX graph computes what Keras and the tf2onnx graph compute: with negative
    BatchNormalization scales (folded elsewhere, or not at all before max pooling) and without."""
    import keras
    import onnxruntime as ort

    from training.cnn import build_model
    from training.export import convert, probe_curves

    keras.utils.set_random_seed(5)
    model = _with_batch_norm_statistics(build_model(8), seed=5, negative_scale=negative_scale)
    x = probe_curves(209, n=64)[:, :, None]
    expected = model.predict(x, verbose=0)
    outputs = {}
    for how in ("direct", "tf2onnx"):
        proto, used = convert(model, how)
        assert used == how
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs[how] = session.run(None, {"pdf": x})[0]
        np.testing.assert_allclose(outputs[how], expected, atol=2e-5)
    ops = [node.op_type for node in convert(model, "direct")[0].graph.node]
    # the input BatchNormalization is always a Mul; the one before pooling only when not foldable
    assert ops.count("Mul") == (2 if negative_scale else 1)
    assert {"Gather", "MatMul", "Conv", "MaxPool", "Gemm", "Softmax"} <= set(ops)
    assert "Transpose" not in ops  # the flatten permutation lives in the Dense weights


def test_direct_graph_declines_other_architectures(tf):
    import keras

    from training.export import ExportError, convert
    from training.onnx_cnn import cnn_to_onnx

    inputs = keras.Input((209, 1))
    x = keras.layers.Conv1D(8, 5, padding="valid", activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    other = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert cnn_to_onnx(other) is None
    with pytest.raises(ExportError, match="not the reference CNN"):
        convert(other, "direct")
    assert convert(other, "auto")[1] == "tf2onnx"
    with pytest.raises(ValueError, match="unknown converter"):
        convert(other, "fast")


def test_import_an_h5_model_with_its_classes(run, tmp_path):
    import keras

    from sgmine.model import Model
    from training.export import ExportError, export_model

    h5 = tmp_path / "published.h5"
    keras.saving.load_model(run.model_path).save(h5)
    with pytest.raises(ExportError, match="give its class order with --classes"):
        export_model(h5, tmp_path / "a.onnx")
    with pytest.raises(ExportError, match="3 outputs but 2 classes"):
        export_model(h5, tmp_path / "a.onnx", classes=(225, 227))
    result = export_model(h5, tmp_path / "a.onnx", classes=(62, 139, 2))
    assert "probe curves" in result.checked_on and result.max_difference <= 1e-4
    assert Model(tmp_path / "a.onnx").info.symbols == ("Pnma", "I4/mmm", "P-1")


def test_cli_end_to_end(run, simulated, tmp_path, data_dir):
    """sgmine-train export (finding the data from the run) then sgmine scan --model."""
    from typer.testing import CliRunner

    from sgmine.cli import app as sgmine_app
    from training.cli import app

    runner = CliRunner()
    out = tmp_path / "model.onnx"
    exported = runner.invoke(app, ["export", str(run.model_path), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert "ONNX matches Keras" in exported.output and out.is_file()

    scanned = runner.invoke(sgmine_app, ["scan", str(data_dir / "Ni.gr"), "--model", str(out), "-k", "2"])
    assert scanned.exit_code == 0, scanned.output
    header, row = scanned.output.strip().splitlines()[-2:]
    assert header.startswith("file,status,sg_1")
    cells = row.split(",")
    assert cells[1] == "ok" and int(cells[2]) in GROUPS

    missing = runner.invoke(app, ["evaluate", str(tmp_path), str(simulated)])
    assert missing.exit_code == 1 and "has no model.keras" in missing.output


def test_outlier_exposure_and_calibration_reach_the_model_file(tf, simulated, tmp_path):
    """fit --outliers adds uniform-target rows; calibrate fits T and the threshold on validation
    rows and checks out-of-class sets; export writes both into the ONNX metadata."""
    import json

    from sgmine.model import Model
    from training import structures
    from training.calibrate import calibrate
    from training.datafiles import read_dataset
    from training.dataset import build_dataset
    from training.export import export_model
    from training.fit import FitConfig, fit

    data = read_dataset(simulated)
    others = tmp_path / "others"
    build_dataset(structures.prototype_crystals(3, ["bcc", "simple-cubic"]), others, augment=2,
                  space_groups=None, workers=1, progress=False)
    run_dir = tmp_path / "run"
    result = fit(data, run_dir, FitConfig(epochs=1, batch_size=16, verbose=0), source=simulated,
                 outliers=read_dataset(others))
    record = json.loads((run_dir / "history.json").read_text())
    assert record["outlier_exposure"] == {"rows": 12 + 6, "weight": 0.5, "target": "uniform"}  # + half as many mixtures

    report = calibrate(run_dir, data, [others], flag_rate=0.1, mixtures=20, amorphous=3)
    assert report["temperature"] > 0 and 0 <= report["in_domain_threshold"] <= 1
    assert {k.split(" (")[0] for k in report["out_of_class"]} == {
        "other space groups", "two-phase mixtures", "amorphous packings"}
    assert all(0 <= v["flagged"] <= 1 and v["n"] > 0 for v in report["out_of_class"].values())
    assert (run_dir / "report" / "calibration.png").stat().st_size > 1000

    exported = export_model(result.model_path, tmp_path / "m.onnx", data=data)
    info = Model(exported.path).info
    assert info.temperature == pytest.approx(report["temperature"])
    assert info.in_domain_threshold == pytest.approx(report["in_domain_threshold"])


def test_other_output_is_left_as_the_remainder_through_calibration_and_export(tf, simulated, tmp_path, data_dir):
    """fit --outlier-target other trains one more output for the outlier rows; model.keras shows
    the class outputs only (summing to less than 1), and calibrate, export and the runtime keep
    the remainder as the probability of none of these."""
    import json

    import numpy as np

    from sgmine.model import Model, none_of_these
    from training import structures
    from training.calibrate import calibrate
    from training.datafiles import read_dataset
    from training.dataset import build_dataset
    from training.export import export_model
    from training.fit import FitConfig, fit
    from training.run import RunDir

    data = read_dataset(simulated)
    others = tmp_path / "others"
    build_dataset(structures.prototype_crystals(3, ["bcc", "simple-cubic"]), others, augment=2,
                  space_groups=None, workers=1, progress=False)
    config = FitConfig(epochs=2, batch_size=16, verbose=0, architecture="compact", outlier_target="other")
    with pytest.raises(ValueError, match="needs outlier rows"):
        fit(data, tmp_path / "none", config, source=simulated)
    # --more with the dataset itself: its training rows again, its held-out rows dropped
    result = fit(data, tmp_path / "run", config, source=simulated, outliers=read_dataset(others), more=data)
    record = json.loads((tmp_path / "run" / "history.json").read_text())
    assert record["outlier_exposure"]["target"] == "other"
    assert record["more"] == {"rows": record["split"]["train"],
                              "dropped_held_out": record["split"]["validation"] + record["split"]["test"],
                              "description": data.description}

    keras_model = RunDir(result.run_dir).load_keras()
    assert keras_model.outputs[0].shape[-1] == len(data.classes)
    p = keras_model.predict(data.x[:32, :, None], verbose=0)
    assert p.min() >= 0 and np.all(p.sum(axis=1) < 1) and np.all(p.sum(axis=1) > 0)

    report = calibrate(result.run_dir, data, [others], flag_rate=0.1, mixtures=10, amorphous=2)
    assert 0 <= report["none_of_these_threshold"] <= 1
    exported = export_model(result.model_path, tmp_path / "m.onnx", data=data)
    model = Model(exported.path)
    assert model.info.none_of_these
    assert model.info.none_of_these_threshold == pytest.approx(report["none_of_these_threshold"])
    probs = model.predict_proba(data.x[:32])
    assert np.all(none_of_these(probs) > 0) and np.all(probs.sum(axis=1) < 1)

    from sgmine.scan import predict

    (p,) = predict([data_dir / "Ni.gr"], top_k=len(data.classes), model=model)
    assert p.ok, p.message
    assert 0 < p.none_of_these < 1
    assert p.none_of_these == pytest.approx(1 - sum(c.probability for c in p.candidates), abs=1e-6)
    assert p.in_domain is (p.none_of_these <= model.info.none_of_these_threshold)


def test_compact_members_average_into_an_ensemble_run(tf, simulated, tmp_path):
    """Two compact runs on one split (different --init-seed) average into a run the later steps use;
    a run on another split is refused."""
    import numpy as np

    from training.datafiles import read_dataset
    from training.ensemble import EnsembleError, ensemble_runs
    from training.fit import FitConfig, fit
    from training.run import RunDir

    data = read_dataset(simulated)
    members = []
    for init in (None, 7):
        config = FitConfig(epochs=1, batch_size=16, verbose=0, architecture="compact", init_seed=init)
        members.append(fit(data, tmp_path / f"m{init}", config, source=simulated).run_dir)
    path = ensemble_runs(members, tmp_path / "ens")
    x = data.x[:8, :, None]
    expected = np.mean([RunDir(m).load_keras().predict(x, verbose=0) for m in members], axis=0)
    assert np.allclose(RunDir(tmp_path / "ens").load_keras().predict(x, verbose=0), expected, atol=1e-6)
    assert RunDir(path.parent).classes() == data.classes

    other = fit(data, tmp_path / "other", FitConfig(epochs=1, batch_size=16, verbose=0, seed=5,
                                                     architecture="compact"), source=simulated).run_dir
    with pytest.raises(EnsembleError, match="another split"):
        ensemble_runs([members[0], other], tmp_path / "bad")


def test_resnet_trains_exports_and_joins_a_compact_ensemble(tf, simulated, tmp_path):
    """--architecture resnet: its own layers (residual additions, global pooling), the compact
    network's dropout and width options, an ONNX file that matches Keras (export checks it), and
    an ensemble with a compact member of the same split."""
    import numpy as np

    from sgmine.model import Model
    from training.datafiles import read_dataset
    from training.ensemble import ensemble_runs
    from training.export import export_model
    from training.fit import FitConfig, build_architecture, fit
    from training.run import RunDir

    network = build_architecture("resnet", 8, 209, dropout=0.2, width=2)
    kinds = {layer.__class__.__name__ for layer in network.layers}
    assert {"Add", "GlobalAveragePooling1D", "GlobalMaxPooling1D"} <= kinds and "Flatten" not in kinds
    assert [layer.rate for layer in network.layers if layer.__class__.__name__ == "Dropout"] == [0.2, 0.2]
    assert network.layers[-1].kernel.shape == (512, 8)
    with pytest.raises(ValueError, match="compact or resnet"):
        FitConfig(dropout=0.2)

    data = read_dataset(simulated)
    config = FitConfig(epochs=1, batch_size=16, verbose=0, architecture="resnet")
    resnet = fit(data, tmp_path / "resnet", config, source=simulated)
    assert RunDir(resnet.run_dir).history()["architecture"] == "resnet"
    exported = export_model(resnet.model_path, tmp_path / "resnet.onnx", data=data)
    x = data.x[:16]
    expected = RunDir(resnet.run_dir).load_keras().predict(x[:, :, None], verbose=0)
    assert np.allclose(Model(exported.path).predict_proba(x), expected, atol=1e-4)

    compact = fit(data, tmp_path / "compact", FitConfig(epochs=1, batch_size=16, verbose=0, architecture="compact"),
                  source=simulated)
    ensemble_runs([resnet.run_dir, compact.run_dir], tmp_path / "ens")
    mean = np.mean([RunDir(m).load_keras().predict(x[:, :, None], verbose=0)
                    for m in (resnet.run_dir, compact.run_dir)], axis=0)
    assert np.allclose(RunDir(tmp_path / "ens").load_keras().predict(x[:, :, None], verbose=0), mean, atol=1e-6)


def test_an_outside_run_over_more_classes_joins_the_remainder(tf, simulated, tmp_path):
    """ensemble --outside: the output is (1 - w) x the members' mean plus w x the outside run's
    columns of the members' classes, so its other classes add to "none of these"; an outside run
    that trained on the members' validation or test structures is refused."""
    import csv
    import sys
    from pathlib import Path

    import numpy as np

    from sgmine.model import Model, none_of_these
    from training import structures
    from training.datafiles import read_dataset, write_dataset
    from training.dataset import build_dataset
    from training.ensemble import EnsembleError, ensemble_runs
    from training.export import export_model
    from training.fit import FitConfig, fit
    from training.run import RunDir

    data = read_dataset(simulated)
    compact = {"epochs": 1, "batch_size": 16, "verbose": 0, "architecture": "compact"}
    members = [fit(data, tmp_path / f"m{i}", FitConfig(**compact, init_seed=i), source=simulated).run_dir
               for i in (1, 2)]

    def manifest(folder):
        with open(folder / "manifest.csv", newline="") as fh:
            return list(csv.DictReader(fh))

    others = tmp_path / "others"  # bcc and simple-cubic crystals: two more classes
    build_dataset(structures.prototype_crystals(3, ["bcc", "simple-cubic"]), others, augment=2,
                  space_groups=None, workers=1, progress=False)

    def wider(name, base):  # ``base``'s rows plus ``others``
        a, b = read_dataset(base), read_dataset(others)
        write_dataset(tmp_path / name, np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]),
                      manifest(base) + manifest(others), {"grid": data.info["grid"]})
        return fit(read_dataset(tmp_path / name), tmp_path / f"{name}_run", FitConfig(**compact),
                   source=tmp_path / name).run_dir

    with pytest.raises(EnsembleError, match="validation or test part"):
        ensemble_runs(members, tmp_path / "leaky", outside=wider("leaky", simulated))

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import ablation_subset

    assert ablation_subset.main([str(simulated), str(tmp_path / "safe"), "--outside-held-out-of", str(members[0]),
                                 str(simulated)]) == 0
    outside = wider("clean", tmp_path / "safe")
    wide_classes = RunDir(outside).history()["classes"]
    assert {221, 229} <= set(wide_classes) and set(data.classes) <= set(wide_classes)

    ensemble_runs(members, tmp_path / "ens", outside=outside, outside_weight=0.3)
    x = data.x[:16, :, None]
    mean = np.mean([RunDir(m).load_keras().predict(x, verbose=0) for m in members], axis=0)
    columns = [wide_classes.index(c) for c in data.classes]
    wide = RunDir(outside).load_keras().predict(x, verbose=0)
    expected = 0.7 * mean + 0.3 * wide[:, columns]
    ens = RunDir(tmp_path / "ens")
    assert np.allclose(ens.load_keras().predict(x, verbose=0), expected, atol=1e-6)
    assert ens.history()["outside"]["weight"] == 0.3 and ens.classes() == data.classes
    exported = export_model(ens.model_file, tmp_path / "ens.onnx", data=data)
    probs = Model(exported.path).predict_proba(data.x[:16])
    assert np.allclose(probs, expected, atol=1e-4) and np.all(none_of_these(probs) > 0)
    with pytest.raises(EnsembleError, match="between 0 and 1"):
        ensemble_runs(members, tmp_path / "bad", outside=outside, outside_weight=1.0)


def test_init_from_starts_a_run_from_another_runs_best_weights(tf, simulated, tmp_path):
    """--init-from loads the earlier run's best weights into the same network (with its "none of
    these" output) and fine-tunes at 1e-4 then 1e-5; another network, split or the run's own
    folder is refused before anything is trained."""
    import keras
    import numpy as np

    from training.datafiles import read_dataset
    from training.fit import FitConfig, _model, fit, schedule
    from training.run import RunDir

    data = read_dataset(simulated)
    base = dict(batch_size=16, verbose=0, architecture="compact")
    first = fit(data, tmp_path / "first", FitConfig(epochs=1, **base), source=simulated).run_dir

    # the network a run starts from holds the first run's weights (one epoch: its best is its last)
    start = _model(RunDir(tmp_path / "start"), data, FitConfig(epochs=1, init_from=str(first), **base), None)
    last = keras.saving.load_model(RunDir(first).checkpoints / "last.keras")
    assert len(start.get_weights()) == len(last.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(start.get_weights(), last.get_weights()))

    tuned = fit(data, tmp_path / "tuned", FitConfig(epochs=2, init_from=str(first), **base), source=simulated)
    assert tuned.history["learning_rate"] == pytest.approx([1e-4, 1e-5])
    assert [schedule(FitConfig(epochs=4, init_from="r", **base))(e) for e in range(4)] == [1e-4, 1e-4, 1e-5, 1e-5]

    with pytest.raises(ValueError, match="its width is None, this run's 2"):
        fit(data, tmp_path / "wide", FitConfig(epochs=1, width=2, init_from=str(first), **base))
    with pytest.raises(ValueError, match="split of this dataset differs"):
        fit(data, tmp_path / "seed", FitConfig(epochs=1, seed=5, init_from=str(first), **base))
    assert not (tmp_path / "wide").exists() and not (tmp_path / "seed").exists()  # refused before writing
    with pytest.raises(ValueError, match="another run than --out"):
        fit(data, first, FitConfig(epochs=1, init_from=str(first), **base))
    with pytest.raises(FileNotFoundError, match="best.weights.h5"):
        fit(data, tmp_path / "none", FitConfig(epochs=1, init_from=str(tmp_path / "missing"), **base))


def test_a_model_on_another_grid_carries_it_to_the_runtime(tf, tmp_path, data_dir):
    """A dataset built on a finer, shorter grid (``--grid``) trains the compact network at that
    width, and the exported file tells the runtime the grid: ``sgmine scan`` puts a measured file
    on it, and the scores are the network's on the same resampled curve."""
    pytest.importorskip("pyxtal")
    from sgmine.gr import read_gr
    from sgmine.grid import Grid, resample
    from sgmine.model import Model
    from sgmine.scan import predict
    from training import structures
    from training.datafiles import read_dataset
    from training.dataset import build_dataset
    from training.export import export_model
    from training.fit import FitConfig, fit
    from training.run import RunDir

    grid = Grid(rmin=1.5, rmax=20.0, npoints=371)
    tasks = structures.cif_directory(data_dir) + structures.synthetic_crystals(7, list(GROUPS), seed=3)
    build_dataset(tasks, tmp_path / "data", augment=4, seed=3, space_groups=GROUPS, workers=1, grid=grid, progress=False)
    data = read_dataset(tmp_path / "data")
    assert data.grid == grid and data.x.shape[1] == 371
    run = fit(data, tmp_path / "run", FitConfig(epochs=1, batch_size=16, verbose=0, architecture="compact"),
              source=tmp_path / "data")
    network = RunDir(run.run_dir).load_keras()
    assert network.input_shape == (None, 371, 1)

    model = Model(export_model(run.model_path, tmp_path / "fine.onnx", data=data).path)
    assert model.info.grid == grid
    curve = read_gr(data_dir / "Ni.gr")
    on_grid = resample(curve.r, curve.g, grid).values
    expected = network.predict(on_grid[None, :, None], verbose=0)[0]
    np.testing.assert_allclose(model.predict_proba(on_grid[None, :])[0], expected, atol=1e-4)
    scanned = predict(data_dir / "Ni.gr", top_k=3, model=model)[0]
    assert scanned.ok and scanned.r_max == pytest.approx(20.0, abs=0.02)  # cut at the grid's 20 Å
    best = int(np.argmax(expected))
    assert scanned.candidates[0].space_group == model.info.classes[best]


def test_init_from_an_onnx_file_starts_from_its_member(tf, simulated, tmp_path):
    """--init-from MODEL.onnx --member K: the run's network starts as member K of the exported
    ensemble (same outputs on the dataset's curves), history.json names the file, and a file of
    other classes, a missing member or --member without a file are refused before training."""
    import json

    import numpy as np

    from training.datafiles import read_dataset
    from training.ensemble import ensemble_runs
    from training.export import export_model
    from training.fit import FitConfig, _model, fit
    from training.onnx_keras import member_probabilities, read_onnx
    from training.run import RunDir

    data = read_dataset(simulated)
    base = dict(batch_size=16, verbose=0, architecture="compact")
    members = [fit(data, tmp_path / f"m{i}", FitConfig(epochs=1, init_seed=i, **base), source=simulated).run_dir
               for i in (1, 2)]
    ensemble_runs(members, tmp_path / "ens")
    shipped = export_model(RunDir(tmp_path / "ens").model_file, tmp_path / "ens.onnx", data=data).path

    config = FitConfig(epochs=2, init_from=str(shipped), init_member=1, **base)
    start = _model(RunDir(tmp_path / "start"), data, config, None)
    x = data.x[:32, :, None]
    np.testing.assert_allclose(start.predict(x, verbose=0), member_probabilities(read_onnx(shipped), x, 1), atol=1e-5)

    tuned = fit(data, tmp_path / "tuned", config, source=simulated)
    assert tuned.history["learning_rate"] == pytest.approx([1e-4, 1e-5])
    record = json.loads(RunDir(tuned.run_dir).history_file.read_text())
    assert record["warm_start"]["member"] == 1 and len(record["warm_start"]["sha256"]) == 64

    with pytest.raises(ValueError, match="choose one with --member"):
        fit(data, tmp_path / "which", FitConfig(epochs=1, init_from=str(shipped), **base))
    with pytest.raises(ValueError, match="member 2 does not exist"):
        fit(data, tmp_path / "third", FitConfig(epochs=1, init_from=str(shipped), init_member=2, **base))
    with pytest.raises(ValueError, match="--member picks a network of an --init-from ONNX file"):
        FitConfig(epochs=1, init_member=0, **base)
    fewer = read_dataset(simulated)
    fewer.classes = fewer.classes[:-1] + (230,)
    with pytest.raises(ValueError, match="its classes are"):
        fit(fewer, tmp_path / "classes", FitConfig(epochs=1, init_from=str(shipped), init_member=0, **base))
    assert not any((tmp_path / name).exists() for name in ("which", "third", "classes"))
