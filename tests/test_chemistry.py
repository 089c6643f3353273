"""`sgmine identify` with the sample's chemistry (issue #33): parent stoichiometries of doped
formulas, decoration of structure types on their Wyckoff orbits, the higher-symmetry rule, and
an end-to-end identify of a simulated SrFe2As2 from a library without any Sr–Fe–As compound.
"""

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sgmine_diffpy", reason="the sgmine-diffpy plugin is not installed (pip install ./plugins/sgmine-diffpy)")

from diffpy.structure import Atom, Lattice, Structure  # noqa: E402

from sgmine.composition import Composition  # noqa: E402
from sgmine.simulate import PDFParams, simulate, write_gr  # noqa: E402
from sgmine_diffpy import chemistry as C  # noqa: E402
from sgmine_diffpy.identify import ScreeningLibrary, identify_file  # noqa: E402
from sgmine_diffpy.ranking import TIE_RW, fit_order, lift_symmetry, row_elements  # noqa: E402
from sgmine_diffpy.refine import FitResult  # noqa: E402
from sgmine_diffpy.rows import IdentifyRow  # noqa: E402
from sgmine_diffpy.structlib import StructureLibrary, atomic_number, label_cell  # noqa: E402
from sgmine_diffpy.supergroups import point_group_order  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SGMINE_CACHE", str(tmp_path / "cache"))


def _cell(name, params, sites):
    numbers = [atomic_number(el) for el, _ in sites]
    return label_cell(name, "test", params, numbers, np.array([xyz for _, xyz in sites], float), np.ones(len(sites)))


def rock_salt(name="MgO", a=4.21, cation="Mg", anion="O"):
    fcc = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
    sites = [(cation, p) for p in fcc] + [(anion, tuple((np.array(p) + 0.5) % 1)) for p in fcc]
    return _cell(name, (a, a, a, 90, 90, 90), sites)


def baal4(a=4.57, c=11.27):
    """The D1_3 type (BaAl4, I4/mmm): Ba on 2a, Al on 4d and 4e (z = 0.38): the parent of ThCr2Si2."""
    half = np.array([0.5, 0.5, 0.5])
    base = [("Ba", (0, 0, 0)), ("Al", (0, 0.5, 0.25)), ("Al", (0.5, 0, 0.25)), ("Al", (0, 0, 0.38)), ("Al", (0, 0, 0.62))]
    sites = base + [(el, tuple((np.array(p) + half) % 1)) for el, p in base]
    return _cell("BaAl4", (a, a, c, 90, 90, 90), sites)


def srfe2as2_structure():
    """SrFe2As2 (ThCr2Si2 type, I4/mmm; Tegel et al. 2008): a 3.924, c 12.37 Å, As z 0.3612."""
    half = np.array([0.5, 0.5, 0.5])
    base = [("Sr", (0, 0, 0)), ("Fe", (0, 0.5, 0.25)), ("Fe", (0.5, 0, 0.25)), ("As", (0, 0, 0.3612)), ("As", (0, 0, 0.6388))]
    atoms = [Atom(el, xyz=xyz) for el, xyz in base] + [Atom(el, xyz=(np.array(xyz) + half) % 1) for el, xyz in base]
    for atom in atoms:
        atom.Uisoequiv = 0.006
    return Structure(atoms, lattice=Lattice(3.924, 3.924, 12.37, 90, 90, 90))


@pytest.mark.parametrize("formula, parent, majority", [
    ("La0.72Ca0.28MnO3", "(La,Ca)MnO3", {"La", "Mn", "O"}),
    ("CuIr1.76Cr0.24S4", "Cu(Ir,Cr)2S4", {"Cu", "Ir", "S"}),
    ("Ba0.8K0.2(Zn0.85Mn0.15)2As2", "(Ba,K)(Zn,Mn)2As2", {"Ba", "Zn", "As"}),
    ("La1.84Sr0.16CuO4", "(La,Sr)2CuO4", {"La", "Cu", "O"}),
    ("SrTiO3", "SrTiO3", {"Sr", "Ti", "O"}),
    ("Zr H2 P2 O8 H2 O", "ZrH4P2O9", {"Zr", "H", "P", "O"}),
    # an off-stoichiometric sample: Y on zirconium's site, the excess sodium its own
    ("Na2.25Y0.25Zr0.75Cl6", "Na9(Zr,Y)4Cl24", {"Na", "Zr", "Cl"}),
    ("Li0.33La0.56TiO3", "(La,Li)8Ti9O27", {"La", "Ti", "O"}),
])
def test_doped_formulas_map_onto_their_parent(formula, parent, majority):
    groups = C.site_groups(Composition.parse(formula))
    assert C.parent_formula(groups) == parent
    assert {g.majority for g in groups} == majority


