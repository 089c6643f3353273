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


def test_screen_agrees_with_diffpy_morph(small):
    """The vectorised screen against diffpy.morph (scale and stretch refined by least squares,
    started at the screen's stretch) on the same pairs: stored curve × measured Ni.gr."""
    morph = pytest.importorskip("diffpy.morph.morphpy", reason="diffpy.morph is not installed")
    from scipy.interpolate import CubicSpline

    from sgmine.gr import read_gr

    lib, curves = small
    curve = read_gr(NI_GR)
    prepared = S.prepare(curves, qmax=25.0, qdamp=None)
    result = S.screen(curve.r, curve.g, prepared, curves=curves, qmax=25.0)
    fine = np.arange(0.0, 35.9, 0.005)  # diffpy.morph interpolates linearly: give it a fine grid
    keep = curve.r <= 31.0
    target = np.c_[curve.r[keep], curve.g[keep]]
    for name in ("Ni", "CuPd-CsCl"):  # the match and the best-screened decoy
        i = list(lib.ids).index(name)
        info, _ = morph.morph_arrays(np.c_[fine, CubicSpline(S.curve_grid(), prepared[i])(fine)], target, scale=1.0,
                                     stretch=float(result.stretch[i]) - 1.0, xmin=1.5, xmax=30.0)
        assert abs(result.rw[i] - info["Rw"]) < 0.012, (name, result.rw[i], info["Rw"])  # measured 0.008 (Ni), 0.000
        assert abs(result.stretch[i] - 1.0 - info["stretch"]) < 0.002


PDFGETN_HEADER = """History written: Wed Oct 12 14:46:29 2005
##### Vanadium     runCorrection=T
##### Sample Material     numElements=1     NormLaue=0.0
Element relAtomNum atomMass atomCoherCS atomIncoherCS atomAbsorpCS
  Ni        1.0000   58.693     13.3000        5.2000      4.49000
## Damp     Qmin=0.85     Qmax=35.00     startDampQ=35.00    QAveMin=0.6
##### start data
#L r G(r) dr dG(r)
"""
PDFGETX2_HEADER = """History written: Thu Jul  5 18:14:07 2007
title=X-ray PDF
## X-Ray   radiationtype=3
## S(q)  qmin=0.010000    qmax=26.000000    qgrid=0.000000
optqmin=10.0000    optqmax=30.0000    optqgrid=0.00000
##### start data
#L r G(r) dr dG(r)
"""


@pytest.mark.parametrize("header, expected", [(PDFGETN_HEADER, ("neutron", 35.0)), (PDFGETX2_HEADER, ("xray", 26.0)),
                                              ("", ("neutron", None))])
def test_radiation_and_qmax_from_pdfgetn_and_pdfgetx2_headers(tmp_path, header, expected):
    """Several key=value words on a line (PDFgetN, PDFgetX2): the screen and the fits read the
    radiation and Qmax there; a header that says nothing leaves --radiation/--qmax in charge."""
    from sgmine.gr import read_gr
    from sgmine_diffpy.identify import file_settings
    from sgmine_diffpy.refine import experiment_settings

    path = tmp_path / "x.gr"
    path.write_text(header + "".join(f"{r:.2f} {np.sin(r):.5f} 0 0\n" for r in np.arange(0.01, 20, 0.01)))
    curve = read_gr(path)
    rad, qmax, qdamp = file_settings(curve, None, None, "neutron")
    assert (rad, qmax, qdamp) == (*expected, None)
    if expected[1] is not None:
        assert experiment_settings(curve, 20.0, None)[0] == expected[1]  # the header's, not the option's


def test_a_failing_refinement_is_a_row_and_the_batch_is_written(tmp_path, monkeypatch):
    """A refinement that raises costs its row (status error, the message), not the others and
    not the table, which is written whole (atomically: no temporary file left)."""
    import sgmine_diffpy.refine as refine

    real = refine.fit_candidate

    def flaky(candidate, curve, **options):
        if candidate.cif == "Si":
            raise RuntimeError("pdffit2 exploded")
        return real(candidate, curve, **options)

    monkeypatch.setattr(refine, "fit_candidate", flaky)
    out = tmp_path / "ni.csv"
    result = runner.invoke(app, ["identify", str(NI_GR), str(NI_GR), "--library", str(CIFS), "--top", "7", "--out", str(out)])
    assert result.exit_code == 1, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 14
    failed = [r for r in rows if r["status"] == "error"]
    assert [r["structure_id"] for r in failed] == ["Si", "Si"] and all("pdffit2 exploded" in r["message"] for r in failed)
    assert rows[0]["structure_id"] == "Ni" and float(rows[0]["rw"]) < 0.15
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["ni.csv", "ni.summary.csv"]
