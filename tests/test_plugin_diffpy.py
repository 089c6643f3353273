"""The sgmine-diffpy plugin (plugins/sgmine-diffpy): candidate structures from a CIF library as
srfit parameter sets constrained with constrainAsSpaceGroup, and `sgmine refine`, a pdffit2
fit of each candidate to the measured G(r), on the shared Ni.gr and examples/cifs; the refined
structure (CIF) and fit (.fgr) it hands over, read back with diffpy.structure, numpy, pdffit2
and diffpy.srfit's PDFParser.

The test model is not trained: its ranking of groups is arbitrary except that Ni.gr is
Fm-3m (225) and Si.gr Fd-3m (227), so the refinements use a top-k of 8 (every class).
"""

import csv
import io
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("sgmine_diffpy", reason="the sgmine-diffpy plugin is not installed (pip install -e plugins/sgmine-diffpy)")

from sgmine import predict  # noqa: E402
from sgmine.cli import app  # noqa: E402
from sgmine_diffpy import candidate_models, load_library, refine_candidates  # noqa: E402

CIFS = Path(__file__).resolve().parents[1] / "examples" / "cifs"
runner = CliRunner()

#: A user's SrTiO3 (Pm-3m, 221: not one of the test model's groups), in its space group with
#: the labels of the issue that found them renamed (Ti1 -> Ti2, O1 -> O3).
SRTIO3_CIF = """data_SrTiO3
_symmetry_space_group_name_H-M 'P m -3 m'
_symmetry_Int_Tables_number 221
_cell_length_a 3.905
_cell_length_b 3.905
_cell_length_c 3.905
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
Sr1 Sr 0.0 0.0 0.0 0.006
Ti1 Ti 0.5 0.5 0.5 0.004
O1 O 0.5 0.5 0.0 0.008
"""

#: spglib's group of each library structure.
LIBRARY_GROUPS = {
    "CdS-wurtzite.cif": 186, "CuPd-CsCl.cif": 221, "MgSe-rocksalt.cif": 225, "NaAu2-Laves-C15.cif": 227,
    "Ni.cif": 225, "ScTe-hexagonal.cif": 194, "Si.cif": 227,
}


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def _candidate(entry, source="Ni.gr"):
    """``entry`` as a candidate of its own group (as ``sgmine refine --all`` makes it)."""
    from sgmine_diffpy.candidates import CandidateModel, space_group_parameters

    phase, sgpars = space_group_parameters(entry)
    return CandidateModel(source, 1, entry.space_group, entry.symbol, 1.0, entry, phase, sgpars)


def _srtio3(folder):
    path = folder / "SrTiO3.cif"
    path.write_text(SRTIO3_CIF)
    return path


def _labels(structure):
    """The site labels of an expanded structure (diffpy names the copies of site O1 O1_2, O1_3)."""
    return {atom.label.rsplit("_", 1)[0] if "_" in atom.label else atom.label for atom in structure}


def test_library_groups_from_spglib():
    library = load_library(CIFS)
    assert library.skipped == []
    assert {e.name: e.space_group for e in library.entries} == LIBRARY_GROUPS
    assert [e.space_group for e in library.with_group(225)] == [225, 225]


def test_the_standard_cell_keeps_the_cifs_site_labels(tmp_path):
    """Every atom of the standardised cell carries the label of its site in the user's CIF (they
    were renumbered by position in the cell: SrTiO3's Ti1 became Ti2, O1 became O3)."""
    from sgmine_diffpy.library import read_structure, site_labels

    entry = read_structure(_srtio3(tmp_path))
    assert [atom.label for atom in entry.structure] == ["Sr1", "Ti1", "O1", "O1", "O1"]
    wurtzite = read_structure(CIFS / "CdS-wurtzite.cif")  # a P1 CIF: each orbit takes its first atom's label
    assert [wurtzite.structure[i].label for i in sorted(set(wurtzite.sites))] == ["Cd0", "S2"]
    # no label, or one that another site already has: the element and the lowest free number
    assert site_labels(["", "", "O1", "O1"], ["Ti", "O", "O", "O"], [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]) == \
        ["Ti1", "O2", "O1", "O3"]