def test_site_assignments_follow_multiplicity_and_electronegativity():
    # BaAl4's orbits: Ba 2a (2 atoms in the conventional cell), Al 4d, Al 4e
    found = C.site_assignments(["Ba", "Al", "Al"], [2, 4, 4], [("Sr", 1), ("Fe", 2), ("As", 2)])
    assert {tuple(f) for f in found} == {("Sr", "Fe", "As"), ("Sr", "As", "Fe")}
    # a template with distinct elements: the electronegativity order decides which comes first
    ordered = C.site_assignments(["Th", "Cr", "Si"], [2, 4, 4], [("Sr", 1), ("Fe", 2), ("As", 2)])
    assert ordered[0] == ("Sr", "Fe", "As")
    assert C.site_assignments(["Na", "Cl"], [4, 4], [("Sr", 1), ("O", 3)]) == []


def test_a_rock_salt_decorated_as_nacl():
    library = StructureLibrary.from_cells([rock_salt()])
    found = C.chemistry_candidates(library, Composition.parse("NaCl"))
    # Na on Mg's site (the electronegativity rule's), and the swap (the same structure, shifted)
    assert [c.template for c in found] == ["MgO", "MgO"] and found[1].prior < found[0].prior
    cell = found[0].cell
    assert found[0].origin == "decorated" and cell.symbol == "Fm-3m"
    assert sorted(set(cell.numbers.tolist())) == [11, 17]
    # the primitive cell of a = 4.21 Å MgO, scaled by the atomic radii towards NaCl (5.64 Å)
    a_conventional = cell.lattice[0] * math.sqrt(2)
    assert 5.0 < a_conventional < 6.3


def test_the_chemical_systems_compounds_come_first():
    library = StructureLibrary.from_cells([rock_salt(), rock_salt("NaCl-rs", 5.64, "Na", "Cl")])
    found = C.chemistry_candidates(library, Composition.parse("NaCl"))
    assert found[0].origin == "system" and found[0].cell.structure_id == "NaCl-rs"
    assert len(found) > 1 and found[1].origin == "decorated"  # MgO's rock salt as NaCl
    capped = C.chemistry_candidates(library, Composition.parse("NaCl"), max_candidates=1)
    assert [c.cell.structure_id for c in capped] == ["NaCl-rs"]  # the budget keeps the highest prior


def test_an_element_is_proposed_in_one_element_types_only():
    library = StructureLibrary.from_cells([rock_salt(), _cell("Cu", (3.61,) * 3 + (90,) * 3,
                                                               [("Cu", (0, 0, 0)), ("Cu", (0, 0.5, 0.5)),
                                                                ("Cu", (0.5, 0, 0.5)), ("Cu", (0.5, 0.5, 0))])])
    found = C.chemistry_candidates(library, Composition.parse("Ni"))
    assert [c.cell.symbol for c in found] == ["Fm-3m"]
    assert set(found[0].cell.numbers.tolist()) == {28}


def test_shape_variants_keep_the_volume_and_change_c_over_a():
    cell = baal4()
    variants = C.shape_variants(cell, factors=(0.8, 1.25))
    assert len(variants) == 2
    volume = Lattice(*cell.lattice).volume
    assert [f for _, f in variants] == [0.8, 1.25]
    for v, _ in variants:
        assert Lattice(*v.lattice).volume == pytest.approx(volume, rel=1e-6)
        assert v.space_group == 139


def _row(group, symbol, rw, formula="X"):
    fit = FitResult(source="f", cif="c", space_group=group, symbol=symbol, model_rank=1, probability=0.0,
                    rw=rw, scale=1.0, uiso={"A1": 0.01}, delta2=1.0)
    return IdentifyRow("f.gr", 1, symbol, formula, group, symbol, rw, rw, fit=fit)


