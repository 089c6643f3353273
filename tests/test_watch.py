"""``sgmine watch`` (issue #17): files are scored as they land, once complete, into a table that
survives restarts; real subprocesses and real files, with bounded (generous) waits."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sgmine.model import Model
from sgmine.table import csv_columns
from sgmine.watch import STATE_COLUMNS, WatchTable, natural_key

#: Start-up (importing onnxruntime, loading the model) can take long on a busy machine.
START_TIMEOUT = 180.0
#: Time for one file to be seen, settle and be scored.
SCORE_TIMEOUT = 90.0
SETTLE = 1.0


def _table(path: Path) -> list[dict[str, str]]:
    """The rows of a watch table, after checking it is whole (header, every column)."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith(",".join([*csv_columns(3), *STATE_COLUMNS]) + "\n") and text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    names = [Path(row["file"]).name for row in rows]
    assert len(set(names)) == len(names), f"a file has two rows: {names}"
    return rows


def _names(path: Path) -> list[str]:
    return [Path(row["file"]).name for row in _table(path)] if path.exists() else []


class Watch:
    """``sgmine watch`` in a subprocess, its stderr collected line by line."""

    def __init__(self, folder: Path, out: Path, model: Path, *extra: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sgmine.cli", "watch", str(folder), "--out", str(out), "--model", str(model),
             "--settle", str(SETTLE), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, what, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if what():
            return
        self.stop_hard()
        pytest.fail(f"{message} (after {timeout:.0f} s); stderr:\n" + "\n".join(self.lines))

    def logged(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=SCORE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop_hard()
            pytest.fail("sgmine watch did not stop on " + signal.Signals(sig).name + "; stderr:\n" + "\n".join(self.lines))
        self._reader.join(timeout=10)
        return code

    def stop_hard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def started(tmp_path, template_model):
    """Start ``sgmine watch`` on ``tmp_path/in`` into ``tmp_path/table.csv``; stops it at the end."""
    running: list[Watch] = []

    def start(*extra: str) -> Watch:
        folder, out = tmp_path / "in", tmp_path / "table.csv"
        folder.mkdir(exist_ok=True)
        watch = Watch(folder, out, template_model, *extra)
        running.append(watch)
        watch.wait_for(lambda: watch.logged("sgmine: watching") and out.exists(), START_TIMEOUT,
                       "sgmine watch did not start")
        return watch

    yield start
    for watch in running:
        watch.stop_hard()


def _write_slowly(path: Path, data: bytes, chunks: int = 8, pause: float = 0.25) -> None:
    """Write ``data`` in ``chunks`` parts with pauses (shorter than the settle time), as a
    detector pipeline writing a long file does."""
    step = -(-len(data) // chunks)
    with open(path, "wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start:start + step])
            handle.flush()
            os.fsync(handle.fileno())
            time.sleep(pause)


def test_watch_scores_each_file_once_complete_survives_restart_and_stops_cleanly(tmp_path, data_dir, started):
    folder, out = tmp_path / "in", tmp_path / "table.csv"
    watch = started()
    assert _names(out) == []  # the (empty) table exists as soon as the watch runs

    (folder / "T300K.gr").write_bytes((data_dir / "Ni.gr").read_bytes())
    watch.wait_for(lambda: _names(out) == ["T300K.gr"], SCORE_TIMEOUT, "the first file got no row")

    # a file written slowly, in chunks: never scored half-way
    si = (data_dir / "Si.gr").read_bytes()
    _write_slowly(folder / "T90K.gr", si)
    assert "T90K.gr" not in _names(out) or watch.logged("T90K.gr:") == 1
    watch.wait_for(lambda: len(_names(out)) == 2, SCORE_TIMEOUT, "the slowly written file got no row")
    rows = _table(out)
    assert [Path(r["file"]).name for r in rows] == ["T90K.gr", "T300K.gr"]  # natural order: 90 < 300
    assert watch.logged("T90K.gr:") == 1, "the slowly written file was scored more than once (half-way?)"
    slow = rows[0]
    assert slow["status"] == "ok" and float(slow["r_max"]) == pytest.approx(30.0) and slow["message"] == ""
    assert int(slow["size"]) == len(si)

    # stop with Ctrl-C: exit 0, the table saved
    assert watch.stop(signal.SIGINT) == 0
    assert watch.logged("sgmine: stopped; 2 files") == 1
    before = _table(out)

    # restart: nothing scored again; a new file gains exactly one row; renames and deletions followed
    again = started()
    again.wait_for(lambda: again.logged("2 unchanged files already scored"), SCORE_TIMEOUT, "the restart kept nothing")
    assert _table(out) == before
    (folder / "T200K.gr").write_bytes((data_dir / "CdSe-nanoparticle.gr").read_bytes())
    again.wait_for(lambda: _names(out) == ["T90K.gr", "T200K.gr", "T300K.gr"], SCORE_TIMEOUT,
                   "the file added after the restart got no row")
    (folder / "T300K.gr").rename(folder / "T400K.gr")
    again.wait_for(lambda: _names(out) == ["T90K.gr", "T200K.gr", "T400K.gr"], SCORE_TIMEOUT,
                   "the renamed file's row did not follow it")
    (folder / "T200K.gr").unlink()
    again.wait_for(lambda: _names(out) == ["T90K.gr", "T400K.gr"], SCORE_TIMEOUT, "the deleted file kept its row")
    assert again.logged("T90K.gr:") == 0 and again.logged("T300K.gr:") == 1  # not scored again, only renamed
    assert again.logged("T300K.gr: renamed to T400K.gr") == 1
    assert again.logged("T200K.gr:") == 2  # scored once, then gone
    renamed = {Path(r["file"]).name: r for r in _table(out)}["T400K.gr"]
    assert {k: v for k, v in renamed.items() if k != "file"} == {k: v for k, v in before[1].items() if k != "file"}

    # SIGTERM (a batch scheduler, systemd) ends it cleanly too
    assert again.stop(signal.SIGTERM) == 0
    assert _names(out) == ["T90K.gr", "T400K.gr"]


def test_watch_polls_when_asked(tmp_path, data_dir, started):
    """``--poll`` (network file systems): no file events, the folder is listed every so often."""
    folder, out = tmp_path / "in", tmp_path / "table.csv"
    (folder).mkdir()
    (folder / "Ni.gr").write_bytes((data_dir / "Ni.gr").read_bytes())
    (folder / "notes.txt").write_text("not a PDF")
    watch = started("--poll", "0.3")
    assert watch.logged("listing it every 0.3 s") == 1
    watch.wait_for(lambda: _names(out) == ["Ni.gr"], SCORE_TIMEOUT, "the file already there got no row")
    assert watch.stop(signal.SIGINT) == 0


# -- the table's logic, in-process, with a clock the test controls ---------------------------


@pytest.fixture
def table(tmp_path, template_model):
    folder = tmp_path / "in"
    folder.mkdir()
    return WatchTable(folder, out=tmp_path / "t.csv", model=Model(template_model), settle=2.0)


def test_a_file_is_scored_only_once_its_size_and_mtime_have_settled(table, data_dir):
    path = table.directory / "a.gr"
    data = (data_dir / "Ni.gr").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not table.update(now=0.0)
    assert not table.update(now=1.9)
    with open(path, "ab") as handle:  # still being written: the clock starts again
        handle.write(data[len(data) // 2:])
    assert not table.update(now=2.5)
    assert not table.update(now=4.0)
    changes = table.update(now=4.6)
    assert changes.scored == ["a.gr"]
    assert table.rows["a.gr"].prediction.r_max == pytest.approx(30.0)
    assert not table.update(now=10.0)  # unchanged: not scored again


def test_a_restarted_table_keeps_unchanged_files_and_rescores_changed_ones(table, data_dir, template_model):
    for name in ("a.gr", "b.gr"):
        (table.directory / name).write_bytes((data_dir / "Ni.gr").read_bytes())
    table.update(now=0.0)
    assert sorted(table.update(now=5.0).scored) == ["a.gr", "b.gr"]
    os.utime(table.directory / "b.gr", ns=(0, 10**18))  # rewritten while no watch ran
    again = WatchTable(table.directory, out=table.out, model=Model(template_model), settle=2.0)
    assert again.resume() == 1
    again.update(now=0.0)
    assert again.update(now=5.0).scored == ["b.gr"]


def test_a_table_of_another_kind_is_refused(table):
    table.out.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="not an sgmine table"):
        table.resume()


def test_natural_order():
    names = ["T300K.gr", "T90K.gr", "x0.5.gr", "T1000K.gr", "x0.12.gr"]
    assert sorted(names, key=natural_key) == ["T90K.gr", "T300K.gr", "T1000K.gr", "x0.12.gr", "x0.5.gr"]


def test_the_table_in_the_watched_folder_is_not_scored_and_a_vanished_folder_keeps_the_rows(tmp_path, data_dir,
                                                                                             template_model):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.gr").write_bytes((data_dir / "Ni.gr").read_bytes())
    table = WatchTable(folder, out=folder / "results.csv", model=Model(template_model), pattern="*", settle=0.5)
    table.update(now=0.0)
    assert table.update(now=1.0).scored == ["a.gr"]
    assert not table.update(now=2.0) and not table.update(now=3.0)  # its own table is no input
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    assert not table.update(now=4.0)
    assert list(table.rows) == ["a.gr"]  # an unmounted folder does not empty the table
