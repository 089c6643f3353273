"""`sgmine identify` (plugins/sgmine-diffpy): the stretch screen against direct simulation, the
stretch approximation's error, the library build from a CIF table, user CIF folders, bad inputs,
and one end-to-end run on the measured Ni.gr with the small examples/cifs library.
"""

import csv
import dataclasses
import gzip
import io
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("sgmine_diffpy", reason="the sgmine-diffpy plugin is not installed (pip install -e plugins/sgmine-diffpy)")

from sgmine.cli import app  # noqa: E402
from sgmine.simulate import PDFParams, pair_table, pdf  # noqa: E402
from sgmine_diffpy import screen as S  # noqa: E402
from sgmine_diffpy.identify import open_library  # noqa: E402
from sgmine_diffpy.ranking import best_structure, combined_ranking  # noqa: E402
from sgmine_diffpy.refinements import MIN_FIT_RMAX, PAIR_BUDGET, fit_rmax  # noqa: E402
from sgmine_diffpy.rows import IdentifyRow, plausible  # noqa: E402
from sgmine_diffpy.structlib import StructureLibrary, build, cell_from_cif, thin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CIFS = ROOT / "examples" / "cifs"
NI_GR = ROOT / "examples" / "data" / "Ni.gr"


def _ni_without_composition(folder: Path) -> Path:
    """Ni.gr without its header's ``composition = Ni``: identify then refines the library's
    structures (with a composition whose chemistry fits, it refines only that)."""
    path = folder / "Ni.gr"
    path.write_text("".join(line for line in NI_GR.read_text().splitlines(keepends=True)
                            if not line.lower().startswith("composition")))
    return path
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


def test_all_stretches_by_band_products_equal_the_direct_gather(small):
    """The screen's Rw at every stretch and particle envelope (banded products,
    :func:`screen._rw_all_stretches`) equals the Rw of each stretched curve gathered directly
    (:func:`screen._rw_at`), on the real curves of examples/cifs against Ni.gr."""
    from sgmine.gr import read_gr

    _, curves = small
    curve = read_gr(ROOT / "examples" / "data" / "Ni.gr")
    rk, gk = S.measured_grid(curve.r, curve.g)
    prepared = S.prepare(curves, qmax=25.0, qdamp=0.04)
    stretches = np.array([0.93, 1.0, 1.061])
    envs = [None, S.envelope(rk, 40.0)]
    banded = S._rw_all_stretches(prepared, rk, gk, float(gk @ gk), stretches, envs)
    assert banded.shape == (len(curves), 2, 3)
    for k, env in enumerate(envs):
        for j, s in enumerate(stretches):
            rows = None if env is None else np.tile(env, (len(curves), 1))
            direct = S._rw_at(prepared, rk, gk, float(gk @ gk), np.full(len(curves), s), rows)
            np.testing.assert_allclose(banded[:, k, j], direct, atol=2e-4)
    assert banded.max() - banded.min() > 0.3  # not a degenerate comparison: Ni matches, the others do not


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


def _fitted(rank, group, symbol, rw, uiso=0.005, scale=0.4):
    from sgmine_diffpy.refine import FitResult

    fit = FitResult("f", "x", group, symbol, rank, None, rw=rw, scale=scale, uiso={"A1": uiso}, delta2=2.0)
    return IdentifyRow("f", rank, f"s{rank}", "X", group, symbol, rw=rw, fit=fit)


def test_a_good_fit_puts_its_group_ahead_of_the_cnn():
    """A plausible fit of Rw <= GOOD_FIT_RW (0.25) puts its group first, even against the CNN's
    favourite; the remaining groups follow in the CNN's order."""
    from sgmine_diffpy.rows import GOOD_FIT_RW

    assert GOOD_FIT_RW == 0.25
    rows = [_fitted(1, 225, "Fm-3m", 0.12), _fitted(2, 2, "P-1", 0.60)]
    cnn = [(139, "I4/mmm", 0.7), (2, "P-1", 0.2), (225, "Fm-3m", 0.1)]
    ranking = combined_ranking(rows, cnn)
    assert [g for g, *_ in ranking] == [225, 139, 2]
    assert ranking[0] == (225, "Fm-3m", 0.12, 0.1) and ranking[1][2] is None  # (group, symbol, Rw, p_CNN)
    assert best_structure(rows, ranking).space_group == 225
    at_limit = combined_ranking([_fitted(1, 225, "Fm-3m", GOOD_FIT_RW)], cnn)
    assert at_limit[0][0] == 225  # "at or below"
    above = combined_ranking([_fitted(1, 225, "Fm-3m", GOOD_FIT_RW + 0.01)], cnn)
    assert [g for g, *_ in above] == [139, 2, 225]  # not a fit: the CNN's ranking stands