def test_the_higher_symmetry_wins_a_tie_and_the_better_fit_wins_otherwise():
    assert TIE_RW == 0.02
    tie = [_row(139, "I4/mmm", 0.080, "Ni"), _row(225, "Fm-3m", 0.090, "Ni")]
    assert [g for g, *_ in fit_order(tie, [(139, "I4/mmm", 0.9)])][:2] == [225, 139]
    apart = [_row(139, "I4/mmm", 0.05, "Ni"), _row(225, "Fm-3m", 0.09, "Ni")]
    assert [g for g, *_ in fit_order(apart, [(225, "Fm-3m", 0.9)])][:2] == [139, 225]
    # a fit of the sample's elements before any other (within the fitting level)
    chem = [_row(225, "Fm-3m", 0.08, "MgSe"), _row(216, "F-43m", 0.20, "ZnS")]
    assert [g for g, *_ in fit_order(chem, [], elements={"Zn", "S"})][:2] == [216, 225]
    # ... but where nothing of the sample's chemistry fits, whatever fits
    assert fit_order([_row(225, "Fm-3m", 0.08, "MgSe"), _row(216, "F-43m", 0.40, "ZnS")], [],
                     elements={"Zn", "S"})[0][0] == 225
    assert point_group_order(225) == 48 and point_group_order(139) == 16


def test_a_refined_structure_of_higher_symmetry_is_lifted():
    # fcc Ni described in I4/mmm (a = b = a_fcc / sqrt 2, c = a_fcc)
    a = 3.52
    structure = Structure([Atom("Ni", xyz=(0, 0, 0)), Atom("Ni", xyz=(0.5, 0.5, 0.5))],
                          lattice=Lattice(a / math.sqrt(2), a / math.sqrt(2), a, 90, 90, 90))
    row = _row(139, "I4/mmm", 0.08, "Ni")
    row.fit.structure = structure
    lift_symmetry(row)
    assert (row.space_group, row.symbol) == (225, "Fm-3m")
    assert "Fm-3m symmetry" in row.message


def test_a_structure_near_a_higher_symmetry_is_proposed_in_it():
    """Rock-salt MgO with every O moved 0.04 Å along z (a polar subgroup at 0.01 Å): made
    symmetric within 0.1 Å it is rock salt again, proposed as a primitive Fm-3m cell of the same
    size; rock salt itself has nothing higher to propose."""
    from sgmine_diffpy.supergroups import higher_symmetry_cells, symmetry_at

    a = 4.21
    fcc = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
    atoms = [Atom("Mg", xyz=p) for p in fcc] + [Atom("O", xyz=((p[0] + 0.5) % 1, (p[1] + 0.5) % 1, (p[2] + 0.5 + 0.04 / a) % 1))
                                               for p in fcc]
    polar = Structure(atoms, lattice=Lattice(a, a, a, 90, 90, 90))
    group = symmetry_at(polar, 0.01)
    assert group is not None and point_group_order(group[0]) < 48
    found = higher_symmetry_cells(polar, group[0], structure_id="MgO-polar")
    assert [(c.space_group, c.structure_id) for c, _ in found][:1] == [(225, "MgO-polar>Fm-3m")]
    cell, tol = found[0]
    assert tol == 0.1 and len(cell.numbers) == 2
    assert abs(Lattice(*cell.lattice).volume - a**3 / 4) < 0.05  # the primitive cell of the same crystal
    assert higher_symmetry_cells(StructureLibrary.from_cells([rock_salt()]).structure(0), 225, structure_id="MgO") == []


def test_srfe2as2_from_a_library_without_any_sr_fe_as_compound(tmp_path):
    """The BaAl4 type decorated as SrFe2As2 (orbits 2a, 4d, 4e) with the sample's c/a and As z
    found by the screen and the refinement: Rw < 0.1 against a simulated SrFe2As2 PDF."""
    r = np.arange(0.5, 30.0001, 0.01)
    g = simulate(srfe2as2_structure(), r, PDFParams(qmax=25.0, qdamp=0.04, uiso=0.006, delta2=2.0))
    g = g + np.random.default_rng(0).normal(0, 0.005 * np.abs(g).max(), len(g))
    path = tmp_path / "SrFe2As2.gr"
    write_gr(path, r, g, {"qmax": 25.0, "qdamp": 0.04})
    library = StructureLibrary.from_cells([baal4(), rock_salt(), rock_salt("KCl", 6.29, "K", "Cl")])
    screening = ScreeningLibrary(library, "test")
    screening._compounds = library  # this library alone: no Sr–Fe–As compound anywhere
    rows, summary = identify_file(str(path), screening, top=3, composition="SrFe2As2")
    assert summary.composition == "SrFe2As2" and summary.composition_source == "option"
    best = summary.best
    assert best is not None and best.formula == "SrFe2As2"
    assert (best.space_group, best.symbol) == (139, "I4/mmm")
    assert best.rw < 0.1
    assert summary.ranking[0][0] == 139
    # a structure of the sample's chemistry fits: the library's own (BaAl4, the rock salts) are not refined
    assert rows and all(row_elements(r) == {"Sr", "Fe", "As"} for r in rows), [r.formula for r in rows]