def test_candidate_models_are_srfit_parsets_constrained_to_the_group(data_dir, template_model):
    from diffpy.srfit.structure.diffpyparset import DiffpyStructureParSet
    from diffpy.srfit.structure.sgconstraints import SpaceGroupParameters

    models = candidate_models(data_dir / "Ni.gr", CIFS, top_k=8, model=template_model)
    # every library structure whose group is among the model's classes, best-ranked group first
    assert [(m.model_rank, m.space_group, Path(m.cif).name) for m in models][:2] == [
        (1, 225, "MgSe-rocksalt.cif"), (1, 225, "Ni.cif")]
    assert sorted(Path(m.cif).name for m in models) == [
        "MgSe-rocksalt.cif", "NaAu2-Laves-C15.cif", "Ni.cif", "ScTe-hexagonal.cif", "Si.cif"]
    assert all(m.symbol and 0 <= m.probability <= 1 and m.source == str(data_dir / "Ni.gr") for m in models)
    for m in models:
        assert isinstance(m.phase, DiffpyStructureParSet) and isinstance(m.sgpars, SpaceGroupParameters)
        assert m.sgpars.sg.number == m.space_group == LIBRARY_GROUPS[Path(m.cif).name]
        assert m.sgpars.phase is m.phase
        lattice = m.phase.getLattice()
        assert lattice.b.constrained  # b = a in every group of this library
        assert lattice.alpha.const and lattice.beta.const and lattice.gamma.const
    by_name = {Path(m.cif).name: m for m in models}
    ni, scte = by_name["Ni.cif"], by_name["ScTe-hexagonal.cif"]
    assert [p.name for p in ni.sgpars.latpars] == ["a"] and list(ni.sgpars.xyzpars) == []
    assert [p.name for p in ni.sgpars.adppars] == ["Uiso_0"]
    assert ni.phase.getLattice().c.constrained
    assert [p.name for p in scte.sgpars.latpars] == ["a", "c"]  # hexagonal: a and c free
    assert [p.name for p in scte.sgpars.xyzpars] == ["z_0"]  # Sc on 4f has a free z
    assert ni.phase.stru is not ni.structure  # refining the parset leaves the library alone


def test_candidate_models_take_a_prediction_and_other_libraries(data_dir, template_model):
    prediction = predict([data_dir / "Si.gr"], top_k=1, model=template_model)[0]
    assert prediction.best.space_group == 227
    models = candidate_models(prediction, [CIFS / "Si.cif", CIFS / "Ni.cif"], top_k=1)
    assert [(m.space_group, Path(m.cif).name) for m in models] == [(227, "Si.cif")]
    from diffpy.structure import loadStructure

    models = candidate_models(prediction, {"mine": loadStructure(str(CIFS / "NaAu2-Laves-C15.cif"))}, top_k=1)
    assert [(m.cif, m.space_group) for m in models] == [("mine", 227)]
    with pytest.warns(UserWarning, match="broken.cif"):
        assert candidate_models(prediction, [CIFS / "broken.cif"], top_k=1) == []


def test_refine_from_a_script_picks_ni(data_dir, template_model):
    """The plugin README's Python example: predict, then refine the candidates of the prediction."""
    prediction = predict([data_dir / "Ni.gr"], top_k=8, model=template_model)[0]
    results = refine_candidates(prediction, [CIFS / "Ni.cif", CIFS / "MgSe-rocksalt.cif"], top_k=8)
    best = results[0]
    assert Path(best.cif).name == "Ni.cif" and best.ok and best.rw < 0.25
    assert [r.rw for r in results] == sorted(r.rw for r in results)
    assert best.scale > 0 and 3.50 < best.lattice["a"] < 3.55 and 0 < best.uiso["Ni1"] < 0.02
    assert best.qmax == 25.0 and best.rmin == 1.5 and best.rmax == 30.0  # Qmax from Ni.gr's header
    assert best.npoints == len(best.r) == len(best.g_calc) > 2000


