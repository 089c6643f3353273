"""The run directory's layout (training.run) and the metrics every step shares (training.metrics)."""

import json

import numpy as np
import pytest

from training.run import RunDir, Split


def test_run_dir_reads_what_fit_writes(tmp_path):
    run = RunDir(tmp_path)
    assert run.model_file == tmp_path / "model.keras" and run.split_file == tmp_path / "split.npz"
    assert run.history() == {} and run.classes() is None and run.calibration() == {} and not run.has_split()
    run.history_file.write_text(json.dumps({"classes": [2, 14, 225]}))
    run.calibration_file.write_text(json.dumps({"temperature": 1.5}))
    assert run.classes() == (2, 14, 225) and run.calibration()["temperature"] == 1.5
    assert run.check_classes((2, 14, 225)) == (2, 14, 225)
    with pytest.raises(ValueError, match="was trained on classes"):
        run.check_classes((2, 14))
    run.save_split(Split(np.arange(6), np.arange(6, 8), np.arange(8, 10)), 10)
    assert run.has_split()
    np.testing.assert_array_equal(run.split(10).test, [8, 9])
    with pytest.raises(ValueError, match="10 rows, this one has 11"):
        run.split(11)


def test_load_keras_refuses_what_is_not_a_model(tmp_path):
    from training.run import ModelFileError, load_keras_model

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_keras_model(tmp_path / "missing.keras")
    (tmp_path / "model.txt").write_text("no")
    with pytest.raises(ModelFileError, match="expected a Keras"):
        load_keras_model(tmp_path / "model.txt")


PROBA = np.array([[0.6, 0.3, 0.1], [0.2, 0.1, 0.7], [0.1, 0.5, 0.4], [0.5, 0.1, 0.4]])
LABELS = np.array([0, 1, 2, 2])  # predicted: 0, 2, 1, 0


def test_metrics_match_scikit_learn_and_hand_computed_values():
    from sklearn.metrics import log_loss, top_k_accuracy_score

    from training.metrics import cross_entropy, expected_calibration_error, top_k_accuracy

    assert top_k_accuracy(LABELS, PROBA, 1) == 0.25 == top_k_accuracy_score(LABELS, PROBA, k=1)
    assert top_k_accuracy(LABELS, PROBA, 2) == 0.75 == top_k_accuracy_score(LABELS, PROBA, k=2)
    assert top_k_accuracy(LABELS, PROBA, 3) == 1.0 and np.isnan(top_k_accuracy(LABELS[:0], PROBA[:0], 1))
    assert top_k_accuracy(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]), 1) == 0.5  # two classes
    expected = -np.mean(np.log([0.6, 0.1, 0.4, 0.4]))
    assert cross_entropy(LABELS, PROBA) == pytest.approx(expected) == log_loss(LABELS, PROBA)
    # one floor (float64's epsilon) whatever the dtype: a zero probability costs -log(eps), not -log(1e-7)
    zero = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    assert cross_entropy(np.array([1]), zero) == pytest.approx(-np.log(np.finfo(np.float64).eps))
    # ECE by hand: bins of width 1/15; rows 2 and 3 (both 0.5, both wrong) share bin 7, the others sit alone
    confidence, correct = PROBA.max(axis=1), PROBA.argmax(axis=1) == LABELS
    by_hand = sum(abs(float(c) - k) / 4 for c, k in zip(confidence, correct))
    assert expected_calibration_error(LABELS, PROBA) == pytest.approx(by_hand)
    assert expected_calibration_error(LABELS, PROBA, bins=1) == pytest.approx(abs(confidence.mean() - correct.mean()))


def test_evaluate_and_calibrate_report_the_same_cross_entropy():
    from training import calibrate, evaluate
    from training.metrics import cross_entropy, score_report

    assert calibrate.cross_entropy is cross_entropy
    assert evaluate.score_report is score_report
    assert score_report(np.array([2, 14, 225, 225]), PROBA, (2, 14, 225))["cross_entropy"] == cross_entropy(LABELS, PROBA)
