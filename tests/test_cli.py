"""`sgmine scan` and `sgmine info`: the CSV/JSON contract, error rows, exit codes, atomic output."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sgmine import table
from sgmine.cli import app

runner = CliRunner()


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def broken(tmp_path):
    path = tmp_path / "broken.gr"
    path.write_text("this is not\na PDF file\n")
    return path


def test_done_when_two_ok_one_error_exit_1_no_traceback(data_dir, template_model, broken):
    """The issue's acceptance check, as a user runs it: a real process, real files."""
    cmd = [sys.executable, "-m", "sgmine.cli", "scan", str(data_dir / "Ni.gr"), str(data_dir / "Si.gr"),
           str(broken), "--model", str(template_model)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "1 of 3 inputs could not be scored" in proc.stderr
    rows = _rows(proc.stdout)
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    assert [r["sg_1"] for r in rows[:2]] == ["225", "227"]
    assert str(broken) not in rows[2]["message"] and "no block of numeric data" in rows[2]["message"]


def test_csv_columns_and_order(data_dir, template_model):
    result = runner.invoke(app, ["scan", str(data_dir / "Si.gr"), str(data_dir / "Ni.gr"),
                                 "--model", str(template_model), "-k", "2"])
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split(",")
    assert header == ["file", "status", "sg_1", "symbol_1", "prob_1", "sg_2", "symbol_2", "prob_2",
                      "confidence", "in_domain", "none_of_these", "r_min", "r_max", "qmax", "message"]
    rows = _rows(result.stdout)
    assert all(r["confidence"] == r["prob_1"] for r in rows)
    assert all(r["in_domain"] == "" for r in rows)  # the template model carries no threshold
    assert all(r["none_of_these"] == "" for r in rows)  # nor a none-of-these output
    assert [os.path.basename(r["file"]) for r in rows] == ["Si.gr", "Ni.gr"]
    assert rows[1]["qmax"] == "25.000" and rows[0]["qmax"] == ""
    assert rows[0]["r_min"] == "1.500" and rows[0]["r_max"] == "30.000"
    assert float(rows[0]["prob_1"]) >= float(rows[0]["prob_2"])


def test_directory_input_and_json_out(tmp_path, data_dir, template_model):
    out = tmp_path / "result.json"
    result = runner.invoke(app, ["scan", str(data_dir), "--model", str(template_model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    records = json.loads(out.read_text())
    assert [os.path.basename(r["file"]) for r in records] == ["CdSe-nanoparticle.gr", "Ni.gr", "Si.gr"]
    assert records[1]["candidates"][0] == {"space_group": 225, "symbol": "Fm-3m",
                                           "probability": records[1]["candidates"][0]["probability"]}
    assert records[1]["metadata"]["composition"] == "Ni"
    assert records[1]["model"] == {"name": str(template_model), "version": "test-template"}  # which model wrote it
    assert table.from_record(records[1]).model_version == "test-template"


def test_usage_errors_exit_2(tmp_path, data_dir, template_model):
    ni = str(data_dir / "Ni.gr")
    assert runner.invoke(app, ["scan"]).exit_code == 2
    assert runner.invoke(app, ["scan", ni, "--model", str(template_model), "--top-k", "0"]).exit_code == 2
    bad_format = runner.invoke(app, ["scan", ni, "--model", str(template_model), "--format", "xml"])
    assert bad_format.exit_code == 2 and "unknown --format" in bad_format.stderr
    missing = runner.invoke(app, ["scan", ni, "--model", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    no_dir = runner.invoke(app, ["scan", ni, "--model", str(template_model), "--out", str(tmp_path / "x" / "o.csv")])
    assert no_dir.exit_code == 2 and "does not exist" in no_dir.stderr
    resume_to_stdout = runner.invoke(app, ["scan", ni, "--model", str(template_model), "--resume"])
    assert resume_to_stdout.exit_code == 2 and "--resume needs --out" in resume_to_stdout.stderr
    assert runner.invoke(app, ["scan", ni, "--model", str(template_model), "--save-every", "-1"]).exit_code == 2


def test_out_with_another_suffix_needs_format(tmp_path, data_dir, template_model):
    """--out r.txt used to get CSV silently: without --format it is refused before any work (exit
    2, nothing written); with --format the user has said what to write."""
    ni, out = str(data_dir / "Ni.gr"), tmp_path / "r.txt"
    refused = runner.invoke(app, ["scan", ni, "--model", str(template_model), "--out", str(out)])
    assert refused.exit_code == 2 and not out.exists()
    assert f"cannot tell the table's format from --out {out}: name it .csv or .json" in refused.stderr
    written = runner.invoke(app, ["scan", ni, "--model", str(template_model), "--out", str(out), "--format", "json"])
    assert written.exit_code == 0 and json.loads(out.read_text())[0]["status"] == "ok"


def test_scan_help_explains_the_columns():
    text = " ".join(runner.invoke(app, ["scan", "--help"], terminal_width=200).stdout.split())
    for column in ("confidence (the top candidate's probability)", "in_domain (true when", "none_of_these (for a model"):
        assert column in text


def test_output_file_written_atomically_and_replaced(tmp_path, data_dir, template_model):
    out = tmp_path / "scan.csv"
    out.write_text("previous results\n")
    result = runner.invoke(app, ["scan", str(data_dir / "Ni.gr"), "--model", str(template_model), "-o", str(out)])
    assert result.exit_code == 0
    assert _rows(out.read_text())[0]["sg_1"] == "225"
    assert [p.name for p in tmp_path.iterdir()] == ["scan.csv"]  # no temporary file left behind


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "scan.csv"
    out.write_text("previous results\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(table.os, "replace", broken_replace)
    with pytest.raises(OSError):
        table.atomic_write(out, "new,results\n" * 1000)
    assert out.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scan.csv"]


def test_info(template_model):
    result = runner.invoke(app, ["info", "--model", str(template_model)])
    assert result.exit_code == 0
    assert "test-template" in result.stdout and "209 points, 1.5–30 Å" in result.stdout
    assert "225  Fm-3m" in result.stdout