@pytest.mark.slow
def test_refine_command_on_the_ni_example(data_dir, template_model, tmp_path):
    """The issue's acceptance check: every candidate structure of examples/cifs fitted to Ni.gr;
    the two whose groups the model does not rank are listed as skipped, and the best fit is
    handed over as CIF and .fgr beside the table."""
    out = tmp_path / "ni-refine.csv"
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(CIFS), "--top-k", "8",
                                 "--model", str(template_model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out.read_text())
    assert list(rows[0])[:6] == ["file", "cif", "space_group", "model_rank", "probability", "rw"]
    fitted = [r for r in rows if r["status"] == "ok"]
    assert sorted(Path(r["cif"]).name for r in fitted) == [
        "MgSe-rocksalt.cif", "NaAu2-Laves-C15.cif", "Ni.cif", "ScTe-hexagonal.cif", "Si.cif"]
    assert rows[:5] == fitted
    rws = [float(r["rw"]) for r in fitted]
    assert rws == sorted(rws)
    assert Path(rows[0]["cif"]).name == "Ni.cif" and rows[0]["space_group"] == "225" and rws[0] < 0.25
    assert rws[1] > 0.5  # the decoys do not fit
    scte = next(r for r in fitted if r["cif"].endswith("ScTe-hexagonal.cif"))
    assert "positions refined: Sc0 z" in scte["message"]  # Sc on 4f has a free z
    skipped = {Path(r["cif"]).name: r for r in rows[5:]}
    assert sorted(skipped) == ["CdS-wurtzite.cif", "CuPd-CsCl.cif"] and all(r["status"] == "skipped" for r in rows[5:])
    assert skipped["CuPd-CsCl.cif"]["message"] == "not refined: its group 221 Pm-3m is not one of the model's groups; --all refines it"
    assert "CuPd-CsCl.cif not refined: its group 221 Pm-3m" in result.stderr
    png = tmp_path / "Ni.gr.best-fit.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "best fit plotted in" in result.stderr
    from diffpy.structure import loadStructure

    refined = loadStructure(str(tmp_path / "Ni.gr.best-fit.cif"))
    assert _labels(refined) == {"Ni1"} and refined.lattice.a == pytest.approx(float(rows[0]["a"]), abs=1e-5)
    fit = np.loadtxt(tmp_path / "Ni.gr.best-fit.fgr")
    assert math.sqrt(np.sum(fit[:, 3] ** 2) / np.sum(fit[:, 1] ** 2)) == pytest.approx(rws[0], abs=1e-4)


@pytest.mark.slow
def test_refine_names_the_structures_it_skips_and_all_refines_them(data_dir, template_model, tmp_path):
    """A user's SrTiO3.cif (Pm-3m, not one of the model's groups) was never fitted and nothing
    said so: it is a skipped row with the reason (and a line on stderr); --all fits it."""
    library = tmp_path / "cifs"
    library.mkdir()
    shutil.copy(CIFS / "Ni.cif", library)
    srtio3 = _srtio3(library)
    args = ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(library), "--top-k", "1", "--model", str(template_model),
            "--no-plot", "--structures", str(tmp_path / "handover")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    ni, skipped = _rows(result.stdout)
    assert ni["status"] == "ok" and ni["cif"].endswith("Ni.cif")
    assert (skipped["cif"], skipped["space_group"], skipped["model_rank"], skipped["status"]) == (str(srtio3), "221", "", "skipped")
    assert skipped["message"] == "not refined: its group 221 Pm-3m is not one of the model's groups; --all refines it"
    assert f"{srtio3} not refined: its group 221 Pm-3m is not one of the model's groups" in result.stderr
    assert sorted(p.name for p in (tmp_path / "handover").iterdir()) == ["Ni.gr.best-fit.cif", "Ni.gr.best-fit.fgr"]

    result = runner.invoke(app, [*args, "--all"])
    assert result.exit_code in (0, 1), result.output
    rows = {Path(r["cif"]).name: r for r in _rows(result.stdout)}
    assert sorted(rows) == ["Ni.cif", "SrTiO3.cif"] and rows["Ni.cif"]["status"] == "ok"
    assert rows["SrTiO3.cif"]["status"] != "skipped" and rows["SrTiO3.cif"]["rw"] != "" and rows["SrTiO3.cif"]["model_rank"] == ""
    assert "not refined" not in result.stderr and "SrTiO3.cif (Pm-3m, not one of the model's groups): Rw" in result.stderr


