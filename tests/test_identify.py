"""`sgmine identify` (plugins/sgmine-diffpy): the stretch screen against direct simulation, the
stretch approximation's error, the library build from a CIF table, user CIF folders, bad inputs,
and one end-to-end run on the measured Ni.gr with the small examples/cifs library.
"""

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("sgmine_diffpy", reason="the sgmine-diffpy plugin is not installed (pip install -e plugins/sgmine-diffpy)")

from sgmine.cli import app  # noqa: E402
from sgmine.simulate import PDFParams, pair_table, pdf  # noqa: E402
from sgmine_diffpy import screen as S  # noqa: E402
from sgmine_diffpy.identify import IdentifyRow, combined_ranking, open_library  # noqa: E402
from sgmine_diffpy.structlib import StructureLibrary, build, cell_from_cif, thin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CIFS = ROOT / "examples" / "cifs"
NI_GR = ROOT / "examples" / "data" / "Ni.gr"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SGMINE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def small():
    """examples/cifs as a StructureLibrary, with its x-ray screening curves."""
    cells = [cell_from_cif(p.stem, f"cif:{p}", p.read_text()) for p in sorted(CIFS.glob("*.cif"))]
    lib = StructureLibrary.from_cells(cells)
    curves = S.compute_curves([lib.structure(i) for i in range(len(lib))], "xray", workers=1)
    return lib, curves


def _direct(structure, strain, params):
    table = pair_table(structure, rmax=35.0)
    r = np.arange(0.5, 30.0, 0.01)
    return r, pdf(table, r, params, strain=strain)


def test_screen_finds_the_simulated_structure_and_its_strain(small):
    lib, curves = small
    ni = list(lib.ids).index("Ni")
    params = PDFParams(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3)
    r, g = _direct(lib.structure(ni), 0.037, params)
    result = S.screen(r, g, S.prepare(curves, qmax=25.0, qdamp=0.04), curves=curves, qmax=25.0, qdamp=0.04)
    best = result.best(3)
    assert lib.ids[best[0]] == "Ni"
    assert result.rw[best[0]] < 0.05
    assert abs(result.stretch[best[0]] - 1.037) < 0.002
    assert result.rw[best[1]] > 0.5  # the decoys are far off


@pytest.mark.parametrize("strain", [-0.045, -0.02, 0.02, 0.045])
def test_stretch_approximation_error(small, strain):
    """G(r/s)/s² of the stored curve against a direct simulation with the lattice strained by
    s − 1: the stretch also widens the peaks, which costs Rw ≈ 0.01 per % of stretch at most."""
    lib, curves = small
    si = list(lib.ids).index("Si")
    params = PDFParams(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3)
    r, g = _direct(lib.structure(si), strain, params)
    m = S.prepare(curves[si:si + 1], qmax=25.0 * (1 + strain), qdamp=0.04 * (1 + strain))
    rk, gk = S.measured_grid(r, g)
    rw = S._rw_at(m, rk, gk, float(gk @ gk), 1.0 + strain)[0]
    assert rw < 0.012 * abs(strain) * 100 + 0.02


def test_prepare_matches_direct_qmax_and_qdamp(small):
    lib, curves = small
    ni = list(lib.ids).index("Ni")
    for qmax, qdamp in ((18.0, 0.06), (30.0, 0.02)):
        r, g = _direct(lib.structure(ni), 0.0, PDFParams(qmax=qmax, qdamp=qdamp, uiso=0.005, delta2=2.3))
        m = S.prepare(curves[ni:ni + 1], qmax=qmax, qdamp=qdamp)[0]
        sel = (r >= 1.5) & (r <= 30)
        approx = np.interp(r[sel], S.curve_grid(), m)
        assert np.sqrt(np.sum((approx - g[sel]) ** 2) / np.sum(g[sel] ** 2)) < 0.04  # measured 0.034 at Qmax 18


NI_CIF = (CIFS / "Ni.cif").read_text()
BAD_CIF = "data_x\n_cell_length_a 3\nloop_\n_atom_site_label\nXx1\n"


