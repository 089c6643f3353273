"""Composition parsing (sgmine.composition): formulas, tables, precedence, bad input."""

from pathlib import Path

import pytest

from sgmine.composition import Composition, CompositionError, composition_for, parse_formula, read_composition_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.parametrize("text, expected", [
    ("La0.8Ca0.2MnO3", {"La": 0.8, "Ca": 0.2, "Mn": 1, "O": 3}),
    ("Ba0.8K0.2(Zn0.85Mn0.15)2As2", {"Ba": 0.8, "K": 0.2, "Zn": 1.7, "Mn": 0.3, "As": 2}),
    ("CuIr1.76Cr0.24S4", {"Cu": 1, "Ir": 1.76, "Cr": 0.24, "S": 4}),
    ("Zr H2 P2 O8 H2 O", {"Zr": 1, "H": 4, "P": 2, "O": 9}),
    ("C 10 H 8", {"C": 10, "H": 8}),
    ("CuSO4·5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
    ("[Co(NH3)6]Cl3", {"Co": 1, "N": 6, "H": 18, "Cl": 3}),
    ("  SrFe2As2 ", {"Sr": 1, "Fe": 2, "As": 2}),
    ("C6D14O6", {"C": 6, "D": 14, "O": 6}),
    ("Ni", {"Ni": 1}),
    ("La2Cu1O4Sr0", {"La": 2, "Cu": 1, "O": 4}),
])
def test_formulas_parse(text, expected):
    amounts = parse_formula(text)
    assert list(amounts) == list(expected)
    assert amounts == pytest.approx(expected)


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("   ", "empty"),
    ("La2-xSrxCuO4", "unexpected '-'"),
    ("Xx2O", "'Xx' is not an element"),
    ("(Fe2O3", "not closed"),
    ("Fe)2O3", "unbalanced"),
    ("sio2", "capital letter"),
    ("2", "no element"),
    ("Fe()", "empty bracket"),
    ("O0", "zero"),
])
def test_bad_formulas_say_why(text, words):
    with pytest.raises(CompositionError, match=words.replace("(", r"\(")):
        parse_formula(text)


def test_agrees_with_pymatgen_where_both_read():
    pymatgen = pytest.importorskip("pymatgen.core")
    for text in ["La0.8Ca0.2MnO3", "Ba0.8K0.2(Zn0.85Mn0.15)2As2", "CuIr1.76Cr0.24S4", "CH6NPbI3",
                 "Na2.25Y0.25Zr0.75Cl6", "C19H16ClNO4", "[Co(NH3)6]Cl3", "Ca5(PO4)3F"]:
        ours = parse_formula(text)
        theirs = {str(el): amount for el, amount in pymatgen.Composition(text).items()}
        assert ours == pytest.approx(theirs), text


def test_composition_formula_and_fractions():
    comp = Composition.parse("Zr H2 P2 O8 H2 O", source="option")
    assert comp.formula == "ZrH4P2O9"
    assert comp.elements == ("Zr", "H", "P", "O")
    assert sum(comp.fractions().values()) == pytest.approx(1)
    assert comp.source == "option" and comp.text == "Zr H2 P2 O8 H2 O"


def test_precedence_table_then_option_then_header(tmp_path):
    table_file = tmp_path / "compositions.csv"
    table_file.write_text("file,composition\nbeamtime/a.gr,SrFe2As2\nb.gr,\nc.gr,La2-xSrx\n", encoding="utf-8")
    table = read_composition_table(table_file)
    # by the name as given, and by base name
    assert composition_for("beamtime/a.gr", table=table, option="Ni", header="O2").source == "table"
    assert composition_for("other/a.gr", table=table).formula == "SrFe2As2"
    # an empty table entry falls through to the option, then the header
    assert composition_for("b.gr", table=table, option="Ni", header="CeO2").formula == "Ni"
    comp = composition_for("d.gr", table=table, header="CeO2")
    assert comp.formula == "CeO2" and comp.source == "header"
    assert composition_for("d.gr") is None
    with pytest.raises(CompositionError, match=r"c\.gr: the composition from the composition table"):
        composition_for("c.gr", table=table, header="CeO2")


def test_bad_tables_are_refused_with_the_file_named(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(CompositionError, match="nope.csv: cannot read"):
        read_composition_table(missing)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,formula\na.gr,Ni\n", encoding="utf-8")
    with pytest.raises(CompositionError, match="wrong.csv: a composition table needs"):
        read_composition_table(wrong)
    twice = tmp_path / "twice.csv"
    twice.write_text("file,composition\na.gr,Ni\na.gr,Cu\n", encoding="utf-8")
    with pytest.raises(CompositionError, match="line 3: a.gr is listed twice"):
        read_composition_table(twice)


@pytest.mark.skipif(not (SHARED / "measured" / "compositions.csv").exists(), reason="needs ../shared/data")
def test_every_shared_composition_parses():
    for folder in ("measured", "experimental"):
        table = read_composition_table(SHARED / folder / "compositions.csv")
        assert table
        for name, text in table.items():
            assert composition_for(name, table=table).amounts, name
