"""One header reader for every command (issue #35): PDFgetX3/xPDFsuite, PDFgetX2, PDFgetN and
RMCProfile headers, on real header lines (tests/data/headers, copied from ../shared/data) and on
every real file of ../shared/data where it is there."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from sgmine.composition import Composition
from sgmine.gr import read_gr
from sgmine.header import Header, element_table, header_value, parse_entries

HERE = Path(__file__).parent
HEADERS = HERE / "data" / "headers"
ROOT = HERE.parent
NI_GR = ROOT / "examples" / "data" / "Ni.gr"
SHARED = ROOT.parent / "shared" / "data"
MEASURED = SHARED / "measured"
#: A clean key: one word, as the header writes it before "=".
CLEAN_KEY = re.compile(r"[A-Za-z_][\w.]*")


def _lines(name: str) -> list[str]:
    return (HEADERS / name).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name, program, qmax, radiation, temperature, composition", [
    ("pdfgetx2_SrTiO3.txt", "PDFgetX2", 26.0, "xray", 300.0, ("Sr1 Ti1 O3", "PDFgetX2 element table")),
    ("pdfgetn_La0.925Ca0.075MnO3.txt", "PDFgetN", 35.0, "neutron", 190.0,
     ("O0.6 Ca0.015 Mn0.2 La0.185", "PDFgetN element table")),
    ("pdfgetx3_Na11Sn2PS12.txt", "PDFgetX3", 24.0, "xray", None, ("Na11Sn2PS12", "composition entry")),
])
def test_typed_values_of_each_programs_header(name, program, qmax, radiation, temperature, composition):
    header = Header.parse(_lines(name))
    assert header.program == program
    assert header.qmax == qmax and header.radiation == radiation and header.temperature == temperature
    assert (header.composition.text, header.composition.source) == composition
    assert header.qdamp is None
    assert all(CLEAN_KEY.fullmatch(key) for key in header.entries), [k for k in header.entries if not CLEAN_KEY.fullmatch(k)]


def test_pdfgetn_keys_are_clean_and_values_whole():
    """The garbled keys of a key = value reading ('Run Information     runCorrection') are gone;
    values with blanks and '=' in them stay whole."""
    entries = parse_entries(_lines("pdfgetn_La0.925Ca0.075MnO3.txt"))
    assert entries["runCorrection"] == "T" and entries["run"] == "npdf_01561"  # the sample's run: the first
    assert entries["runTitle"] == "Run 1561: LCMO x=0.075 - #1050209, T= 190.0 K, TL_displex"
    assert entries["smoothParam"] == "32 32 0" and entries["radius"] == 0.45325
    assert entries["modEqn"] == "1.0000*S(Q) +0.0000 +0.0000*Q" and entries["temp"] == 190.0


def test_pdfgetx2_words_and_notes():
    entries = parse_entries(_lines("pdfgetx2_SrTiO3.txt"))
    assert entries["qmax"] == 26.0 and entries["optqmax"] == 30.0 and entries["radiationtype"] == 3.0
    assert entries["datatype"] == 1.0  # "1    (0:SPEC, 1:CHI, ...)": the note is not the value
    assert entries["title"] == "X-ray PDF" and entries["lambda"] == pytest.approx(0.142959)


@pytest.mark.parametrize("line, expected", [
    ("qmax = 25.0", {"qmax": 25.0}),
    ("# Qdamp = 0.04", {"Qdamp": 0.04}),
    ("backgroundfile = ", {}),
    ("composition = Ni  O", {"composition": "Ni  O"}),
    ("## Damp     Qmin=1.6     Qmax=28     startDampQ=28", {"Qmin": 1.6, "Qmax": 28.0, "startDampQ": 28.0}),
    ("qmin=0.5 qmax=25", {"qmin": 0.5, "qmax": 25.0}),
    ("temp=15     runTitle=LSCO (x=0.00)                        ", {"temp": 15.0, "runTitle": "LSCO (x=0.00)"}),
    ("in beam: radius=0.4763     height=3.26", {"radius": 0.4763, "height": 3.26}),
    ("detefficiency_isa=1    detefficiencytype=2    (0-1: linear, 2-3: quadratic)",
     {"detefficiency_isa": 1.0, "detefficiencytype": 2.0}),
    ("#L r(A)  G(A^-2)", {}),
    ("[PDF]", {}),
])
def test_one_line(line, expected):
    assert parse_entries([line]) == expected


def test_rmcprofile_header():
    header = Header.parse(["        2500", "rmc G(r)SrTiO3 5K   "])
    assert header.program == "RMCProfile" and header.entries == {"points": 2500.0, "title": "rmc G(r)SrTiO3 5K"}
    assert header.radiation is None and header.qmax is None and header.composition is None


def test_element_tables_without_amounts_or_with_zero_amounts():
    """An element left at amount 0 is not in the sample; with no positive amount, the symbols."""
    x2 = ["#L symbol valence fractions z", "  Sr 0.00 1.0 38", "  Ti 0.00 0.0 22", "  O 0.00 3.0 8",
          "geometry=2    mut=0.5"]
    assert element_table(x2).text == "Sr1 O3"
    zeros = ["Element relAtomNum atomMass", "  C   0.0  12.0", "  H   0.0  1.0", "density=1.0"]
    assert element_table(zeros).text == "C H" and element_table(zeros).source == "PDFgetN element table"
    assert element_table(["#L r G(r)"]) is None


def test_a_composition_entry_comes_before_an_element_table():
    header = Header.parse(["composition = TiO2", "Element relAtomNum atomMass", "  Ti 1.0 47.9", "  O 2.0 16.0"])
    assert [(c.text, c.source) for c in header.compositions] == [("TiO2", "composition entry"),
                                                                  ("Ti1 O2", "PDFgetN element table")]


def test_radiation_entries_come_before_the_program():
    lines = _lines("pdfgetx2_SrTiO3.txt")
    assert Header.parse(lines).radiation == "xray"
    assert Header.parse(["mode = neutron", *lines]).radiation == "neutron"
    assert Header(entries={"stype": "N"}).radiation == "neutron"
    assert Header(entries={"mode": "xray"}).radiation == "xray" and Header().radiation is None


def test_temperature_and_temp_find_each_other():
    assert header_value({"temp": 15.0}, "temperature") == 15.0
    assert header_value({"temperature": 300.0}, "temp") == 300.0
    assert header_value({"temp": 15.0, "Temperature": 20.0}, "temperature") == 20.0  # the name asked first
    assert header_value({"QMAX": 1}, "qmax") == 1 and header_value({}, "temp") is None


def _with_ni_rows(tmp_path: Path, header: str) -> Path:
    rows = [line for line in NI_GR.read_text().splitlines() if line[:1].isdigit()]
    path = tmp_path / "x.gr"
    path.write_text((HEADERS / header).read_text(encoding="utf-8") + "\n".join(rows) + "\n")
    return path


def test_a_curve_reads_its_header(tmp_path):
    curve = read_gr(_with_ni_rows(tmp_path, "pdfgetn_La0.925Ca0.075MnO3.txt"))
    assert curve.qmax == 35.0 and curve.header.temperature == 190.0 and curve.header.radiation == "neutron"
    # a command that replaces the header's Qmax (identify, with one beyond the data's): the header follows
    curve.metadata = {k: v for k, v in curve.metadata.items() if k.lower() != "qmax"} | {"qmax": 20.0}
    assert curve.qmax == 20.0 and curve.header.temperature == 190.0


def test_scan_fills_qmax_from_a_pdfgetx2_header(tmp_path, template_model):
    from sgmine import predict

    (pred,) = predict([_with_ni_rows(tmp_path, "pdfgetx2_SrTiO3.txt")], model=template_model)
    assert pred.ok and pred.qmax == 26.0 and pred.metadata["temperature"] == 300.0


# ----------------------------------------------------------------- every real file of ../shared/data

def _catalog() -> dict[str, dict[str, str]]:
    if not (MEASURED / "catalog.csv").is_file():
        return {}
    with open(MEASURED / "catalog.csv", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


CATALOG = _catalog()
#: Headers whose composition is not the sample's (catalog notes: the salts the sample was made
#: from; H left out).
COMPOSITION_DIFFERS = {"CeO2_nanoparticle_300K_xray_X17B3.gr", "MAPbI3_350K_xray.gr"}


@pytest.mark.skipif(not CATALOG, reason="../shared/data is not there")
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_shared_file_as_its_catalog_describes_it(name):
    """Program, radiation, Qmax, temperature and composition as the catalog's notes (written from
    the files' headers by hand) and compositions.csv say."""
    row, header = CATALOG[name], read_gr(MEASURED / name).header
    assert all(CLEAN_KEY.fullmatch(key) for key in header.entries)
    said = re.search(r"(PDFget\w+|xPDFsuite) header", row["notes"])
    if said:
        assert header.program == said.group(1)
    expected = "neutron" if row["radiation"].startswith("neutron") else "xray"
    assert header.radiation == (None if header.program == "RMCProfile" else expected)
    qmax = re.search(r"\| Qmax(?:\([^)]*\))?=([\d.]+)", row["notes"])
    if qmax:
        assert header.qmax == float(qmax.group(1))
    temperature = re.search(r"temp(?:erature)?=(\d+)", row["notes"])
    if temperature:
        assert header.temperature == float(temperature.group(1))
    if header.composition is not None and name not in COMPOSITION_DIFFERS:
        with open(MEASURED / "compositions.csv", encoding="utf-8") as handle:
            formula = {r["file"]: r["composition"] for r in csv.DictReader(handle)}[name]
        found, known = Composition.parse(header.composition.text).fractions(), Composition.parse(formula).fractions()
        assert found.keys() == known.keys()
        np.testing.assert_allclose([found[e] for e in known], list(known.values()), atol=1e-3)


@pytest.mark.skipif(not CATALOG, reason="../shared/data is not there")
def test_the_shared_headers_of_each_kind_are_read():
    programs = [read_gr(MEASURED / name).header.program for name in CATALOG]
    assert {"PDFgetX2", "PDFgetN", "PDFgetX3", "xPDFsuite", "RMCProfile"} <= set(programs)
    assert all(read_gr(MEASURED / name).header.composition is not None for name in CATALOG if "RMCformat" not in name)
