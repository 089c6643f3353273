"""The sgmine-diffpy plugin (plugins/sgmine-diffpy): candidate structures from a CIF library as
srfit parameter sets constrained with constrainAsSpaceGroup, and `sgmine refine`, a pdffit2
fit of each candidate to the measured G(r), on the shared Ni.gr and examples/cifs.

The test model is not trained: its ranking of groups is arbitrary except that Ni.gr is
Fm-3m (225) and Si.gr Fd-3m (227), so the refinements use a top-k of 8 (every class).
"""

import csv
import io
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("sgmine_diffpy", reason="the sgmine-diffpy plugin is not installed (pip install -e plugins/sgmine-diffpy)")

from sgmine import predict  # noqa: E402
from sgmine.cli import app  # noqa: E402
from sgmine_diffpy import candidate_models, load_library, refine_candidates  # noqa: E402

CIFS = Path(__file__).resolve().parents[1] / "examples" / "cifs"
runner = CliRunner()

#: spglib's group of each library structure.
LIBRARY_GROUPS = {
    "CdS-wurtzite.cif": 186, "CuPd-CsCl.cif": 221, "MgSe-rocksalt.cif": 225, "NaAu2-Laves-C15.cif": 227,
    "Ni.cif": 225, "ScTe-hexagonal.cif": 194, "Si.cif": 227,
}


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_library_groups_from_spglib():
    library = load_library(CIFS)
    assert library.skipped == []
    assert {e.name: e.space_group for e in library.entries} == LIBRARY_GROUPS
    assert [e.space_group for e in library.with_group(225)] == [225, 225]


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
    """The issue's acceptance check: every candidate structure of examples/cifs fitted to Ni.gr."""
    out = tmp_path / "ni-refine.csv"
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(CIFS), "--top-k", "8",
                                 "--model", str(template_model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out.read_text())
    assert list(rows[0])[:6] == ["file", "cif", "space_group", "model_rank", "probability", "rw"]
    assert sorted(Path(r["cif"]).name for r in rows) == [
        "MgSe-rocksalt.cif", "NaAu2-Laves-C15.cif", "Ni.cif", "ScTe-hexagonal.cif", "Si.cif"]
    assert all(r["status"] == "ok" for r in rows)
    rws = [float(r["rw"]) for r in rows]
    assert rws == sorted(rws)
    assert Path(rows[0]["cif"]).name == "Ni.cif" and rows[0]["space_group"] == "225" and rws[0] < 0.25
    assert rws[1] > 0.5  # the decoys do not fit
    png = tmp_path / "Ni.gr.best-fit.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "best fit plotted in" in result.stderr


def test_refine_no_matching_structure_is_an_error_row(data_dir, template_model, tmp_path):
    library = tmp_path / "cifs"
    library.mkdir()
    shutil.copy(CIFS / "Si.cif", library)
    result = runner.invoke(app, ["refine", str(data_dir / "Ni.gr"), "--cif-dir", str(library), "--top-k", "1",
                                 "--model", str(template_model), "--no-plot"])
    assert result.exit_code == 1
    (row,) = _rows(result.stdout)
    assert row["status"] == "error"
    assert row["message"] == f"no structure in {library} has any of the top-1 groups (225 Fm-3m)"


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
