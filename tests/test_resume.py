"""Interrupted scans (issue: reliability): a killed ``sgmine scan --out`` leaves no output or a
complete, valid one (the periodic saves), and ``--resume`` scores only what is missing."""

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sgmine.scan
import sgmine.table
from sgmine.cli import EXIT_INTERRUPTED, app
from sgmine.prediction import Candidate, Prediction
from sgmine.table import Checkpointer, csv_columns, read_previous, rows_to_keep

runner = CliRunner()
HEADER = ",".join(csv_columns(3))


def _copies(folder: Path, data_dir: Path, n: int) -> list[str]:
    """``n`` measured PDFs (Ni, Si, CdSe in turn) in ``folder``, in the order a scan lists them."""
    folder.mkdir(exist_ok=True)
    sources = [(data_dir / name).read_bytes() for name in ("Ni.gr", "Si.gr", "CdSe-nanoparticle.gr")]
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.gr"
        path.write_bytes(sources[i % 3])
        paths.append(str(path))
    return paths


@pytest.fixture
def reads(monkeypatch):
    """The files the scan reads (so a test sees which inputs were scored again)."""
    seen: list[str] = []
    real = sgmine.scan.read_gr

    def counting(path, *args, **kwargs):
        seen.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sgmine.scan, "read_gr", counting)
    return seen


def _scan(*args) -> "object":
    return runner.invoke(app, ["scan", *map(str, args)])


