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


def test_ablation_subset_keeps_the_rows_a_condition_selects(tmp_path):
    """COLUMN=VALUE keeps matching rows, COLUMN!=VALUE the others; split groups travel along."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import ablation_subset

    from training.datafiles import MANIFEST_COLUMNS, read_dataset, write_dataset

    rows = [{"structure_id": f"s{i // 2}", "formula": f"F{i // 2}", "space_group": 225, "variant": i % 2,
             "split_group": f"F{i // 2}|225"} for i in range(6)]
    manifest = [{c: row.get(c, "") for c in MANIFEST_COLUMNS} for row in rows]
    x = np.arange(6 * 209, dtype=np.float32).reshape(6, 209)
    write_dataset(tmp_path / "all", x, np.full(6, 225), manifest, {})
    assert ablation_subset.main([str(tmp_path / "all"), str(tmp_path / "variants"), "variant!=0"]) == 0
    variants = read_dataset(tmp_path / "variants" / "dataset.npz")
    assert variants.x[:, 0].tolist() == [209.0, 3 * 209.0, 5 * 209.0]
    assert variants.groups.tolist() == ["F0|225", "F1|225", "F2|225"]
    assert ablation_subset.main([str(tmp_path / "all"), str(tmp_path / "originals"), "variant=0"]) == 0
    assert read_dataset(tmp_path / "originals" / "dataset.npz").x[:, 0].tolist() == [0.0, 2 * 209.0, 4 * 209.0]
    with pytest.raises(SystemExit, match="COLUMN"):
        ablation_subset.main([str(tmp_path / "all"), str(tmp_path / "bad"), "variant"])
