"""sgmine.files: the one atomic writer every module uses."""

import os
import stat

import pytest

from sgmine.files import atomic_save, atomic_write


def test_atomic_write_text_and_bytes_keep_no_temporary_file(tmp_path):
    atomic_write(tmp_path / "a.txt", "line\r\n")
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_bytes() == b"line\r\n" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "shared.csv"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_atomic_save_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("old")

    def failing(tmp):
        assert tmp.name.endswith("model.keras") and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("check failed")

    with pytest.raises(RuntimeError):
        atomic_save(failing, path)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    atomic_save(lambda tmp: tmp.write_text("new"), path)
    assert path.read_text() == "new"


def test_report_and_simulate_use_the_shared_writer():
    from sgmine import files, report, table

    assert table.atomic_write is files.atomic_write
    assert report is table  # the old name of the table module is that module