def _complete_rows(path: Path, inputs: list[str]) -> list[list[str]]:
    """The rows of a CSV output, after checking that it is whole: the header, every row with
    every column, rows for a leading part of ``inputs`` in their order."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER + "\n") and text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert all(len(row) == len(HEADER.split(",")) for row in rows)
    assert all(row[1] in ("ok", "error") for row in rows)
    assert [row[0] for row in rows] == inputs[: len(rows)]
    assert len(read_previous(path, "csv")) == len(rows)
    return rows


def test_resume_needs_out(data_dir, template_model):
    result = _scan(data_dir / "Ni.gr", "--model", template_model, "--resume")
    assert result.exit_code == 2 and "--resume needs --out" in result.stderr


def test_resume_scores_only_what_is_missing_and_retries_errors(tmp_path, data_dir, template_model, reads):
    a, b, c = _copies(tmp_path / "in", data_dir, 3)
    late = tmp_path / "in" / "late.gr"
    late.write_text("#L r G\n1.0 0.5\n")  # still being written when the first scan read it
    out = tmp_path / "out.csv"
    first = _scan(a, b, late, "--model", template_model, "-o", out)
    assert first.exit_code == 1
    before = out.read_text().splitlines()
    assert [line.split(",")[1] for line in before[1:]] == ["ok", "ok", "error"]

    late.write_bytes((data_dir / "Ni.gr").read_bytes())  # finished now
    reads.clear()
    second = _scan(a, b, late, c, "--model", template_model, "-o", out, "--resume")
    assert second.exit_code == 0, second.output
    assert sorted(reads) == sorted([str(late), c])  # the error row is tried again, ok rows kept
    assert "2 of 4 inputs already scored" in second.stderr
    after = out.read_text().splitlines()
    assert after[:3] == before[:3]  # kept rows unchanged, byte for byte
    assert [line.split(",")[:3] for line in after[3:]] == [[str(late), "ok", "225"], [c, "ok", "225"]]


def test_resume_when_everything_is_done_reads_nothing(tmp_path, data_dir, template_model, reads):
    inputs = _copies(tmp_path / "in", data_dir, 4)
    out = tmp_path / "out.csv"
    assert _scan(tmp_path / "in", "--model", template_model, "-o", out).exit_code == 0
    before = out.read_text()
    reads.clear()
    again = _scan(tmp_path / "in", "--model", template_model, "-o", out, "--resume")
    assert again.exit_code == 0 and reads == []
    assert out.read_text() == before and len(_complete_rows(out, inputs)) == 4


def test_resume_json_keeps_records_whole(tmp_path, data_dir, template_model, reads):
    out = tmp_path / "out.json"
    ni, si = str(data_dir / "Ni.gr"), str(data_dir / "Si.gr")
    assert _scan(ni, "--model", template_model, "-o", out).exit_code == 0
    first = json.loads(out.read_text())
    reads.clear()
    assert _scan(ni, si, "--model", template_model, "-o", out, "--resume").exit_code == 0
    assert reads == [si]
    records = json.loads(out.read_text())
    assert records[0] == first[0] and records[0]["metadata"]["composition"] == "Ni"
    assert [r["file"] for r in records] == [ni, si]


def test_resume_matches_paths_however_spelled_and_drops_others(tmp_path, data_dir, template_model, reads,
                                                               monkeypatch):
    a, b = _copies(tmp_path / "in", data_dir, 2)
    out = tmp_path / "out.csv"
    assert _scan(a, b, "--model", template_model, "-o", out).exit_code == 0
    monkeypatch.chdir(tmp_path)
    reads.clear()
    result = _scan("./in/000.gr", "--model", template_model, "-o", "out.csv", "--resume")
    assert result.exit_code == 0 and reads == []
    rows = _complete_rows(out, ["./in/000.gr"])
    assert len(rows) == 1  # the row of an input not given any more is dropped


@pytest.mark.parametrize(
    "previous, args, problem",
    [
        ("previous results\n", [], "is not an sgmine CSV output"),
        (None, ["-k", "2"], "has 3 candidates per file, not --top-k 2"),
        (None, ["--format", "json"], "--format json does not match --out"),
    ],
    ids=["foreign-file", "other-top-k", "other-format"],
)
def test_resume_refuses_an_output_it_cannot_continue(tmp_path, data_dir, template_model, previous, args, problem):
    out = tmp_path / "out.csv"
    ni = data_dir / "Ni.gr"
    if previous is None:
        assert _scan(ni, "--model", template_model, "-o", out).exit_code == 0
    else:
        out.write_text(previous)
    before = out.read_text()
    result = _scan(ni, data_dir / "Si.gr", "--model", template_model, "-o", out, "--resume", *args)
    assert result.exit_code == 2 and problem in result.stderr and len(result.stderr.splitlines()) == 1
    assert out.read_text() == before


def test_resume_refuses_rows_of_another_model(tmp_path, data_dir, template_model):
    out = tmp_path / "out.csv"
    row = Prediction(str(data_dir / "Ni.gr"), "ok", [Candidate(sg, "X", 0.3) for sg in (225, 1, 2)])
    out.write_text(sgmine.table.to_csv([row], 3))
    result = _scan(data_dir / "Ni.gr", "--model", template_model, "-o", out, "--resume")
    assert result.exit_code == 2 and "space group 1, which model" in result.stderr


def test_resume_without_an_output_yet_scores_everything(tmp_path, data_dir, template_model):
    out = tmp_path / "out.csv"
    result = _scan(data_dir / "Ni.gr", "--model", template_model, "-o", out, "--resume")
    assert result.exit_code == 0 and "does not exist yet" in result.stderr
    assert len(_complete_rows(out, [str(data_dir / "Ni.gr")])) == 1


def test_rows_to_keep():
    ok = Prediction("a.gr", "ok", [Candidate(225, "Fm-3m", 1.0)], warnings=["w"])
    bad = Prediction("b.gr", "error", message="b.gr: file is empty")
    kept = rows_to_keep(["a.gr", "b.gr", ("r", "g"), "./a.gr"], [ok, bad])
    assert sorted(kept) == [0, 3]
    assert kept[3].source == "./a.gr" and kept[3].candidates == ok.candidates
    kept[3].warnings.append("reporter failed")
    assert ok.warnings == ["w"]  # kept rows are copies


# Interrupts.

def test_interrupt_saves_the_rows_so_far_then_resume_finishes(tmp_path, data_dir, template_model, monkeypatch,
                                                              reads):
    inputs = _copies(tmp_path / "in", data_dir, 10)
    out = tmp_path / "out.csv"
    real_score = sgmine.scan._score_batch
    batches = []

    def ctrl_c_in_third_batch(batch, *args, **kwargs):
        batches.append(len(batch))
        if len(batches) == 3:
            raise KeyboardInterrupt
        return real_score(batch, *args, **kwargs)

    monkeypatch.setattr(sgmine.scan, "_score_batch", ctrl_c_in_third_batch)
    result = _scan(tmp_path / "in", "--model", template_model, "-o", out, "--batch-size", "2")
    assert result.exit_code == EXIT_INTERRUPTED
    assert "interrupted after 4 of 10 inputs" in result.stderr and "--resume" in result.stderr
    assert len(_complete_rows(out, inputs)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.csv"]  # no temporary file left

    monkeypatch.setattr(sgmine.scan, "_score_batch", real_score)
    reads.clear()
    resumed = _scan(tmp_path / "in", "--model", template_model, "-o", out, "--resume")
    assert resumed.exit_code == 0
    assert sorted(reads) == inputs[4:]
    assert len(_complete_rows(out, inputs)) == 10


def test_interrupt_before_anything_is_scored_leaves_the_previous_file(tmp_path, data_dir, template_model,
                                                                      monkeypatch):
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sgmine.scan, "_score_batch", interrupted)
    result = _scan(data_dir / "Ni.gr", "--model", template_model, "-o", out)
    assert result.exit_code == EXIT_INTERRUPTED and "interrupted after 0 of 1" in result.stderr
    assert out.read_text() == "previous results\n"
    to_stdout = _scan(data_dir / "Ni.gr", "--model", template_model)
    assert to_stdout.exit_code == EXIT_INTERRUPTED and to_stdout.stdout == ""


# Periodic saves.

@pytest.fixture
def writes(monkeypatch):
    """Every text the scan writes atomically (periodic saves and the final table), in order."""
    texts: list[str] = []
    real = sgmine.table.atomic_write

    def recording(path, text):
        texts.append(text)
        real(path, text)

    monkeypatch.setattr(sgmine.table, "atomic_write", recording)
    return texts


def test_long_scan_saves_as_it_goes(tmp_path, data_dir, template_model, writes, monkeypatch):
    inputs = _copies(tmp_path / "in", data_dir, 5)
    out = tmp_path / "out.csv"
    monkeypatch.setattr(Checkpointer, "due", lambda self: True)  # a save after every file
    result = _scan(tmp_path / "in", "--model", template_model, "-o", out, "--batch-size", "2")
    assert result.exit_code == 0
    counts = [len(list(csv.DictReader(io.StringIO(text)))) for text in writes]
    assert counts == [1, 2, 3, 4, 5, 5]  # five saves, then the final table
    assert all(text.startswith(HEADER + "\n") for text in writes)
    assert len(_complete_rows(out, inputs)) == 5


def test_no_saves_before_the_end_with_save_every_0(tmp_path, data_dir, template_model, writes):
    _copies(tmp_path / "in", data_dir, 6)
    result = _scan(tmp_path / "in", "--model", template_model, "-o", tmp_path / "out.csv",
                   "--batch-size", "1", "--save-every", "0")
    assert result.exit_code == 0 and len(writes) == 1


def test_failed_save_is_a_warning_and_the_scan_goes_on(tmp_path, data_dir, template_model, monkeypatch):
    inputs = _copies(tmp_path / "in", data_dir, 6)
    out = tmp_path / "out.csv"
    real = sgmine.table.atomic_write
    calls = []

    def disk_full_once(path, text):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(sgmine.table, "atomic_write", disk_full_once)
    monkeypatch.setattr(Checkpointer, "due", lambda self: True)
    result = _scan(tmp_path / "in", "--model", template_model, "-o", out, "--batch-size", "1")
    assert result.exit_code == 0
    assert "warning: cannot save progress to" in result.stderr and "No space left on device" in result.stderr
    assert len(_complete_rows(out, inputs)) == 6


def test_checkpointer_timing(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(sgmine.table.time, "monotonic", lambda: now[0])
    never = Checkpointer(tmp_path / "a.csv", "csv", 3, interval=0)
    now[0] += 1e6
    assert not never.due()
    saver = Checkpointer(tmp_path / "b.csv", "csv", 3, interval=30)
    now[0] += 29
    assert not saver.due()
    now[0] += 1
    assert saver.due()
    saver.save([])
    assert not saver.due() and saver.saves == 1
    assert (tmp_path / "b.csv").read_text() == HEADER + "\n"


# A real process, killed mid-scan.

# Each file takes 5 ms more to read, so that 300 files take long enough to be killed mid-run;
# SIGINT is set to raise KeyboardInterrupt as in a terminal (a background job may ignore it).
SLOW_SGMINE = (
    "import signal, time, sgmine.scan as s\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "read = s.read_gr\n"
    "s.read_gr = lambda *a, **k: (time.sleep(0.005), read(*a, **k))[1]\n"
    "from sgmine.cli import main\n"
    "main()\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killed_scan_leaves_a_valid_output_and_resume_finishes(tmp_path, data_dir, template_model, reads, sig):
    inputs = _copies(tmp_path / "in", data_dir, 300)
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SGMINE, "scan", str(tmp_path / "in"), "--model", str(template_model),
         "-o", str(out), "--batch-size", "10", "--save-every", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == EXIT_INTERRUPTED, stderr
        assert "interrupted after" in stderr and "--resume" in stderr
        assert not list(tmp_path.glob(".out.csv.*"))  # the save it was in (if any) cleaned up

    done = _complete_rows(out, inputs)
    assert 0 < len(done) < 300
    kept = out.read_text().splitlines()

    reads.clear()
    result = _scan(tmp_path / "in", "--model", template_model, "-o", out, "--resume")
    assert result.exit_code == 0, result.output
    assert sorted(reads) == inputs[len(done):]  # the saved rows are not scored again
    rows = _complete_rows(out, inputs)
    assert len(rows) == 300 and all(row[1] == "ok" for row in rows)
    assert out.read_text().splitlines()[: len(kept)] == kept
