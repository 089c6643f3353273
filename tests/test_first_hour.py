"""A scientist's first hour (issue #13): the README's promises, and no rough edges."""

import csv
import gzip
import importlib.util
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import sgmine
from sgmine import cli, predict, read_gr
from sgmine.cli import app
from sgmine.table import csv_columns

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
runner = CliRunner()


def _readme_columns() -> list[str]:
    table = README.split("| column | meaning |", 1)[1].split("\n\n", 1)[0]
    names = []
    for line in table.splitlines()[2:]:
        names += re.findall(r"`([a-z_]+)`", line.split("|")[1])
    return names


def test_csv_columns_are_in_the_readmes_order():
    expected = [name.replace("_i", "_1") for name in _readme_columns()]
    assert csv_columns(1) == expected
    assert expected.index("confidence") == expected.index("prob_1") + 1


def test_readme_python_snippet_runs_as_written():
    code = re.search(r"From Python.*?```python\n(.*?)```", README, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("examples/data/Ni.gr ok")


def test_read_gr_is_public():
    assert "read_gr" in sgmine.__all__ and sgmine.read_gr is read_gr


def test_bare_tuple_and_n_by_2_array(data_dir, template_model):
    si = read_gr(data_dir / "Si.gr")
    (from_tuple,) = predict((si.r, si.g), model=template_model)
    (from_rows,) = predict(np.column_stack([si.r, si.g]), model=template_model)
    (from_columns,) = predict(np.vstack([si.r, si.g]), model=template_model)
    loaded = np.loadtxt(data_dir / "Si.gr", usecols=(0, 1))
    two = predict([loaded, (si.r, si.g)], model=template_model)
    for p in (from_tuple, from_rows, from_columns, *two):
        assert p.ok and p.best.space_group == 227, p.message
    # a tuple of two paths is still two inputs
    assert len(predict((str(data_dir / "Ni.gr"), str(data_dir / "Si.gr")), model=template_model)) == 2


def test_version_and_short_help():
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.strip() == f"sgmine {sgmine.__version__}"
    short = runner.invoke(app, ["-h"])
    assert short.exit_code == 0 and "scan" in short.stdout
    assert runner.invoke(app, ["scan", "-h"]).exit_code == 0


def test_simulate_without_its_extra_is_one_line_exit_2(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "diffpy.structure" else real(name, *a))
    result = runner.invoke(app, ["simulate", str(tmp_path / "x.cif"), "--out-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "sgmine[simulate]" in result.stderr


def test_top_k_beyond_the_classes_warns(data_dir, template_model):
    result = runner.invoke(app, ["scan", str(data_dir / "Ni.gr"), "--model", str(template_model), "-k", "100"])
    assert result.exit_code == 0
    assert "--top-k 100 is more than the model's 8 classes" in result.stderr
    assert "sg_8" in result.stdout.splitlines()[0] and "sg_9" not in result.stdout


def test_format_that_contradicts_the_out_suffix_is_refused(tmp_path, data_dir, template_model):
    out = tmp_path / "r.csv"
    result = runner.invoke(app, ["scan", str(data_dir / "Ni.gr"), "--model", str(template_model),
                                 "--out", str(out), "--format", "json"])
    assert result.exit_code == 2 and "does not match --out" in result.stderr and not out.exists()


def test_error_messages_do_not_repeat_the_file(tmp_path, template_model):
    broken = tmp_path / "broken.gr"
    broken.write_text("not a PDF\n")
    result = runner.invoke(app, ["scan", str(broken), "--model", str(template_model)])
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["file"] == str(broken) and str(broken) not in row["message"] and row["message"]


def test_gzip_file_is_read_transparently(tmp_path, data_dir, template_model):
    packed = tmp_path / "Ni.gr.gz"
    packed.write_bytes(gzip.compress((data_dir / "Ni.gr").read_bytes()))
    plain = read_gr(data_dir / "Ni.gr")
    curve = read_gr(packed)
    np.testing.assert_array_equal(curve.g, plain.g)
    assert curve.qmax == 25.0
    (pred,) = predict([packed], model=template_model)
    assert pred.ok and pred.best.space_group == 225


def test_scan_into_out_ends_with_a_summary_line(tmp_path, data_dir, template_model):
    out = tmp_path / "r.csv"
    shutil.copy(data_dir / "Ni.gr", tmp_path / "Ni.gr")
    (tmp_path / "bad.gr").write_text("nothing\n")
    proc = subprocess.run([sys.executable, "-m", "sgmine.cli", "scan", str(tmp_path / "Ni.gr"), str(tmp_path / "bad.gr"),
                           "--model", str(template_model), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"sgmine: 1 scored, 1 error; table in {re.escape(str(out))} \(\d+\.\d s\)", last), last
    assert cli._summary([], out, 0.04) == f"sgmine: 0 scored, 0 errors; table in {out} (0.0 s)"