def test_among_good_fits_the_cnn_decides_then_rw():
    """Several groups fit (a lattice and its ordered superstructure): the CNN's probability
    orders them, Rw breaks ties (groups outside the CNN's candidates); within="rw" orders by Rw."""
    rows = [_fitted(1, 227, "Fd-3m", 0.12), _fitted(2, 8, "Cm", 0.07), _fitted(3, 121, "I-42m", 0.09),
            _fitted(4, 14, "P2_1/c", 0.40)]
    cnn = [(227, "Fd-3m", 0.9), (14, "P2_1/c", 0.1)]
    assert [g for g, *_ in combined_ranking(rows, cnn)] == [227, 8, 121, 14]
    assert [g for g, *_ in combined_ranking(rows, cnn, within="rw")] == [8, 121, 227, 14]
    assert best_structure(rows, combined_ranking(rows, cnn)).structure_id == "s1"
    with pytest.raises(ValueError):
        combined_ranking(rows, cnn, within="score")


def test_unphysical_fits_do_not_rank():
    """A fit that needs a vanishing or negative atom (Uiso > 0.1 Å² or < 0) or a negative scale
    does not stand for its group, however low its Rw."""
    rows = [_fitted(1, 225, "Fm-3m", 0.10), _fitted(2, 221, "Pm-3m", 0.05, uiso=1.4), _fitted(3, 123, "P4/mmm", 0.06, uiso=-0.002),
            _fitted(4, 139, "I4/mmm", 0.07, scale=-0.3)]
    assert not any(plausible(r) for r in rows[1:]) and plausible(rows[0])
    ranking = combined_ranking(rows, [])
    assert ranking[0][0] == 225 and {g for g, *_ in ranking} == {225}
    assert best_structure(rows, ranking).structure_id == "s1"


def test_plausible_is_the_refinements_physics_notes_being_empty():
    """identify's plausibility and refine's message notes are one rule: a parameter that is
    not a number is noted and makes the fit implausible, as a negative one does."""
    from sgmine_diffpy.refine import physics_notes

    good, nan_uiso, nan_scale = _fitted(1, 225, "Fm-3m", 0.1), _fitted(2, 225, "Fm-3m", 0.1, uiso=float("nan")), \
        _fitted(3, 225, "Fm-3m", 0.1, scale=float("nan"))
    assert physics_notes(good.fit) == [] and plausible(good)
    assert physics_notes(nan_uiso.fit) == ["not a number: Uiso at A1"] and not plausible(nan_uiso)
    assert physics_notes(nan_scale.fit) == ["not a number: scale"] and not plausible(nan_scale)
    negative = _fitted(4, 225, "Fm-3m", 0.1, uiso=-0.002)
    assert physics_notes(negative.fit) == ["negative Uiso at A1 (unphysical)"] and not plausible(negative)


def test_header_elements(tmp_path):
    """The sample's elements from a composition entry, a PDFgetN or a PDFgetX2 element table."""
    from sgmine.gr import read_gr
    from sgmine_diffpy.refine import header_elements

    data = "".join(f"{r:.2f} {np.sin(r):.5f}\n" for r in np.arange(0.01, 20, 0.01))
    for header, expected in (("composition = Ir0.80Rh0.20Te2\n", {"Ir", "Rh", "Te"}), ("composition = CHNPbI3\n", {"C", "H", "N", "Pb", "I"}),
                             (PDFGETN_HEADER, {"Ni"}), ("#L symbol valence fractions z\n  Sr 0.00 1.0 38\n  O 0.00 3.0 8\n"
                                                        "  Ti 0.00 0.0 22\n#L r G(r)\n", {"Sr", "O"}),
                             ("composition = not a formula\n", None), ("", None)):
        path = tmp_path / "x.gr"
        path.write_text(header + data)
        assert header_elements(read_gr(path)) == expected, header


