"""Reporter hooks of `sgmine scan --report NAME`: the csv default, json sidecars, several
reporters, unknown/unloadable ones, a failing one, and a third-party one found through the
``sgmine.reporters`` entry-point group of a really installed package (tests/data/reporter_pkg).
"""

import csv
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sgmine import reporters
from sgmine.cli import app

runner = CliRunner()
REPORTER_PKG = Path(__file__).parent / "data" / "reporter_pkg"


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def _scan(model, *args):
    return runner.invoke(app, ["scan", *map(str, args), "--model", str(model)])


@pytest.fixture
def inputs(tmp_path, data_dir):
    """Copies of the measured Ni and Si files (sidecars must not land in examples/data)."""
    (tmp_path / "sub").mkdir()
    ni, si = tmp_path / "Ni.gr", tmp_path / "sub" / "Si.gr"
    shutil.copy(data_dir / "Ni.gr", ni)
    shutil.copy(data_dir / "Si.gr", si)
    return ni, si


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory):
    """tests/data/reporter_pkg installed into a folder of its own, as a user installs a reporter
    package; returns that folder (to put on sys.path).

    pip builds and installs it (offline, with this environment's setuptools). Where setuptools
    is missing (Python >= 3.12 venvs lack it) the same dist-info is written from pyproject.toml.
    Either way sgmine finds the reporters only through the installed entry-point metadata.
    """
    work = tmp_path_factory.mktemp("reporter_pkg")
    source, target = work / "src", work / "site"
    shutil.copytree(REPORTER_PKG, source)  # pip builds in-tree: keep build/ and egg-info out of tests/data
    if importlib.util.find_spec("setuptools") is None:
        _install_by_hand(source, target)
        return target
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--target", str(target), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"pip could not install the test reporter package:\n{proc.stderr}"
    return target


def _install_by_hand(source: Path, target: Path) -> None:
    """What pip would install: the package, and a dist-info with METADATA and entry_points.txt."""
    import tomllib  # Python >= 3.11, where a venv may lack setuptools

    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    shutil.copytree(source / "sgmine_test_reporter", target / "sgmine_test_reporter")
    info = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
             for group, eps in project["entry-points"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines))


@pytest.fixture
def third_party(third_party_site, monkeypatch, tmp_path):
    """The installed test package on sys.path; returns the log its ``record`` reporter writes."""
    monkeypatch.syspath_prepend(str(third_party_site))
    log = tmp_path / "record.jsonl"
    monkeypatch.setenv("SGMINE_TEST_REPORTER_LOG", str(log))
    return log


def test_csv_is_the_default_and_writes_no_sidecar(inputs, template_model):
    default = _scan(template_model, *inputs)
    named = _scan(template_model, *inputs, "--report", "csv")
    assert default.exit_code == 0 and named.exit_code == 0, default.output + named.output
    assert default.stdout == named.stdout
    assert [r["sg_1"] for r in _rows(default.stdout)] == ["225", "227"]
    assert not list(inputs[0].parent.rglob("*.sgmine.json"))


def test_json_sidecar_next_to_each_input(inputs, template_model):
    result = _scan(template_model, *inputs, "--report", "json", "-k", "2")
    assert result.exit_code == 0, result.output
    assert len(_rows(result.stdout)) == 2  # the table is still written
    expected = {inputs[0]: (225, "Fm-3m"), inputs[1]: (227, "Fd-3m")}
    for path, (sg, symbol) in expected.items():
        sidecar = path.parent / f"{path.name}.sgmine.json"
        assert sidecar == reporters.sidecar_path(path) and sidecar.is_file()
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        assert record["file"] == str(path) and record["status"] == "ok"
        assert len(record["candidates"]) == 2 and record["top_k"] == 2
        assert (record["candidates"][0]["space_group"], record["candidates"][0]["symbol"]) == (sg, symbol)
        assert record["candidates"][0]["probability"] >= record["candidates"][1]["probability"]
        assert record["model"]["version"] == "test-template" and record["model"]["path"] == str(template_model)
        assert 225 in record["model"]["classes"] and "Fm-3m" in record["model"]["symbols"]
        assert record["sgmine_version"]
    ni = json.loads(reporters.sidecar_path(inputs[0]).read_text(encoding="utf-8"))
    assert float(ni["metadata"]["qmax"]) == 25.0 and ni["qmax"] == 25.0  # the header's metadata


