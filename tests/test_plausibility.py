"""Input that is not a G(r) the model can judge gets an error row or in_domain = false, never a
confident answer; every real measured G(r) stays accepted (issue #13)."""

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest

from sgmine import predict, read_gr
from sgmine.plausibility import check_curve, check_file, declared_quantity
from sgmine.rmcprofile import is_rmcprofile, to_pdfgui

HERE = Path(__file__).parent
NOT_GR = HERE / "data" / "not_gr"
EXPECTED = list(csv.DictReader(open(NOT_GR / "EXPECTED.csv", encoding="utf-8")))
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
REAL = sorted((ROOT / "examples" / "data").glob("*.gr")) + sorted((SHARED / "experimental").glob("*.gr")) + sorted(
    (SHARED / "measured").glob("*.gr"))


def test_corpus_is_complete():
    on_disk = {p.name for p in NOT_GR.iterdir() if p.suffix != ".py" and p.name != "EXPECTED.csv"}
    assert on_disk == {row["file"] for row in EXPECTED}


@pytest.mark.parametrize("case", EXPECTED, ids=[row["file"] for row in EXPECTED])
def test_each_curve_that_is_not_a_gr(case, template_model):
    (pred,) = predict([NOT_GR / case["file"]], model=template_model, top_k=3)
    assert pred.status == case["outcome"], pred.message or pred.doubts
    if pred.ok:
        assert pred.in_domain is {"false": False, "": None}[case["in_domain"]], pred.doubts
        assert case["text"] in " | ".join(pred.doubts if case["in_domain"] else pred.warnings)
    else:
        assert case["text"] in pred.message and not pred.candidates and pred.confidence is None
        assert str(NOT_GR) not in pred.message  # the file column already names it


@pytest.mark.parametrize("case", [row for row in EXPECTED if "does not overlap" not in row["text"]],
                         ids=lambda row: row["file"])
def test_every_command_refuses_what_scan_refuses(case):
    """check_file (identify's reading) refuses exactly the files that scan refuses, for the same
    reason; only the overlap with the model's r-range is scan's own."""
    verdict = check_file(read_gr(NOT_GR / case["file"]))
    if case["outcome"] == "error":
        assert verdict.refusal is not None and case["text"] in verdict.refusal
    else:
        assert verdict.refusal is None


def test_identify_refuses_an_iq_file(tmp_path):
    """`sgmine identify` on a file whose header says outputtype = iq: an error row, exit 1, and
    no structure screened or refined (it used to "identify" such a file)."""
    pytest.importorskip("sgmine_diffpy", reason="the sgmine-diffpy plugin is not installed")
    from typer.testing import CliRunner

    from sgmine.cli import app

    out = tmp_path / "iq.csv"
    result = CliRunner().invoke(app, ["identify", str(NOT_GR / "outputtype_iq.gr"), "--library",
                                      str(ROOT / "examples" / "cifs"), "--out", str(out)])
    assert result.exit_code == 1, result.output
    (row,) = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["status"] == "error" and "outputtype = iq" in row["message"] and row["structure_id"] == ""


@pytest.mark.skipif(not (SHARED / "measured").is_dir(), reason="../shared/data is not there")
def test_shared_measured_files_are_all_there():
    assert len(REAL) >= 30


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_real_measured_files_stay_accepted(path, template_model):
    """No real G(r) (x-ray, neutron, bulk, nanoparticle, organic; PDFgetX2/X3/N, xPDFsuite,
    RMCProfile) is refused or doubted by the checks."""
    (pred,) = predict([path], model=template_model)
    assert pred.ok, pred.message
    assert pred.doubts == [] and pred.in_domain is None
    curve = read_gr(path)
    g = to_pdfgui(curve.r, curve.g) if is_rmcprofile(curve.header_lines) else curve.g
    assert check_curve(curve.r, g).trusted and check_file(curve).trusted


def test_header_and_suffix_say_what_the_data_are():
    assert "S(Q)" in declared_quantity(metadata={"outputtype": "sq"}, source="x.gr")
    assert declared_quantity(metadata={"outputtype": "gr"}, source="x.gr") is None
    assert "F(Q)" in declared_quantity(source="sample.fq.gz")
    assert "I(Q)" in declared_quantity(header_lines=["#S 1", "#L Q I(Q)"])
    assert declared_quantity(header_lines=["#L r($\\AA$)  G($\\AA^{-2}$)"], source="Ni.gr") is None
    # PDFgetX2 G(r) headers name the .sq/.iq suffixes of other files: that is no declaration
    assert declared_quantity(header_lines=["iqfilesurfix=.iq    sqfilesurfix=.sq"], source="a.gr") is None


def test_rmcprofile_conversion_is_the_documented_formula():
    """G(r) = 4πρ₀/(Σcb)² · r · G_RMC(r): the converted curve is the PDFgui G(r) up to that factor."""
    r = np.linspace(0.02, 30, 1500)
    rho0, cb2 = 0.0917, 0.1056
    g_minus_1 = np.sin(3 * r) * np.exp(-r / 10)  # any g(r) − 1
    keen = cb2 * g_minus_1
    pdfgui = 4 * np.pi * rho0 * r * g_minus_1
    np.testing.assert_allclose(to_pdfgui(r, keen) * 4 * np.pi * rho0 / cb2, pdfgui, rtol=1e-12)
    assert is_rmcprofile(["        2000", "rmc G(r)# POL68765.mint01 600 uamps"])
    assert not is_rmcprofile(["#S 1", "#L r G(r)"]) and not is_rmcprofile(["2000", "1.0 2.0"])