def test_refine_no_matching_structure_is_an_error_row(data_dir, template_model, tmp_path):
    library = tmp_path / "cifs"
    library.mkdir()
    shutil.copy(CIFS / "Si.cif", library)
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(library), "--top-k", "1",
                                 "--model", str(template_model), "--no-plot"])
    assert result.exit_code == 1
    error, skipped = _rows(result.stdout)
    assert error["status"] == "error"
    assert error["message"] == (f"no structure in {library} has any of the top-1 groups (225 Fm-3m); "
                                "--all refines every structure")
    assert skipped["status"] == "skipped" and skipped["cif"] == str(library / "Si.cif")
    assert skipped["message"].startswith("not refined: its group 227 Fd-3m is not among the model's top-1 (the model ranks it ")
    assert int(skipped["model_rank"]) > 1 and skipped["message"].endswith("; --all refines it")


def test_the_best_fit_is_handed_over_as_cif_and_fgr(data_dir, tmp_path):
    """What PDFgui or a diffpy.srfit script starts from: the CIF reads back (diffpy.structure)
    with the site labels and the refined cell and U; the .fgr loads with numpy and its Gcalc
    gives the fit's Rw; srfit's PDFParser reads r and Gobs with the fit's settings; and pdffit2,
    given the CIF, the measured file and those settings over the .fgr's range, computes its Gcalc
    again (the measured file, not the .fgr's Gobs: pdffit2 terminates at Qmax only from the
    first point of its data, so data that start at the fit range's 1.5 Å give another curve there)."""
    from diffpy.pdffit2 import PdfFit, redirect_stdout
    from diffpy.srfit.pdf.pdfparser import PDFParser
    from diffpy.structure import loadStructure

    from sgmine.gr import read_gr
    from sgmine_diffpy.handover import write_handover
    from sgmine_diffpy.refine import fit_candidate

    entry = next(e for e in load_library(CIFS).entries if e.name == "Ni.cif")
    measured = read_gr(data_dir / "Ni.gr")
    result = fit_candidate(_candidate(entry), measured, refine_positions=True)
    assert result.ok and result.rw < 0.15 and "positions refined" not in result.message  # fcc Ni: no free coordinate
    cif, fgr = write_handover(result, tmp_path / "new" / "folder", "Ni.gr.best-fit")
    assert (cif.name, fgr.name) == ("Ni.gr.best-fit.cif", "Ni.gr.best-fit.fgr")

    refined = loadStructure(str(cif))
    assert len(refined) == 4 and _labels(refined) == {"Ni1"}
    assert refined.lattice.abcABG() == pytest.approx([result.lattice[n] for n in ("a", "b", "c", "alpha", "beta", "gamma")],
                                                     abs=1e-6)
    assert refined[0].Uisoequiv == pytest.approx(result.uiso["Ni1"], abs=1e-6)

    r, g_obs, g_calc, g_diff = np.loadtxt(fgr).T
    assert np.allclose(r, result.r) and np.allclose(g_diff, g_obs - g_calc, atol=1e-7)
    assert math.sqrt(np.sum((g_obs - g_calc) ** 2) / np.sum(g_obs**2)) == pytest.approx(result.rw, abs=1e-6)

    parser = PDFParser()
    parser.parseFile(str(fgr))
    x, y, dx, dy = parser._banks[0]
    meta = parser._meta
    assert np.allclose(x, r) and np.allclose(y, g_obs) and dx is None and dy is None
    assert (meta["stype"], meta["qmax"], meta["qdamp"]) == ("X", 25.0, result.qdamp)
    assert meta["rw"] == pytest.approx(result.rw, abs=1e-6) and meta["scale"] == pytest.approx(result.scale, rel=1e-5)

    redirect_stdout(io.StringIO())
    try:
        pf = PdfFit()
        pf.add_structure(refined)
        keep = measured.r > 0
        pf.read_data_lists(meta["stype"], meta["qmax"], meta["qdamp"], list(measured.r[keep]), list(measured.g[keep]))
        pf.pdfrange(1, float(x[0]), float(x[-1]))
        pf.setvar(pf.dscale(), meta["scale"])
        pf.setvar(pf.delta2(), meta["delta2"])
        pf.calc()
        again = np.array(pf.getpdf_fit())
    finally:
        redirect_stdout(sys.stdout)
    assert math.sqrt(np.sum((again - g_calc) ** 2) / np.sum(g_calc**2)) < 1e-4


