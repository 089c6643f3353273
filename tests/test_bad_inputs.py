"""Broken and hostile inputs: each is scored with a warning or becomes an error row naming the
file and the problem; never a traceback, never a lost batch (issue: reliability)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgmine import predict
from sgmine.gr import ReadError, read_gr

BAD = Path(__file__).parent / "data" / "bad"
EXPECTED = list(csv.DictReader(open(BAD / "EXPECTED.csv", encoding="utf-8")))


def test_corpus_is_complete():
    on_disk = {p.name for p in BAD.glob("*.gr")}
    assert on_disk == {row["file"] for row in EXPECTED}
    assert len(on_disk) >= 25


@pytest.mark.parametrize("case", EXPECTED, ids=[row["file"] for row in EXPECTED])
def test_each_bad_file(case, template_model):
    (pred,) = predict([BAD / case["file"]], model=template_model, top_k=8)
    assert pred.status == case["outcome"], pred.message
    if pred.ok:
        assert sum(c.probability for c in pred.candidates) == pytest.approx(1.0, abs=1e-5)
        assert case["text"] in " | ".join(pred.warnings)
        if not case["text"]:
            assert pred.warnings == []
    else:
        assert case["text"] in pred.message
        assert pred.message.startswith(str(BAD / case["file"]))


@pytest.mark.parametrize(
    "name", ["comma_separated.gr", "semicolon_separated.gr", "tab_separated.gr", "crlf_line_ends.gr",
             "utf8_bom.gr", "extra_columns.gr", "latin1_header.gr"]
)
def test_format_variants_give_the_same_curve(name):
    plain = np.loadtxt(BAD / "tab_separated.gr")
    curve = read_gr(BAD / name)
    np.testing.assert_array_equal(curve.r, plain[:, 0])
    np.testing.assert_array_equal(curve.g, plain[:, 1])


def test_header_survives_bom_crlf_and_latin1():
    for name in ("utf8_bom.gr", "crlf_line_ends.gr", "latin1_header.gr"):
        curve = read_gr(BAD / name)
        assert curve.qmax == 25.0 and curve.metadata["composition"] == "NiO", name


def test_whole_corpus_in_one_scan_keeps_every_row(tmp_path, template_model):
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "sgmine.cli", "scan", str(BAD), "--model", str(template_model), "-o", str(out)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [Path(r["file"]).name for r in rows] == sorted(row["file"] for row in EXPECTED)
    expected = {row["file"]: row["outcome"] for row in EXPECTED}
    assert all(r["status"] == expected[Path(r["file"]).name] for r in rows)


# Inputs that have to be made at test time: file-system oddities.

def test_directory_named_like_a_file(tmp_path, template_model):
    (tmp_path / "scan.gr").mkdir()
    (pred,) = predict([tmp_path / "scan.gr"], model=template_model)
    assert not pred.ok and "is a directory" in pred.message


def test_unreadable_file(tmp_path, monkeypatch, data_dir):
    path = tmp_path / "locked.gr"
    path.write_bytes((data_dir / "Ni.gr").read_bytes())
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make open() behave as for a normal user
        real_open = open

        def deny(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(ReadError, match=f"{path}: permission denied"):
        read_gr(path)


def test_file_growing_while_read(tmp_path, monkeypatch, data_dir):
    path = tmp_path / "growing.gr"
    path.write_bytes((data_dir / "Ni.gr").read_bytes()[:20000])
    real_stat = Path.stat

    def stat_then_writer_appends(self, *args, **kwargs):
        result = real_stat(self, *args, **kwargs)
        if self == path:
            with open(path, "a") as handle:  # the instrument's writer adds rows meanwhile
                handle.write("60.01 0.001\n")
        return result

    monkeypatch.setattr(Path, "stat", stat_then_writer_appends)
    with pytest.raises(ReadError, match="changed size while being read"):
        read_gr(path)


def test_symlink_loop_and_broken_link(tmp_path, template_model):
    (tmp_path / "a.gr").symlink_to(tmp_path / "b.gr")
    (tmp_path / "b.gr").symlink_to(tmp_path / "a.gr")
    (tmp_path / "dangling.gr").symlink_to(tmp_path / "nowhere.gr")
    preds = predict([tmp_path / "a.gr", tmp_path / "dangling.gr"], model=template_model)
    assert [p.status for p in preds] == ["error", "error"]
    assert "symbolic links" in preds[0].message
    assert "broken symbolic link" in preds[1].message


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.gr"
    os.mkfifo(fifo)
    with pytest.raises(ReadError, match="not a regular file"):
        read_gr(fifo)


def test_path_with_spaces_and_non_ascii(tmp_path, data_dir, template_model):
    folder = tmp_path / "beam time Ångström ñ 测试"
    folder.mkdir()
    path = folder / "Ni sample é.gr"
    path.write_bytes((data_dir / "Ni.gr").read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "sgmine.cli", "scan", str(folder), "--model", str(template_model)],
        capture_output=True, text=True, encoding="utf-8",
    )
    assert proc.returncode == 0, proc.stderr
    assert str(path) in proc.stdout and ",ok,225," in proc.stdout


@pytest.mark.slow
def test_very_large_file(tmp_path, template_model):
    """A 100 MB file (r to 400 Å at 0.001 Å, with wide extra columns) is read and scored."""
    r = np.arange(0.0, 400.0, 0.001)
    g = np.sin(2 * r) * np.exp(-r / 50)
    pad = " 0.12345678901234567890e-05" * 8
    path = tmp_path / "huge.gr"
    with open(path, "w") as handle:
        handle.write("qmax = 25\n")
        for start in range(0, r.size, 50000):
            handle.write("".join(f"{a:.3f} {b:.6f}{pad}\n" for a, b in zip(r[start:start + 50000], g[start:start + 50000])))
    assert path.stat().st_size > 90e6
    (pred,) = predict([path], model=template_model)
    assert pred.ok and pred.qmax == 25.0 and pred.warnings == []