def test_library_build_from_a_tiny_table(tmp_path):
    table = tmp_path / "t.csv.gz"
    with gzip.open(table, "wt", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["id", "licence", "cif"])
        w.writerow(["ni-1", "CC-BY-4.0", NI_CIF])
        w.writerow(["ni-secret", "training only", NI_CIF])
        w.writerow(["bad", "CC0", BAD_CIF])
        w.writerow(["si-1", "CC0", (CIFS / "Si.cif").read_text()])
    lib, messages = build([table], prototypes=True)
    ids = list(lib.ids)
    assert "ni-secret" not in ids and "bad" not in ids
    assert lib.space_groups[ids.index("ni-1")] == 225 and lib.space_groups[ids.index("si-1")] == 227
    assert np.diff(lib.offsets)[ids.index("ni-1")] == 1  # stored as the primitive cell
    assert any("training only" in m for m in messages) and any(m.startswith("bad") for m in messages)
    assert {"proto-fcc-2.75", "proto-diamond-2.35"} <= set(ids)
    path = tmp_path / "lib.npz"
    lib.save(path)
    again = StructureLibrary.load(path)
    assert list(again.ids) == ids and again.digest == StructureLibrary.load(path).digest
    thinned = thin(again, per_type=1)
    assert len(thinned) <= len(again) and "ni-1" not in set(thinned.ids) - set(ids)


def test_user_cif_folder_is_read_once_and_skips_bad_files(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for p in CIFS.glob("*.cif"):
        (folder / p.name).write_text(p.read_text())
    (folder / "broken.cif").write_text(BAD_CIF)
    lib = open_library(folder)
    assert len(lib.structures) == 7 and len(lib.skipped) == 1 and "broken" in lib.skipped[0]
    cached = list((tmp_path / "cache" / "identify").glob("cifs-*.npz"))
    assert len(cached) == 1
    assert len(open_library(folder).skipped) == 1  # from the cache


def test_combined_ranking_rule():
    rows = [IdentifyRow("f", 1, "a", "X", 225, "Fm-3m", rw=0.10), IdentifyRow("f", 2, "b", "X", 139, "I4/mmm", rw=0.09)]
    cnn = [(225, "Fm-3m", 0.8), (139, "I4/mmm", 0.1), (2, "P-1", 0.1)]
    ranking = combined_ranking(rows, cnn)
    assert [g for g, _, _ in ranking] == [225, 139, 2]  # 0.10-0.08 < 0.09-0.01 < 1-0.01


def test_bad_inputs(tmp_path):
    missing = runner.invoke(app, ["identify", str(tmp_path / "nope.gr"), "--library", str(CIFS)])
    assert missing.exit_code == 1 and ",error," in missing.stdout  # an error row, as in scan
    bad = tmp_path / "bad.gr"
    bad.write_text("not a pdf\n")
    result = runner.invoke(app, ["identify", str(bad), "--library", str(CIFS)])
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["status"] == "error" and rows[0]["message"]
    assert runner.invoke(app, ["identify", str(NI_GR), "--library", str(tmp_path / "none")]).exit_code == 2
    assert runner.invoke(app, ["identify", str(NI_GR), "--library", str(CIFS), "--radiation", "gamma"]).exit_code == 2


def test_identify_ni_with_the_example_cifs(tmp_path):
    out = tmp_path / "ni.csv"
    result = runner.invoke(app, ["identify", str(NI_GR), "--library", str(CIFS), "--top", "2", "--out", str(out),
                                 "--plots", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["structure_id"] == "Ni" and rows[0]["space_group"] == "225" and float(rows[0]["rw"]) < 0.15
    summary = list(csv.DictReader((tmp_path / "ni.summary.csv").open()))
    assert summary[0]["best_space_group"] == "225" and summary[0]["ranking"].startswith("225 ")
    assert (tmp_path / "Ni.gr.identify.png").stat().st_size > 1000