def test_error_rows_get_no_sidecar(inputs, template_model, tmp_path):
    broken = tmp_path / "broken.gr"
    broken.write_text("not a PDF\n")
    result = _scan(template_model, inputs[0], broken, "--report", "json")
    assert result.exit_code == 1
    assert reporters.sidecar_path(inputs[0]).is_file()
    assert not reporters.sidecar_path(broken).exists()


def test_several_reporters_repeated_or_comma_separated(inputs, template_model, third_party):
    result = _scan(template_model, *inputs, "--report", "json", "--report", "record", "--report", "csv")
    assert result.exit_code == 0, result.output
    assert all(reporters.sidecar_path(p).is_file() for p in inputs)
    assert len(third_party.read_text().splitlines()) == 2
    for p in inputs:
        reporters.sidecar_path(p).unlink()
    result = _scan(template_model, *inputs, "--report", "csv,json,record,json")  # duplicates run once
    assert result.exit_code == 0, result.output
    assert all(reporters.sidecar_path(p).is_file() for p in inputs)
    assert len(third_party.read_text().splitlines()) == 4


def test_unknown_reporter_is_a_usage_error(inputs, template_model):
    result = _scan(template_model, *inputs, "--report", "json", "--report", "nosuch")
    assert result.exit_code == 2
    assert "unknown reporter 'nosuch'" in result.stderr and "available: csv, json" in result.stderr
    assert "sgmine.reporters" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing scored, nothing written
    assert not list(inputs[0].parent.rglob("*.sgmine.json"))


def test_third_party_reporter_through_entry_points(inputs, template_model, third_party, tmp_path):
    declared = {ep.name: ep for ep in entry_points(group=reporters.ENTRY_POINT_GROUP)}
    assert declared["record"].value == "sgmine_test_reporter:RecordingReporter"
    assert declared["record"].dist.name == "sgmine-test-reporter"  # found in the installed package's metadata
    assert {"record", "explode", "broken"} <= set(reporters.available())
    broken = tmp_path / "broken.gr"
    broken.write_text("not a PDF\n")

    result = _scan(template_model, inputs[1], broken, inputs[0], "--report", "record", "-k", "3")
    assert result.exit_code == 1  # the broken input, not the reporter
    assert "reporter" not in result.stderr
    calls = [json.loads(line) for line in third_party.read_text().splitlines()]
    assert [c["source"] for c in calls] == [str(inputs[1]), str(inputs[0])]  # scored files only, in order
    assert [c["candidates"][0][:2] for c in calls] == [[227, "Fd-3m"], [225, "Fm-3m"]]
    assert all(len(c["candidates"]) == 3 and c["top_k"] == 3 for c in calls)
    assert all(c["model_version"] == "test-template" and c["model_path"] == str(template_model) for c in calls)
    assert float(calls[1]["metadata"]["qmax"]) == 25.0  # Ni.gr's header


def test_failing_reporter_keeps_the_table_and_reports_each_file(inputs, template_model, third_party, tmp_path):
    out = tmp_path / "result.csv"
    result = _scan(template_model, *inputs, "--report", "explode", "--report", "json", "--out", out)
    assert result.exit_code == 1
    rows = _rows(out.read_text())
    assert [r["status"] for r in rows] == ["ok", "ok"] and [r["sg_1"] for r in rows] == ["225", "227"]
    for row, path in zip(rows, inputs):
        assert row["message"] == (
            f"reporter explode failed: RuntimeError: database unreachable while storing {path.name}"
        )
        assert f"sgmine: {path}: reporter explode failed: RuntimeError" in result.stderr
    assert "2 reporter call(s) failed" in result.stderr and "Traceback" not in result.stderr
    assert all(reporters.sidecar_path(p).is_file() for p in inputs)  # the other reporter still ran


def test_reporter_that_cannot_load_is_a_usage_error(inputs, template_model, third_party):
    result = _scan(template_model, *inputs, "--report", "broken")
    assert result.exit_code == 2
    assert "reporter 'broken' (sgmine_test_reporter:no_such_reporter) cannot be loaded" in result.stderr
    assert "AttributeError" in result.stderr and result.stdout == ""


def test_run_reporters_catches_sys_exit(inputs, template_model):
    from sgmine.model import Model
    from sgmine.scan import predict

    class Quitter:
        def report(self, prediction, context):
            sys.exit(3)

    model = Model(template_model)
    predictions = predict([str(inputs[0])], model=model)
    context = reporters.ReportContext(model.info, str(model.path), 3, "test")
    failures = reporters.run_reporters(predictions, [("quit", Quitter())], context)
    assert [(f.reporter, f.source) for f in failures] == [("quit", str(inputs[0]))]
    assert predictions[0].warnings == ["reporter quit failed: SystemExit: 3"]
