"""`sgmine identify` on many files (plugins/sgmine-diffpy, issue #33 items 5 and 6): each answer's
refined structure and fit handed over (--structures), files in parallel (--jobs) and on a Dask
cluster (--scheduler), each giving the table of one file after another.

The measured Ni.gr, in two copies with an unreadable file between them, against examples/cifs
(--top 1, fitted to 20 Å). The copies leave out the header's ``composition = Ni`` line, which
would add five structures made from the composition to each file's refinements (7 s -> 37 s).
"""

import csv
import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("sgmine_diffpy", reason="the sgmine-diffpy plugin is not installed (pip install -e plugins/sgmine-diffpy)")

from sgmine.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CIFS = ROOT / "examples" / "cifs"
NI_GR = ROOT / "examples" / "data" / "Ni.gr"
OPTIONS = ["--library", str(CIFS), "--top", "1", "--rmax", "20"]
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SGMINE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two copies of Ni.gr without the composition line, and an unreadable file between them."""
    folder = tmp_path_factory.mktemp("data")
    text = "".join(line for line in NI_GR.read_text().splitlines(keepends=True) if not line.startswith("composition"))
    (folder / "a.gr").write_text(text)
    (folder / "bad.gr").write_text("not a pdf\n")
    (folder / "c.gr").write_text(text)
    return [str(folder / name) for name in ("a.gr", "bad.gr", "c.gr")]


@pytest.fixture(scope="module")
def serial(files, tmp_path_factory):
    """One file after another (--jobs 1), the answers handed over to a folder made by the command."""
    folder = tmp_path_factory.mktemp("serial")
    out, structures = folder / "rows.csv", folder / "structures" / "new"
    result = runner.invoke(app, ["identify", *files, *OPTIONS, "--out", str(out), "--structures", str(structures)])
    return SimpleNamespace(result=result, rows=out.read_text(), structures=structures,
                           summary=list(csv.DictReader((folder / "rows.summary.csv").open())))


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_one_bad_file_costs_its_row_and_exit_status_1(serial, files):
    assert serial.result.exit_code == 1, serial.result.output
    rows = _rows(serial.rows)
    assert [r["file"] for r in rows if r["status"] == "error"] == [files[1]]
    assert [s["best_formula"] for s in serial.summary] == ["Ni", "", "Ni"]
    assert f"{files[0]}: best Ni Ni Fm-3m" in serial.result.stderr and "; 3 of 3 files done\n" in serial.result.stderr


def test_structures_are_the_answers_refined_structure_and_fit(serial, files):
    """<file>.identify.cif reads back with diffpy.structure as the refined cell of Ni; the .fgr
    loads with numpy, its columns r, Gobs, Gcalc, Gdiff giving the row's Rw."""
    from diffpy.structure import loadStructure

    row = next(r for r in _rows(serial.rows) if r["file"] == files[0] and r["structure_id"] == serial.summary[0]["best_structure"])
    structure = loadStructure(str(serial.structures / "a.gr.identify.cif"))
    assert [atom.element for atom in structure] == ["Ni"] * 4
    assert structure.lattice.abcABG() == pytest.approx([float(row[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")], abs=1e-5)
    assert 3.50 < structure.lattice.a < 3.55 and 0.001 < structure[0].Uisoequiv < 0.02
    r, g_obs, g_calc, g_diff = np.loadtxt(serial.structures / "a.gr.identify.fgr").T
    assert r[0] == pytest.approx(1.5) and r[-1] == pytest.approx(20.0) and np.allclose(g_obs - g_calc, g_diff, atol=1e-6)
    assert np.sqrt(np.sum(g_diff ** 2) / np.sum(g_obs ** 2)) == pytest.approx(float(row["rw"]), abs=1e-4)
    assert sorted(p.name for p in serial.structures.iterdir()) == ["a.gr.identify.cif", "a.gr.identify.fgr",
                                                                  "c.gr.identify.cif", "c.gr.identify.fgr"]
    assert f"{files[1]}: no structure written to {serial.structures}: it could not be identified" in serial.result.stderr


def test_a_file_that_nothing_fits_gets_no_structure(files, tmp_path):
    library = tmp_path / "cifs"
    library.mkdir()
    shutil.copy(CIFS / "CuPd-CsCl.cif", library)
    structures = tmp_path / "structures"
    result = runner.invoke(app, ["identify", files[0], "--library", str(library), "--rmax", "20", "--structures", str(structures)])
    assert result.exit_code == 1, result.output  # no answer
    assert f"{files[0]}: no structure written to {structures}: nothing fits" in result.stderr
    assert list(structures.iterdir()) == []


def test_jobs_2_gives_the_serial_table(serial, files, tmp_path):
    out, structures = tmp_path / "rows.csv", tmp_path / "structures"
    result = runner.invoke(app, ["identify", *files, *OPTIONS, "--jobs", "2", "--out", str(out), "--structures", str(structures)])
    assert result.exit_code == 1, result.output
    assert out.read_text() == serial.rows
    assert [s["best_formula"] for s in csv.DictReader((tmp_path / "rows.summary.csv").open())] == ["Ni", "", "Ni"]
    assert sorted(result.stderr.count(f"; {k} of 3 files done\n") for k in (1, 2, 3)) == [1, 1, 1]
    assert (structures / "a.gr.identify.cif").read_text() == (serial.structures / "a.gr.identify.cif").read_text()


def test_a_dask_cluster_gives_the_serial_table(serial, files, tmp_path):
    """One task per file on a LocalCluster of two worker processes, daemonic as Dask makes them:
    each file's process still starts its refinement processes."""
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "rows.csv"
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        result = runner.invoke(app, ["identify", *files, *OPTIONS, "--scheduler", cluster.scheduler_address, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert out.read_text() == serial.rows


def test_batch_options_that_cannot_work(files, tmp_path, monkeypatch):
    from sgmine_diffpy import batch

    monkeypatch.setattr(batch, "SCHEDULER_TIMEOUT", 1.0)
    out = tmp_path / "rows.csv"
    nobody = runner.invoke(app, ["identify", files[0], *OPTIONS, "--scheduler", "tcp://127.0.0.1:9", "--out", str(out)])
    assert nobody.exit_code == 2 and "--scheduler tcp://127.0.0.1:9: no Dask scheduler answered within 1 s" in nobody.stderr
    assert not out.exists()
    both = runner.invoke(app, ["identify", files[0], *OPTIONS, "--scheduler", "tcp://127.0.0.1:9", "--jobs", "2"])
    assert both.exit_code == 2 and "not both" in both.stderr
    assert runner.invoke(app, ["identify", files[0], *OPTIONS, "--jobs", "-1"]).exit_code == 2
    (tmp_path / "file").write_text("")
    taken = runner.invoke(app, ["identify", files[0], *OPTIONS, "--structures", str(tmp_path / "file")])
    assert taken.exit_code == 2 and "not a directory" in taken.stderr
