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