def test_identify_refines_only_structures_with_the_samples_number_of_elements(tmp_path):
    """Ni.gr's header says composition Ni: candidates made from it (all of them Ni) are refined,
    and as one of them fits, none of the library's; without the composition the library's
    best-screened are refined, binary decoys included."""
    from sgmine_diffpy.identify import CHEMISTRY_TOP, identify_file
    from sgmine_diffpy.ranking import row_elements

    lib = open_library(CIFS)
    rows, summary = identify_file(str(NI_GR), lib, top=7)
    assert rows and all(row_elements(r) == {"Ni"} for r in rows)
    # only the chemistry's picks (ranked first): the user's Ni.cif is one, as a compound of the system
    assert all(r.rank <= CHEMISTRY_TOP for r in rows) and rows[0].source == f"cif:{CIFS / 'Ni.cif'}"
    assert summary.best.symbol == "Fm-3m" and summary.best.formula == "Ni"
    assert summary.composition == "Ni" and summary.composition_source == "header"
    assert "composition Ni (from the file header)" in summary.message
    rows, _ = identify_file(str(NI_GR), lib, top=7, use_elements=False)
    assert len(rows) == 7 and all(r.source.startswith("cif:") for r in rows)
    assert any(len(row_elements(r)) > 1 for r in rows)


def test_bad_inputs(tmp_path):
    missing = runner.invoke(app, ["identify", str(tmp_path / "nope.gr"), "--library", str(CIFS)])
    assert missing.exit_code == 1 and ",error," in missing.stdout  # an error row, as in scan
    assert f"sgmine identify: {tmp_path / 'nope.gr'}: no such file\n" in missing.stderr  # the file named once
    assert missing.stderr.count("nope.gr") == 1
    bad = tmp_path / "bad.gr"
    bad.write_text("not a pdf\n")
    result = runner.invoke(app, ["identify", str(bad), "--library", str(CIFS)])
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["status"] == "error" and rows[0]["message"]
    assert runner.invoke(app, ["identify", str(NI_GR), "--library", str(tmp_path / "none")]).exit_code == 2
    assert runner.invoke(app, ["identify", str(NI_GR), "--library", str(CIFS), "--radiation", "gamma"]).exit_code == 2


def test_large_cells_are_fitted_over_a_shorter_range():
    """The fit range ends where the cell's atom pairs reach the budget: small cells keep it whole."""
    assert fit_rmax(4, 3.524 ** 3, 30.0) == 30.0  # Ni
    assert fit_rmax(20, 5.47 * 7.72 * 5.52, 30.0) == 30.0  # a Pnma perovskite
    end = fit_rmax(76, 900.0, 30.0)
    assert MIN_FIT_RMAX < end < 30.0
    assert 76 ** 2 * 4 / 3 * math.pi * end ** 3 / 900.0 == pytest.approx(PAIR_BUDGET)
    assert fit_rmax(500, 900.0, 30.0) == MIN_FIT_RMAX and fit_rmax(500, 900.0, 10.0) == 10.0
    assert fit_rmax(0, 0.0, 30.0) == 30.0


