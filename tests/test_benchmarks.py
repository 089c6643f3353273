"""The scan benchmark runs end to end and prints every figure issue #8 asks for (tiny N, 1 repeat)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_scan_prints_its_figures(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    out = tmp_path / "figures.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scan.py"), "--n", "9", "--repeats", "1",
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("speed-up", "onnxruntime fp32, sgmine graph", "onnxruntime INT8", "Keras predict",
                 "GEMM peak", "rows the grid needs", "diffpy load_data", "CLI start-up", "first result",
                 "INT8 top-1 agreement: not measured"):
        assert line in done.stdout, line
    figures = json.loads(out.read_text())
    assert figures["n_files"] == 9
    for key in ("e2e_sgmine_s", "e2e_reference_s", "score_sgmine_fp32_pdfs_per_s", "score_ort_int8_pdfs_per_s",
                "gemm_peak_gflops", "read_sgmine_window_files_per_s", "cli_help_s"):
        assert figures[key] > 0, key
    csv_rows = (tmp_path / "work" / "files").glob("*.gr")
    assert len(list(csv_rows)) == 9