def test_rmcprofile_file_scores_like_its_pdfgui_curve(template_model):
    """The converted RMCProfile file reaches the model exactly as the PDFgui G(r) it came from."""
    curve = read_gr(NOT_GR / "rmcprofile_format.gr")
    pdfgui = to_pdfgui(curve.r, curve.g) * 1234.5  # any positive factor
    (from_file,) = predict([NOT_GR / "rmcprofile_format.gr"], model=template_model, top_k=8)
    (from_array,) = predict((curve.r, pdfgui), model=template_model, top_k=8)
    assert [c.space_group for c in from_file.candidates] == [c.space_group for c in from_array.candidates]
    np.testing.assert_allclose([c.probability for c in from_file.candidates],
                               [c.probability for c in from_array.candidates], atol=1e-6)


def test_arrays_are_checked_too(template_model):
    r = np.arange(0, 30, 0.01)
    (noise,) = predict((r, np.random.default_rng(0).normal(size=r.size)), model=template_model)
    assert noise.status == "error" and "white noise" in noise.message


def _c60_crystal():
    """fcc C60 (a = 14.17 Å): truncated-icosahedron molecules (C–C 1.44 Å) at the fcc sites."""
    from diffpy.structure import Atom, Lattice, Structure

    phi, a = (1 + 5 ** 0.5) / 2, 14.17
    vertices = set()
    for base in ((0, 1, 3 * phi), (1, 2 + phi, 2 * phi), (phi, 2, phi ** 3)):  # edge length 2
        for shift in range(3):
            cyclic = base[shift:] + base[:shift]
            for signs in itertools.product((1, -1), repeat=3):
                vertices.add(tuple(round(x * s, 9) for x, s in zip(cyclic, signs)))
    molecule = np.array(sorted(vertices)) * 1.44 / 2
    sites = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return Structure([Atom("C", xyz=site + xyz / a) for site in sites for xyz in molecule],
                     lattice=Lattice(a, a, a, 90, 90, 90))


@pytest.fixture(scope="module")
def c60_with_ripples():
    """A C60 G(r) as diffpy.srfit's measured C60.gr looks (x-ray, Qmax 18, r to 20 Å): the
    simulated curve plus the transform of a normalisation residual c in S(Q) (what an imperfect
    self-scattering subtraction leaves), (2c/π)·[sin(Qmax r)/r² − Qmax cos(Qmax r)/r]: ripples
    of period 2π/Qmax growing as 1/r towards r = 0, here above the C–C peak below 0.5 Å and
    at 65 % of it between 0.5 and 0.8 Å (C60.gr: 170 % and 66 %)."""
    pytest.importorskip("diffpy.structure")
    from sgmine.simulate import PDFParams, simulate

    qmax = 18.0
    r = np.round(np.arange(0.01, 20.0001, 0.01), 4)
    g = simulate(_c60_crystal(), r, PDFParams(qmax=qmax, qdamp=0.03, uiso=0.003, delta2=0.0))
    residual = 2 / np.pi * (np.sin(qmax * r) / r ** 2 - qmax * np.cos(qmax * r) / r)
    bond = g[(r > 1.3) & (r < 1.6)].max()
    ripples = g + 0.65 * bond / residual[(r >= 0.5) & (r < 0.8)].max() * residual
    assert ripples[r < 0.5].max() > bond and check_curve(r, g).trusted  # ripples above the C–C peak; clean: fine
    return r, ripples


def test_termination_ripples_below_the_first_peak_are_a_warning(c60_with_ripples, template_model):
    """C60.gr was refused ("first peak at 0.55 Å ... is r in nm?"): the unit check looks at the
    first peak beyond 0.8 Å, where the first interatomic distance can be; the ripples below it
    are a warning, and the same curve with r in nm is still refused."""
    r, g = c60_with_ripples
    verdict = check_curve(r, g)
    assert verdict.refusal is None and verdict.trusted
    (warning,) = verdict.warnings
    assert "termination ripples below the first peak (1.4" in warning and "0.5" in warning
    (pred,) = predict((r, g), model=template_model)
    assert pred.ok and pred.in_domain is None and any("termination ripples" in w for w in pred.warnings)
    for step in (0.001, 0.002, 0.01, 0.02):  # r in nm, as written at any usual step
        nm = np.arange(0.001, 2.0, step)
        refusal = check_curve(nm, np.interp(nm, r / 10, g)).refusal
        assert refusal is not None and "r in nm" in refusal, step


def test_maxima_as_high_as_the_peak_beyond_are_the_first_peak(data_dir):
    """Ni.gr with r in nm, sampled too coarsely (0.03 nm) for its spectrum to show it: its maxima
    below 0.8 (the Ni shells at 5–8 Å) are no side lobes of the peak beyond, so the first of them
    is the first peak and the curve is refused."""
    ni = read_gr(data_dir / "Ni.gr")
    nm = np.arange(0.0, 6.0, 0.03)
    refusal = check_curve(nm, np.interp(nm, ni.r / 10, ni.g)).refusal
    assert refusal is not None and "first peak is at 0.6" in refusal and "r in nm" in refusal