def test_the_refined_cif_keeps_the_users_site_labels(data_dir, tmp_path):
    from diffpy.structure import loadStructure

    from sgmine.gr import read_gr
    from sgmine_diffpy.handover import structure_cif
    from sgmine_diffpy.library import read_structure
    from sgmine_diffpy.refine import fit_candidate

    result = fit_candidate(_candidate(read_structure(_srtio3(tmp_path))), read_gr(data_dir / "Ni.gr"), max_steps=3)
    assert result.ok, result.message
    assert set(result.uiso) == {"Sr1", "Ti1", "O1"}
    path = tmp_path / "refined.cif"
    path.write_text(structure_cif(result))
    refined = loadStructure(str(path))
    assert len(refined) == 5 and _labels(refined) == {"Sr1", "Ti1", "O1"}
    assert refined.lattice.a == pytest.approx(result.lattice["a"], abs=1e-6)


def test_free_coordinates_are_refined_in_a_last_stage(tmp_path, monkeypatch):
    """Wurtzite CdS (P6_3mc) with its S moved 0.2 Å along c, fitted to the G(r) sgmine.simulate
    gives for the real structure: the positions stage refines S's z (Cd's is held: c is a polar
    axis, a common shift changes nothing), lowers Rw and brings S back; the message says so."""
    from diffpy.structure import loadStructure

    from sgmine.gr import Curve
    from sgmine.simulate import PDFParams, simulate
    from sgmine_diffpy.handover import structure_cif
    from sgmine_diffpy.library import standardise
    from sgmine_diffpy.refine import fit_candidate

    truth = loadStructure(str(CIFS / "CdS-wurtzite.cif"))
    r = np.arange(0.5, 20.0, 0.02)
    g = simulate(truth, r, PDFParams(qmax=25.0, qdamp=0.04, uiso=0.008, delta2=1.0))
    curve = Curve(r=r, g=g, metadata={"qmax": 25.0, "qdamp": 0.04}, source="CdS.gr")
    moved = loadStructure(str(CIFS / "CdS-wurtzite.cif"))
    for atom in moved:
        if atom.element == "S":
            atom.xyz[2] += 0.03  # 0.2 Å
    candidate = _candidate(standardise(moved, "CdS-moved"), source="CdS.gr")

    def u(structure):  # S's height above Cd along c, the coordinate the group leaves free
        z = {atom.label: atom.xyz[2] for atom in structure}
        return (z["S2"] - z["Cd0"]) % 1.0

    true_u, start_u = u(standardise(truth, "CdS").structure), u(candidate.structure)
    held = fit_candidate(candidate, curve, rmax=20.0)
    free = fit_candidate(candidate, curve, rmax=20.0, refine_positions=True)
    assert held.ok and free.ok
    assert free.message.startswith("positions refined: S2 z (Cd0 z held: polar axis")
    assert free.rw < 0.5 * held.rw and u(held.structure) == pytest.approx(start_u)
    assert abs(u(free.structure) - true_u) < 0.1 * abs(start_u - true_u)
    path = tmp_path / "CdS.cif"
    path.write_text(structure_cif(free))
    assert u(loadStructure(str(path))) == pytest.approx(u(free.structure), abs=1e-6)  # the CIF has the refined z

    import sgmine_diffpy.refine as refine

    monkeypatch.setattr(refine, "MAX_FREE_COORDINATES", 0)  # more free coordinates than a fit may take: held, said
    capped = fit_candidate(candidate, curve, rmax=20.0, refine_positions=True)
    assert capped.message == "positions not refined: 1 free coordinates (more than 0)" and capped.rw == pytest.approx(held.rw)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cif-dir", "no/such/dir"], "no/such/dir: not a directory of CIF files"),
        (["--cif-dir", str(CIFS), "--rmin", "20", "--rmax", "10"], "--rmin 20 must be below --rmax 10"),
        (["--cif-dir", str(CIFS), "--model", "missing.onnx"], "model file missing.onnx does not exist"),
    ],
)
def test_refine_usage_errors(data_dir, args, message):
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr and result.stdout == ""