def test_a_wrong_composition_falls_back_to_the_library(tmp_path):
    """A rock-salt MgO PDF given as SrFe2As2: nothing of that chemistry fits, so the library's
    structures are refined too, MgO fits and leads, and the summary says the chemistry did not fit."""
    mgo = StructureLibrary.from_cells([rock_salt()])
    r = np.arange(0.5, 30.0001, 0.01)
    g = simulate(mgo.structure(0), r, PDFParams(qmax=25.0, qdamp=0.04, uiso=0.006, delta2=1.0))
    path = tmp_path / "MgO.gr"
    write_gr(path, r, g, {"qmax": 25.0, "qdamp": 0.04})
    library = StructureLibrary.from_cells([baal4(), rock_salt(), rock_salt("KCl", 6.29, "K", "Cl")])
    screening = ScreeningLibrary(library, "test")
    screening._compounds = library
    rows, summary = identify_file(str(path), screening, top=3, composition="SrFe2As2")
    assert {r.formula for r in rows} >= {"SrFe2As2", "MgO"}
    assert summary.best is not None and summary.best.formula == "MgO" and summary.best.rw < 0.1
    assert summary.ranking[0][0] == 225
    assert "nothing made of As Fe Sr fits" in summary.message


def test_holding_out_a_chemical_system_removes_it_from_screen_and_chemistry():
    library = StructureLibrary.from_cells([rock_salt(), rock_salt("NaCl-rs", 5.64, "Na", "Cl"), baal4()])
    screening = ScreeningLibrary(library, "test")
    screening._compounds = library
    held = screening.hold_out([{"Na", "Cl"}])
    assert held._usable.tolist() == [True, False, True]
    assert "NaCl-rs" not in held.compounds().ids.tolist() and len(held.compounds()) == 2
    found = C.chemistry_candidates(held.compounds(), Composition.parse("NaCl"))
    assert found and all(c.origin == "decorated" for c in found)


@pytest.mark.parametrize("amounts, exact, near", [
    ([2.25, 1, 6], (9, 4, 24), (2, 1, 6)),  # Na2.25(Zr,Y)Cl6: excess Na on interstitial sites
    ([1.8, 1], (9, 5), (2, 1)),  # Cu1.8Se
    ([0.93, 1], None, (1, 1)),  # Fe0.93O: no exact parent within 12 formula units
    ([0.33, 1], (1, 3), (1, 3)),  # a third written as 0.33
    ([2, 1, 4], (2, 1, 4), (2, 1, 4)),
])
def test_exact_and_near_stoichiometry(amounts, exact, near):
    assert C.integer_amounts(amounts)[0] == exact
    assert C.near_amounts(amounts) == near
    # the exact test is absolute: a multiplier of 3 does not round 3.25 to 10/3
    assert C.integer_amounts([3.25, 6])[1] == 4


def test_an_off_stoichiometric_sample_is_also_decorated_as_its_simple_parent():
    library = StructureLibrary.from_cells([rock_salt()])
    # Na0.9Cl's exact parent, Na9Cl10, fits no template; its near one, NaCl, does
    found = C.chemistry_candidates(library, Composition.parse("Na0.9Cl"))
    assert [c.template for c in found] == ["MgO", "MgO"] and found[0].origin == "decorated"
    assert sorted(set(found[0].cell.numbers.tolist())) == [11, 17]
    # and it ranks behind an exact parent's candidates: its prior carries NEAR_PENALTY
    exact = C.chemistry_candidates(library, Composition.parse("NaCl"))
    assert found[0].prior == pytest.approx(exact[0].prior - C.NEAR_PENALTY)