def test_identify_ni_with_the_example_cifs(tmp_path):
    out = tmp_path / "ni.csv"
    plots = tmp_path / "plots" / "new"  # made by the command
    ni = _ni_without_composition(tmp_path)
    result = runner.invoke(app, ["identify", str(ni), "--library", str(CIFS), "--top", "2", "--out", str(out),
                                 "--plots", str(plots)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["formula"] == "Ni" and rows[0]["space_group"] == "225" and float(rows[0]["rw"]) < 0.15
    assert "Ni" in {r["structure_id"] for r in rows}
    assert list(rows[0])[:2] == ["file", "screen_rank"] and {r["screen_rank"] for r in rows} >= {"1", "2"}
    summary = list(csv.DictReader((tmp_path / "ni.summary.csv").open()))
    assert summary[0]["best_space_group"] == "225" and summary[0]["ranking"].startswith("225 ")
    assert (plots / "Ni.gr.identify.png").stat().st_size > 1000


def test_when_nothing_fits_the_summary_names_no_structure():
    """A best refinement at Rw 0.89 is no answer: the summary's best_* columns stay empty (its
    message says nothing fits); at Rw 0.12 it is the answer."""
    from sgmine_diffpy.rows import SUMMARY_COLUMNS, FileSummary

    for rw, answer in ((0.89, None), (0.12, "s1")):
        summary = FileSummary("f.gr", best=_fitted(1, 225, "Fm-3m", rw), ranking=[(225, "Fm-3m", rw, 0.9)])
        row = dict(zip(SUMMARY_COLUMNS, summary.row()))
        assert (summary.answer.structure_id if summary.answer else None) == answer
        assert row["best_structure"] == (answer or "") and row["best_rw"] == ("" if answer is None else f"{rw:.4f}")
        assert summary.best.structure_id == "s1"  # the closest refinement is still there for a script


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


NI_ROWS = [line for line in NI_GR.read_text().splitlines() if line[:1].isdigit()]


@pytest.mark.parametrize("header, expected", [(PDFGETN_HEADER, ("neutron", 35.0)), (PDFGETX2_HEADER, ("xray", 26.0)),
                                              ("", ("neutron", 20.0))])
def test_radiation_and_qmax_from_pdfgetn_and_pdfgetx2_headers(tmp_path, header, expected):
    """Several key=value words on a line (PDFgetN, PDFgetX2): the screen and the fits read the
    radiation and Qmax there; a header that says nothing leaves --radiation/--qmax in charge."""
    from sgmine.gr import read_gr
    from sgmine_diffpy.identify import file_settings
    from sgmine_diffpy.refine import experiment_settings

    path = tmp_path / "x.gr"
    path.write_text(header + "\n".join(NI_ROWS) + "\n")
    curve = read_gr(path)
    rad, qmax, qdamp, notes = file_settings(curve, 20.0, None, "neutron")
    assert (rad, qmax, qdamp, notes) == (*expected, None, [])
    if header:
        assert experiment_settings(curve, 20.0, None)[0] == expected[1]  # the header's, not the option's


def test_qmax_from_the_data_when_the_header_has_none_or_one_beyond_reach(tmp_path, small):
    """Without a Qmax (header, --qmax), identify takes the data's own (where its spectrum ends);
    a header Qmax far beyond it (PDFgetX2's S(Q) range, qmax=100) gives way to it."""
    from sgmine.gr import read_gr
    from sgmine_diffpy.identify import file_settings

    curve = read_gr(NI_GR)
    assert abs(S.estimate_qmax(curve.r, curve.g) - 25.0) < 0.5  # the header says 25
    lib, _ = small
    for name in ("Si", "Ni"):
        for qmax in (18.0, 25.0, 32.0):  # simulated at a known Qmax, ending abruptly at 30 Å (tapered)
            r, g = _direct(lib.structure(list(lib.ids).index(name)), 0.0, PDFParams(qmax=qmax, qdamp=0.03, uiso=0.003, delta2=2.0))
            assert abs(S.estimate_qmax(r, g) - qmax) < 1.0, (name, qmax)
    path = tmp_path / "x.gr"
    path.write_text(PDFGETX2_HEADER.replace("qmax=26.000000", "qmax=100.000000") + "\n".join(NI_ROWS) + "\n")
    rad, qmax, _, notes = file_settings(read_gr(path), None, None, None)
    assert rad == "xray" and abs(qmax - 25.0) < 0.5 and "beyond the data" in notes[0]
    path.write_text("\n".join(NI_ROWS) + "\n")
    _, qmax, _, notes = file_settings(read_gr(path), None, None, None)
    assert abs(qmax - 25.0) < 0.5 and "estimated from the data" in notes[0]


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
    data = tmp_path / "data"
    data.mkdir()
    ni = _ni_without_composition(data)
    out = tmp_path / "ni.csv"
    result = runner.invoke(app, ["identify", str(ni), str(ni), "--library", str(CIFS), "--top", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output  # a failed candidate is a row; each file got its answer
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 14 and {r["file"] for r in rows} == {str(ni)}  # the library's 7 per file
    failed = [r for r in rows if r["status"] == "error"]
    assert [r["structure_id"] for r in failed] == ["Si", "Si"] and all("pdffit2 exploded" in r["message"] for r in failed)
    assert rows[0]["formula"] == "Ni" and rows[0]["space_group"] == "225" and float(rows[0]["rw"]) < 0.15
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["ni.csv", "ni.summary.csv"]


def test_a_crashing_refinement_is_a_row(tmp_path, monkeypatch):
    """pdffit2 segfaults on some structures: each refinement runs in a process of its own, so a
    crash costs that row (its message names the signal), not the run."""
    import os
    import signal

    import sgmine_diffpy.refine as refine

    real = refine.fit_candidate

    def crashing(candidate, curve, **options):
        if candidate.cif != "Ni":
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(candidate, curve, **options)

    monkeypatch.setattr(refine, "fit_candidate", crashing)
    out = tmp_path / "ni.csv"
    result = runner.invoke(app, ["identify", str(_ni_without_composition(tmp_path)), "--library", str(CIFS), "--top", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output  # a failed candidate is a row; each file got its answer
    rows = {r["structure_id"]: r for r in csv.DictReader(out.open())}
    crashed = [r for name, r in rows.items() if name != "Ni"]
    assert crashed and all(r["status"] == "error" and "signal 11" in r["message"] for r in crashed)
    assert rows["Ni"]["status"] == "ok" and float(rows["Ni"]["rw"]) < 0.15


def test_a_stuck_refinement_is_stopped_and_is_a_row(tmp_path, monkeypatch):
    """A refinement past the time budget (:data:`refinements.FIT_TIMEOUT`) is stopped: its row
    says so, the other refinements and the file's answer stand."""
    import time as _time

    import sgmine_diffpy.refine as refine
    import sgmine_diffpy.refinements as refinements

    real = refine.fit_candidate

    def stuck(candidate, curve, **options):
        if candidate.cif != "Ni":
            _time.sleep(30)
        return real(candidate, curve, **options)

    monkeypatch.setattr(refine, "fit_candidate", stuck)
    monkeypatch.setattr(refinements, "FIT_TIMEOUT", 2.0)
    out = tmp_path / "ni.csv"
    started = _time.perf_counter()
    result = runner.invoke(app, ["identify", str(_ni_without_composition(tmp_path)), "--library", str(CIFS), "--top", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _time.perf_counter() - started < 25  # not the 30 s of the stuck fit
    rows = {r["structure_id"]: r for r in csv.DictReader(out.open())}
    stopped = [r for name, r in rows.items() if name != "Ni"]
    assert stopped and all(r["status"] == "error" and "refinement stopped after 2 s" in r["message"] for r in stopped)
    assert rows["Ni"]["status"] == "ok" and float(rows["Ni"]["rw"]) < 0.15


def test_the_cnns_likely_groups_get_a_refined_structure(small):
    """The best-screened structure of each group the CNN finds likely is refined even when
    other structures screen better (the combined ranking can only credit a refined group)."""
    from sgmine_diffpy.identify import ScreeningLibrary, _choose

    lib, curves = small
    library = ScreeningLibrary(lib, "small")
    r, g = _direct(lib.structure(list(lib.ids).index("Ni")), 0.0, PDFParams(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3))
    result = S.screen(r, g, S.prepare(curves, qmax=25.0, qdamp=0.04))
    ids = lambda chosen: [str(lib.ids[i]) for i in chosen]  # noqa: E731
    assert ids(_choose(library, result, 1, None)) == ["Ni"]
    assert set(ids(_choose(library, result, 2, None, [(194, "P6_3/mmc", 0.6), (186, "P6_3mc", 0.3)]))) == {"ScTe-hexagonal", "CdS-wurtzite"}
    assert ids(_choose(library, result, 1, None, [(194, "P6_3/mmc", 0.05)])) == ["Ni"]  # below CNN_RESERVE
    chosen = ids(_choose(library, result, 3, None, [(194, "P6_3/mmc", 0.6)]))
    assert chosen[0] == "Ni" and "ScTe-hexagonal" in chosen and len(chosen) == 3  # sorted by screening Rw


@pytest.mark.parametrize("kind, material, size", [
    ((225, 2, (1, 1)), "MgO", 2.105), ((225, 2, (1, 1)), "NaCl", 2.82), ((225, 2, (1, 1)), "KCl", 3.145),
    ((225, 3, (1, 2)), "CeO2", 2.365), ((186, 4, (2, 2)), "CdSe", 3.04), ((221, 5, (1, 1, 3)), "SrTiO3", 2.28),
])
def test_the_default_library_has_each_common_type_within_the_screens_stretch(kind, material, size):
    """Materials absent from the library find an isostructural one within the ±10 % stretch:
    rock salts from MgO to KCl, fluorite CeO2, wurtzite CdSe, perovskite SrTiO3 ((V/atom)^(1/3), Å)."""
    from sgmine_diffpy.structlib import DEFAULT_LIBRARY, atomic_size, structure_type

    lib = StructureLibrary.load(DEFAULT_LIBRARY)
    sizes = [atomic_size(lib, i) for i in range(len(lib)) if structure_type(lib, i) == kind]
    assert any(0.9 <= size / s <= 1.1 for s in sizes), (material, sizes)


def test_screen_finds_a_nanoparticles_envelope(small):
    """A nanoparticle's G(r) fades with its spherical envelope: the screen tries particle
    diameters (DIAMETERS) and finds the structure and about its size; bulk data stay bulk."""
    lib, curves = small
    si = list(lib.ids).index("Si")
    prepared = S.prepare(curves, qmax=25.0, qdamp=0.04)
    r, g = _direct(lib.structure(si), 0.02, PDFParams(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3, spdiameter=30.0))
    result = S.screen(r, g, prepared, curves=curves, qmax=25.0, qdamp=0.04)
    # 30 Å lies midway between the grid's 25 and 40 Å (its worst case; the refinement refines the
    # diameter): Rw 0.14 there, against 0.60 for the best bulk curve
    assert lib.ids[result.best(1)[0]] == "Si" and result.rw[si] < 0.2 and result.diameter[si] in (25.0, 40.0)
    assert S.screen(r, g, prepared, curves=curves, qmax=25.0, qdamp=0.04, diameters=(math.inf,)).rw[si] > 0.4
    r, g = _direct(lib.structure(si), 0.02, PDFParams(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3, spdiameter=25.0))
    on_grid = S.screen(r, g, prepared, curves=curves, qmax=25.0, qdamp=0.04)
    assert on_grid.rw[si] < 0.05 and on_grid.diameter[si] == 25.0
    bulk = S.screen(r, _direct(lib.structure(si), 0.02, PDFParams(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3))[1],
                    prepared, curves=curves, qmax=25.0, qdamp=0.04)
    assert np.isinf(bulk.diameter[si]) and bulk.rw[si] < 0.05


def test_where_no_structure_fits_the_cnn_decides():
    """No plausible fit reaches GOOD_FIT_RW: the CNN's ranking stands, the refined groups outside
    its candidates follow by Rw; the answer shown is still the best plausible fit."""
    rows = [_fitted(1, 15, "C2/c", 0.62), _fitted(2, 9, "Cc", 0.70), _fitted(3, 12, "C2/m", 0.55),
            _fitted(4, 221, "Pm-3m", 0.05, uiso=1.4)]  # implausible: no credit for its low Rw
    cnn = [(2, "P-1", 0.6), (15, "C2/c", 0.3), (14, "P2_1/c", 0.1)]
    ranking = combined_ranking(rows, cnn)
    assert [g for g, *_ in ranking] == [2, 15, 14, 12, 9]
    assert ranking[0][2] is None and ranking[1][2] == 0.62
    assert combined_ranking(rows, cnn, good_fit=0.6)[0][0] == 12  # a looser acceptance would let the fit decide
    assert best_structure(rows, ranking).structure_id == "s3"  # no plausible fit in P-1: the best plausible one


def test_a_candidate_screened_as_a_particle_is_refined_as_bulk_too():
    """The screen's particle diameter only starts the refinement: a bulk sample refined from a
    small particle's envelope can stay in a worse minimum, so the bulk fit is made as well and
    the lower Rw kept (refinements.better_fit)."""
    from diffpy.structure import loadStructure

    from sgmine.gr import read_gr
    from sgmine_diffpy.refinements import _refine, better_fit, fit_grid

    curve = fit_grid(read_gr(NI_GR))
    rows = []
    for diameter in (16.0, None):
        row = IdentifyRow(str(NI_GR), 1, "Ni", "Ni", 225, "Fm-3m", 0.5)
        _refine(row, loadStructure(str(ROOT / "examples" / "cifs" / "Ni.cif")), 1.0, curve, 27.0, 0.06, 1.5, 20.0, diameter)
        rows.append(row)
    from_particle, bulk = rows
    assert bulk.ok and from_particle.ok and bulk.rw < 0.15
    assert from_particle.rw <= bulk.rw + 1e-9  # never worse than the bulk fit
    if from_particle.fit.spdiameter is None:
        assert from_particle.message.startswith("bulk (refined from a 16 Å particle too: Rw ")
    # better_fit: the lowest Rw of the fits that succeeded, else the first
    ok = bulk.fit
    failed = dataclasses.replace(ok, status="error", rw=None)
    assert better_fit([failed, ok]) is ok and better_fit([failed]) is failed
