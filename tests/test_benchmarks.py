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

    # --test-of: the rows of the groups a run's split held out for testing
    from training.run import RunDir, Split

    base_rows = [{**m, "variant": 0} for m in manifest[::2]]
    write_dataset(tmp_path / "base", x[::2], np.full(3, 225), base_rows, {})
    run = tmp_path / "run"
    run.mkdir()
    RunDir(run).save_split(Split(np.array([0]), np.array([1]), np.array([2])), 3)
    assert ablation_subset.main([str(tmp_path / "all"), str(tmp_path / "held"), "--test-of", str(run),
                                 str(tmp_path / "base")]) == 0
    held = read_dataset(tmp_path / "held" / "dataset.npz")
    assert held.groups.tolist() == ["F2|225", "F2|225"] and held.x[:, 0].tolist() == [4 * 209.0, 5 * 209.0]
    assert ablation_subset.main([str(tmp_path / "all"), str(tmp_path / "held1"), "variant=1", "--test-of", str(run),
                                 str(tmp_path / "base")]) == 0
    assert read_dataset(tmp_path / "held1" / "dataset.npz").x[:, 0].tolist() == [5 * 209.0]

    # --outside-held-out-of: only the rows of the groups the run trained on (F0)
    assert ablation_subset.main([str(tmp_path / "all"), str(tmp_path / "train"), "--outside-held-out-of", str(run),
                                 str(tmp_path / "base")]) == 0
    assert read_dataset(tmp_path / "train" / "dataset.npz").groups.tolist() == ["F0|225", "F0|225"]


def test_compare_evals_pairs_two_reports_of_one_probe(tmp_path):
    """Probe reports (probe_*.py --json) are paired row by row; rows of another probe are not."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from compare_evals import main, paired_probe
    finally:
        sys.path.pop(0)

    def report(hits, compound="NaCl"):
        return {"model_version": "v", "top1": 0.5, "rows": [
            {"compound": compound, "setting": f"s{i}", "predicted": 225 if h else 2, "probability": 0.5, "top1": h,
             "in_domain": True} for i, h in enumerate(hits)]}

    first, second = report([True, True, False, True]), report([False, True, True, False])
    assert paired_probe(first, second) == {"n": 4, "only_first": 2, "only_second": 1, "p": 1.0}
    assert paired_probe(first, report([True, True, False, True], compound="MgO")) == {}
    assert paired_probe(first, report([True])) == {}
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(first))
    b.write_text(json.dumps(second))
    c.write_text(json.dumps(report([True], compound="MgO")))
    assert main([str(a), str(b)]) == 0
    assert main([str(a), str(c)]) == 1


def test_compare_evals_counts_discordant_pairs(tmp_path):
    """Paired counts on the PDFs both models scored, and the exact McNemar p-value."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from compare_evals import main, mcnemar_exact, paired_held_out, paired_real
    finally:
        sys.path.pop(0)

    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert abs(mcnemar_exact(0, 5) - 2 / 32) < 1e-12  # both tails of Binomial(5, 1/2)

    def row(name, top1, top2, setting="xray"):
        return {"source": "aflow", "name": name, "setting": setting, "top1": top1, "top2": top2}

    def report(rows, ni_right, sto_in_domain):
        files = [{"file": "Ni.gr", "scored": "yes", "status": "ok", "top1": ni_right, "top3": [225 if ni_right else 139],
                  "probabilities": [0.9], "true": 225, "in_domain": True},
                 {"file": "SrTiO3.gr", "scored": "ood", "status": "ok", "top1": False, "top3": [139],
                  "probabilities": [0.2], "true": 221, "in_domain": sto_in_domain}]
        return {"version": "v", "real": {"rows": rows}, "measured": {"files": files}}

    first = report([row("a", True, True), row("b", True, True), row("c", False, True), row("only-first", True, True)],
                   True, False)
    second = report([row("a", False, True), row("b", True, True), row("c", True, True)], False, True)
    first["held_out"] = {"small": {"top1_hits": "11100"}, "other": {"top1_hits": "1"}, "old": {"top1": 0.5}}
    second["held_out"] = {"small": {"top1_hits": "10001"}, "other": {"top1_hits": "10"}, "old": {"top1": 0.5}}
    assert paired_held_out(first, second) == {"small": {"n": 5, "only_first": 2, "only_second": 1, "p": 1.0}}
    assert paired_real({"version": "v"}, second) == {}  # a report without --real
    result = paired_real(first, second)
    assert result["top1"] == {"n": 3, "only_first": 1, "only_second": 1, "p": 1.0}
    assert result["top2"]["only_first"] == result["top2"]["only_second"] == 0
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(first))
    b.write_text(json.dumps(second))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_evals.py"), str(a), str(b)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "right only with the first 1, only with the second 1" in done.stdout
    assert "Ni.gr: first 225" in done.stdout and "SrTiO3.gr: flagged by the first only" in done.stdout
    assert "held-out small top1: 5 PDFs, right only with the first 2, only with the second 1" in done.stdout
    assert main([str(a), str(b)]) == 0