def test_refine_without_the_plugin_says_how_to_install_it(data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "sgmine_diffpy.cli", None)  # as if the plugin were not installed
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(CIFS)])
    assert result.exit_code == 2
    assert "sgmine refine needs the sgmine-diffpy plugin" in result.stderr
    assert "pip install ./plugins/sgmine-diffpy" in result.stderr and "Traceback" not in result.stderr


def test_refine_names_a_missing_dependency(data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffpy.pdffit2", None)
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(CIFS)])
    assert result.exit_code == 2
    assert "sgmine refine needs diffpy.pdffit2" in result.stderr and "libgsl-dev" in result.stderr


def test_refine_says_how_to_rebuild_a_pdffit2_without_its_compiled_core(data_dir, monkeypatch):
    """pdffit2 built without GSL (and cached by pip) fails on import: the message gives the exact fix."""
    import importlib

    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "diffpy.pdffit2":
            raise ImportError("cannot import name 'pdffit2' from partially initialized module 'diffpy.pdffit2' "
                              "(most likely due to a circular import)")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(CIFS)])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "diffpy.pdffit2, which is installed but cannot be imported (cannot import name 'pdffit2'" in result.stderr
    assert "apt-get install libgsl-dev, then pip install --no-cache-dir --force-reinstall --no-deps diffpy.pdffit2" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_stage_cut_off_before_convergence_does_not_leak_into_the_next(data_dir):
    """pdffit2 keeps a refinement open until its refine_step reports the end; a stage cut off
    after max_steps must be ended before the next stage frees more parameters, or those go
    unrefined (and pdffit2's covariance step writes past its arrays: segfaults)."""
    from sgmine.gr import read_gr
    from sgmine_diffpy.candidates import CandidateModel, space_group_parameters
    from sgmine_diffpy.refine import fit_candidate

    entry = next(e for e in load_library(CIFS).entries if e.name == "Ni.cif")
    phase, sgpars = space_group_parameters(entry)
    candidate = CandidateModel("Ni.gr", 1, 225, "Fm-3m", 1.0, entry, phase, sgpars)
    start = float(entry.structure[0].Uisoequiv)
    result = fit_candidate(candidate, read_gr(data_dir / "Ni.gr"), max_steps=1)  # every stage cut off
    assert result.ok and "lattice stage stopped after 1 iterations" in result.message
    assert abs(result.uiso["Ni1"] - start) > 1e-4 and result.delta2 != 1.0  # the last stage refined them
    assert result.rw < 0.2


def test_a_stage_that_breaks_down_twice_leaves_the_previous_values(monkeypatch):
    """A later stage that raises is undone; when the previous stage then breaks down again on
    its restored values (pdffit2's singular matrix, seen on a decorated GdFeO3-type LaMnO3),
    its values stand and pdffit2's curve is computed at them, instead of a failed fit."""
    from sgmine_diffpy import refine as R

    class FakeFit:
        def __init__(self):
            self.pars, self.calculated = {1: 1.0, 2: 2.0, 3: 3.0}, 0

        def getpar(self, var):
            return self.pars[var]

        def setpar(self, var, value):
            self.pars[var] = value

        def getrw(self):
            return 0.2

        def calc(self):
            self.calculated += 1

    calls = []

    def run_stage(pf, free, max_steps):
        calls.append(tuple(free))
        if len(calls) >= 3:  # the third stage, then the second again on its restored values
            for var in free:
                pf.pars[var] += 10.0
            raise RuntimeError("singular matrix")
        return True

    monkeypatch.setattr(R, "_run_stage", run_stage)
    pf = FakeFit()
    notes, kept = R._refine_in_stages(pf, [("scale", [1], False), ("lattice", [1, 2], False), ("positions", [1, 2, 3], True)], 5)
    assert kept == ["scale", "lattice"] and "positions stage failed" in notes[0]
    assert pf.calculated == 1 and pf.pars == {1: 1.0, 2: 2.0, 3: 3.0}