def test_probe_elements_sweeps_each_prototype_of_the_models_classes(tmp_path):
    """Every fcc, hcp and diamond crystal of the sweep is scored at the four settings, with its
    true nearest-neighbour distance; the shipped model knows fcc Ni's size (2.49 Å)."""
    pytest.importorskip("diffpy.structure")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    import probe_elements

    for kind in ("fcc", "hcp", "diamond"):
        s = probe_elements.prototype(kind, 2.5)
        xyz = s.xyz_cartn
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
        # within the cell, or to the next cell along a for the one-atom-thick hcp/diamond layers
        assert min(d[d > 0].min(), s.lattice.a) == pytest.approx(2.5, abs=1e-6)
    out = tmp_path / "probe.json"
    assert probe_elements.main(["--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["prototypes"]) == {"fcc", "hcp", "diamond"}
    assert len(report["rows"]) == 3 * len(probe_elements.DISTANCES) * 4
    ni = [r for r in report["rows"] if r["kind"] == "fcc" and r["distance"] == 2.5]
    assert all(r["top1"] for r in ni)


def test_eval_measured_scores_a_held_out_dataset(tmp_path):
    """--held-out scores every in-class row of another dataset: here Ni and Si simulated from the
    shipped CIFs, which the shipped model gets right."""
    pytest.importorskip("diffpy.structure")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import eval_measured

    from sgmine.scan import load_model
    from training import structures
    from training.dataset import build_dataset

    build_dataset(structures.cif_directory(ROOT / "examples" / "data"), tmp_path / "ds", augment=1, workers=1,
                  progress=False)
    figures = eval_measured.score_held_out(load_model(None), tmp_path / "ds")
    assert figures["n"] == 2 and figures["top1"] == 1.0 and figures["top2"] == 1.0
    assert figures["recall"] == {225: 1.0, 227: 1.0} and figures["flagged"] == 0.0
    assert figures["top1_hits"] == "11"  # one character per row, for compare_evals.py


def test_probe_compounds_builds_each_compound_in_its_group_and_scores_them(tmp_path):
    """Every textbook compound comes out of pymatgen in the group its symbol names (spglib), with
    no two atoms closer than 1.4 Å; the probe scores each at six settings, and the shipped model
    gets rock salt, Ni and Si right at all of them."""
    pytest.importorskip("diffpy.structure")
    pytest.importorskip("pymatgen")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    import probe_compounds
    from pymatgen.symmetry.groups import SpaceGroup

    for name, (symbol, *_rest) in probe_compounds.COMPOUNDS.items():
        structure, group = probe_compounds.compound(name)
        assert group == SpaceGroup(symbol).int_number, name
        xyz = structure.xyz_cartn
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
        assert d[d > 0].min() > 1.4, name
    out = tmp_path / "compounds.json"
    assert probe_compounds.main(["--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["rows"]) == len(probe_compounds.COMPOUNDS) * len(probe_compounds.PROBE_SETTINGS)
    assert all(report["per_compound"][n] == 1.0 for n in ("NaCl", "Ni", "Si"))


def test_probe_particles_scores_each_diameter_and_displacement(tmp_path, monkeypatch):
    """Two compounds, every diameter and Uiso: one row each, per-diameter shares in the JSON;
    the shipped model gets bulk Ni and NaCl right."""
    pytest.importorskip("diffpy.structure")
    pytest.importorskip("pymatgen")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import probe_particles

    monkeypatch.setattr(probe_particles, "COMPOUNDS", {k: probe_particles.COMPOUNDS[k] for k in ("Ni", "NaCl")})
    out = tmp_path / "particles.json"
    assert probe_particles.main(["--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["rows"]) == 2 * len(probe_particles.DIAMETERS) * len(probe_particles.UISOS)
    assert set(report["per_diameter"]) == {f"{d:g}" for d in probe_particles.DIAMETERS}
    assert report["per_diameter"]["0"] == 1.0
