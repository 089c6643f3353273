"""Structure sources for training data: CIF folders, CIF tables, PyXtal crystals, spglib labels."""

from __future__ import annotations

import csv
import gzip
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffpy.structure")
spglib = pytest.importorskip("spglib")

from training import structures  # noqa: E402
from training.structures import (  # noqa: E402
    CifFile,
    CifText,
    StructureError,
    cif_directory,
    cif_table,
    space_group_of,
    synthetic_crystals,
    wyckoff_combinations,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
MP_TABLE = ROOT.parent / "shared" / "data" / "structures" / "mp_structures.csv.gz"  # ../shared beside the checkout

# Nickel written out in P1 (all four atoms listed) while its header claims P-1: the label must
# come from the atoms (Fm-3m, 225), not from the header.
NI_P1_CIF = """data_Ni_P1
_symmetry_space_group_name_H-M 'P -1'
_symmetry_Int_Tables_number 2
_cell_length_a 3.52
_cell_length_b 3.52
_cell_length_c 3.52
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Ni1 Ni 0.0 0.0 0.0 1
Ni2 Ni 0.0 0.5 0.5 1
Ni3 Ni 0.5 0.0 0.5 1
Ni4 Ni 0.5 0.5 0.0 1
"""

# A random Cu-Au alloy: every fcc site half Cu, half Au (two atoms on each position).
CUAU_DISORDERED_CIF = """data_CuAu
_cell_length_a 3.8
_cell_length_b 3.8
_cell_length_c 3.8
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
""" + "".join(
    f"{el}{i} {el} {x} {y} {z} 0.5\n"
    for i, (x, y, z) in enumerate([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)])
    for el in ("Cu", "Au")
)


def _cif_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cifs"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(DATA / "Ni.cif", folder / "Ni.cif")
    shutil.copy(DATA / "Si.cif", folder / "sub" / "Si.CIF")
    (folder / "ni_p1.cif").write_text(NI_P1_CIF)
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a banana\nthis is not a CIF\n")
    (folder / "notes.txt").write_text("not a structure")
    return folder


def test_real_cifs_are_labelled_by_spglib():
    ni = CifFile(str(DATA / "Ni.cif"), "Ni").load()
    si = CifFile(str(DATA / "Si.cif"), "Si").load()
    assert (ni.space_group, ni.formula, len(ni.structure)) == (225, "Ni", 4)
    assert (si.space_group, si.formula, len(si.structure)) == (227, "Si", 8)
    assert ni.source == f"cif:{DATA / 'Ni.cif'}"


def test_label_comes_from_the_atoms_not_the_header(tmp_path):
    path = tmp_path / "ni_p1.cif"
    path.write_text(NI_P1_CIF)
    assert CifFile(str(path), "ni_p1").load().space_group == 225


def test_disordered_sites_are_labelled_by_their_average_structure():
    record = CifText("cuau", CUAU_DISORDERED_CIF).load()
    assert record.space_group == 225
    assert record.formula == "CuAu"


def test_a_distorted_structure_gets_the_lower_group():
    from sgmine.simulate import read_structure

    structure = read_structure(DATA / "Ni.cif")
    structure.lattice.setLatPar(c=3.70)  # tetragonal distortion: Fm-3m -> I4/mmm
    assert space_group_of(structure) == 139
    structure.lattice.setLatPar(c=3.52 + 0.001)  # within symprec of cubic
    assert space_group_of(structure, symprec=0.01) == 225
    assert space_group_of(structure, symprec=1e-5) == 139


def test_cif_directory_finds_cifs_recursively_and_reports_unreadable(tmp_path):
    folder = _cif_folder(tmp_path)
    tasks = cif_directory(folder)
    assert [t.structure_id for t in tasks] == ["Ni", "broken", "ni_p1", "sub/Si"]
    results = []
    for task in tasks:
        try:
            results.append(task.load())
        except StructureError as exc:
            results.append(exc)
    errors = [r for r in results if isinstance(r, StructureError)]
    assert len(errors) == 1 and "broken.cif" in str(errors[0])
    labels = {r.structure_id: r.space_group for r in results if not isinstance(r, StructureError)}
    assert labels == {"Ni": 225, "ni_p1": 225, "sub/Si": 227}


def test_cif_directory_errors_name_the_folder(tmp_path):
    with pytest.raises(StructureError, match="not a folder"):
        cif_directory(tmp_path / "missing")
    with pytest.raises(StructureError, match="no .cif files"):
        cif_directory(tmp_path)


def _write_table(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["material_id", "space_group", "cif"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_cif_table_relabels_with_spglib_and_preselects_by_the_table_label(tmp_path):
    table = _write_table(
        tmp_path / "table.csv.gz",
        [
            {"material_id": "mp-ni", "space_group": "2", "cif": NI_P1_CIF},  # wrong table label
            {"material_id": "mp-si", "space_group": "227", "cif": (DATA / "Si.cif").read_text()},
            {"material_id": "mp-bad", "space_group": "227", "cif": "garbage"},
        ],
    )
    tasks = cif_table(table)
    assert [t.material_id for t in tasks] == ["mp-ni", "mp-si", "mp-bad"]
    ni = tasks[0].load()
    assert (ni.space_group, ni.source, ni.structure_id) == (225, "mp:mp-ni", "mp-ni")
    with pytest.raises(StructureError, match="mp-bad"):
        tasks[2].load()
    assert [t.material_id for t in cif_table(table, [227])] == ["mp-si", "mp-bad"]


def test_cif_table_errors(tmp_path):
    with pytest.raises(StructureError, match="no such file"):
        cif_table(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,x\n")
    with pytest.raises(StructureError, match="missing column"):
        cif_table(bad)


def test_wyckoff_statistics_come_from_pyxtal():
    pytest.importorskip("pyxtal")
    combos, probs = wyckoff_combinations(225, max_atoms=64)
    assert probs.sum() == pytest.approx(1.0)
    # the most common Fm-3m combination among real materials: 8c + 4b + 4a (Heusler / fluorite-like)
    assert combos[int(np.argmax(probs))] == (9, 10, 11)
    from pyxtal.symmetry import Group

    group = Group(225)
    assert all(sum(group[i].multiplicity for i in c) <= 64 for c in combos)
    with pytest.raises(StructureError):
        wyckoff_combinations(225, max_atoms=1)


def _min_distance(structure) -> float:
    lattice = np.asarray(structure.lattice.base)
    xyz = np.asarray(structure.xyz)
    shifts = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T
    d = (xyz[None, :, None, :] - xyz[:, None, None, :] + shifts[None, None, :, :]) @ lattice
    dist = np.linalg.norm(d, axis=-1)
    return float(dist[dist > 1e-6].min())


@pytest.mark.parametrize("placement", structures.PLACEMENTS)
def test_synthetic_crystals_have_the_requested_group_and_sensible_chemistry(placement):
    pytest.importorskip("pyxtal")
    groups = [2, 14, 15, 62, 139, 194, 225, 227]
    tasks = synthetic_crystals(16, groups, seed=5, placement=placement)
    assert [t.space_group for t in tasks] == groups * 2
    allowed = set(structures.ELEMENTS) | set(structures.ANIONS) | set(structures.CATIONS)
    for task in tasks:
        record = task.load()
        assert record.space_group == task.space_group == space_group_of(record.structure)
        assert record.source == f"synthetic:{placement}"
        assert 0 < len(record.structure) <= 64
        assert {a.element for a in record.structure} <= allowed
        assert _min_distance(record.structure) > 0.9  # PyXtal's tolerance matrix keeps atoms apart
        volume_per_atom = record.structure.lattice.volume / len(record.structure)
        assert 3.0 < volume_per_atom < 120.0  # Rb, Cs compounds reach ~90


@pytest.mark.parametrize("placement", structures.PLACEMENTS)
def test_synthetic_crystals_are_reproducible(placement):
    pytest.importorskip("pyxtal")
    a = synthetic_crystals(3, [14, 62], seed=11, placement=placement)[2].load()
    b = synthetic_crystals(3, [14, 62], seed=11, placement=placement)[2].load()
    c = synthetic_crystals(3, [14, 62], seed=12, placement=placement)[2].load()
    assert a.formula == b.formula
    assert np.allclose(a.structure.xyz, b.structure.xyz)
    assert np.allclose(a.structure.lattice.abcABG(), b.structure.lattice.abcABG())
    assert not (
        a.formula == c.formula and np.allclose(a.structure.lattice.abcABG(), c.structure.lattice.abcABG())
    )


@pytest.mark.parametrize("placement", structures.PLACEMENTS)
def test_synthetic_label_mismatch_is_rejected(monkeypatch, placement):
    pytest.importorskip("pyxtal")
    monkeypatch.setattr(structures, "space_group_of", lambda structure, symprec=0.01: 1)
    with pytest.raises(StructureError, match="spglib found 1"):
        structures.SyntheticCrystal(0, 225, seed=0, max_tries=3, placement=placement).load()


def test_wyckoff_placement_keeps_every_pair_apart():
    """The fast placement's one promise beyond the group: no two atoms (periodic images
    included) closer than the pair's minimum distance."""
    pytest.importorskip("pyxtal")
    for task in synthetic_crystals(24, [2, 14, 15, 62, 139, 194, 225, 227], seed=6, placement="wyckoff"):
        structure = task.load().structure
        elements = [a.element for a in structure]
        limits = structures.minimum_distances(elements)
        lattice = structure.lattice.base
        xyz = np.asarray(structure.xyz)
        shifts = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T
        diff = xyz[:, None, :] - xyz[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm((diff[:, :, None, :] + shifts[None, None]) @ lattice, axis=-1)
        dist[np.arange(len(xyz)), np.arange(len(xyz)), 13] = np.inf  # an atom and itself
        assert (dist.min(axis=2) >= limits - 1e-9).all(), task.structure_id


@pytest.mark.parametrize("space_group", [14, 139, 194, 227])
def test_wyckoff_orbits_are_pyxtals(space_group):
    """The orbit of every Wyckoff position is the one PyXtal generates for the same point."""
    pytest.importorskip("pyxtal")
    from pyxtal.symmetry import Group

    from training.wyckoff import wyckoff_operations

    _, ops, labels, _ = wyckoff_operations(space_group)
    rng = np.random.default_rng(0)
    for wp, op, label in zip(Group(space_group), ops, labels):
        generic = rng.random(3)
        ours = (op[:, :, :3] @ generic + op[:, :, 3]) % 1.0
        theirs = np.asarray(wp.apply_ops(wp.ops[0].operate(generic))) % 1.0
        assert wp.get_label() == label and len(ours) == wp.multiplicity
        diff = ours[:, None, :] - theirs[None, :, :]
        diff -= np.round(diff)
        assert (np.abs(diff).max(axis=2).min(axis=1) < 1e-8).all(), label


def test_wyckoff_placement_gives_up_when_the_cell_is_too_small():
    pytest.importorskip("pyxtal")
    from diffpy.structure import Lattice

    from training.wyckoff import place_sites, wyckoff_operations

    rng = np.random.default_rng(0)
    lattice = Lattice(3.0, 3.0, 3.0, 90, 90, 90).base
    assert place_sites(225, [0], np.full((1, 1), 2.0), lattice, rng) is None  # 192 atoms in 27 Å3
    site_4a = wyckoff_operations(225)[2].index("4a")
    placed = place_sites(225, [site_4a], np.full((1, 1), 2.0), Lattice(4.0, 4.0, 4.0, 90, 90, 90).base, rng)
    assert placed is not None and len(placed[0][1]) == 4  # fcc: 4a in a 4 Å cell, neighbours 2.83 Å apart


@pytest.mark.parametrize("lattice_type", ["triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic"])
def test_random_cells_have_the_volume_and_shape_asked_for(lattice_type):
    from diffpy.structure import Lattice

    from training.wyckoff import random_cell

    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b, c, alpha, beta, gamma = random_cell(lattice_type, 500.0, rng)
        assert abs(np.linalg.det(Lattice(a, b, c, alpha, beta, gamma).base) - 500.0) < 1e-6
        if lattice_type in ("tetragonal", "hexagonal", "cubic"):
            assert a == b
        if lattice_type != "triclinic":
            assert alpha == 90.0 and (gamma == 120.0) == (lattice_type == "hexagonal")


def test_synthetic_arguments_are_checked():
    pytest.importorskip("pyxtal")
    with pytest.raises(ValueError):
        synthetic_crystals(5, [])
    with pytest.raises(ValueError):
        synthetic_crystals(5, [231])
    with pytest.raises(ValueError, match="unknown placement"):
        synthetic_crystals(5, [225], placement="magic")
    with pytest.raises(ValueError, match="unknown placement"):
        structures.SyntheticCrystal(0, 225, placement="PyXtal")
    assert synthetic_crystals(0, []) == []


@pytest.mark.skipif(not MP_TABLE.exists(), reason="shared Materials Project table not available")
def test_materials_project_table_labels_mostly_agree_with_the_table():
    tasks = cif_table(MP_TABLE, [225, 227])
    assert len(tasks) > 1000
    rows = {}
    with gzip.open(MP_TABLE, "rt", newline="") as fh:
        csv.field_size_limit(1 << 30)
        for row in csv.DictReader(fh):
            rows[row["material_id"]] = int(row["space_group"])
    sample = tasks[:: len(tasks) // 30][:30]
    agree = sum(t.load().space_group == rows[t.material_id] for t in sample)
    assert agree >= 27  # the table used symprec 0.1, we use 0.01


@pytest.mark.parametrize("kind, group", [("fcc", 225), ("hcp", 194), ("diamond", 227), ("bcc", 229), ("simple-cubic", 221),
                                         ("graphite", 194), ("lonsdaleite", 194)])
def test_element_prototypes_have_their_space_group(kind, group):
    from training.structures import prototype_crystals

    tasks = prototype_crystals(3, [kind], seed=2)
    records = [t.load() for t in tasks]
    assert [r.space_group for r in records] == [group] * 3
    assert len({t.structure_id for t in tasks}) == 3
    assert records[0].structure.lattice.abcABG() == tasks[0].load().structure.lattice.abcABG()  # seeded


def test_prototype_distances_cover_the_elements():
    """The nearest-neighbour distances span diamond C (1.54 Å) to fcc Sr (4.30 Å): fcc Pb (3.50),
    Ce (3.65) and Ca (3.95) among them, which the range of the datasets before 2026-12-02
    (2.3–3.3 Å) left out."""
    from training.structures import LEGACY_NEIGHBOUR_DISTANCE, prototype_crystals

    def distances(**kw):
        # fcc: nearest neighbours at a / sqrt(2)
        return np.array([t.load().structure.lattice.a / math.sqrt(2) for t in prototype_crystals(120, ["fcc"], seed=3, **kw)])

    wide = distances()
    assert 1.5 <= wide.min() < 1.8 and 4.1 < wide.max() <= 4.4
    assert np.any((wide > 3.4) & (wide < 4.0))  # Pb, Ce, Yb, Ca
    legacy = distances(distance=LEGACY_NEIGHBOUR_DISTANCE)
    assert 2.3 <= legacy.min() and legacy.max() <= 3.3
    ids = {t.structure_id for t in prototype_crystals(1, ["fcc"])} | {t.structure_id for t in prototype_crystals(1, ["fcc"], distance=(2.3, 3.3))}
    assert len(ids) == 2  # a range is part of the id: a build folder never mixes two ranges
    with pytest.raises(ValueError, match="nearest-neighbour distances"):
        prototype_crystals(1, ["fcc"], distance=(3.0, 2.0))


def test_element_crystal_has_its_nearest_neighbour_distance():
    """The one builder of one-element crystals (prototype tasks and benchmarks/probe_elements.py)."""
    from training.structures import element_crystal

    for kind, ratio in (("fcc", None), ("diamond", None), ("bcc", None), ("simple-cubic", None), ("hcp", 1.633)):
        s = element_crystal(kind, 2.5, c_over_a=ratio)
        xyz = s.xyz_cartn
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
        assert min(d[d > 0].min() if len(s) > 1 else np.inf, s.lattice.a) == pytest.approx(2.5, abs=1e-6)
    with pytest.raises(ValueError, match="c/a"):
        element_crystal("fcc", 2.5, c_over_a=1.6)
    with pytest.raises(ValueError, match="c/a"):
        element_crystal("hcp", 2.5)


def test_unknown_prototype_is_refused():
    from training.structures import prototype_crystals

    with pytest.raises(ValueError, match="unknown prototype"):
        prototype_crystals(1, ["bct"])


@pytest.mark.parametrize("kind, ratio, second", [("graphite", 2.72, 2.46), ("lonsdaleite", 1.633, 2.51)])
def test_layer_prototypes_have_graphite_and_lonsdaleite_geometry(kind, ratio, second):
    """Graphite 2H at C-C 1.42 A: three neighbours at 1.42, the next at a = 2.46, layers c/2 =
    3.35 A apart; lonsdaleite at 1.54 A: four neighbours, the next at 2.51 A (pymatgen's
    neighbour list, periodic images included)."""
    from pymatgen.core import Lattice, Structure

    from training.structures import ELEMENT_PROTOTYPES, LAYER_PROTOTYPES, element_crystal

    bond = 1.42 if kind == "graphite" else 1.54
    s = element_crystal(kind, bond, element="C", c_over_a=ratio)
    pmg = Structure(Lattice(s.lattice.base), ["C"] * len(s), [a.xyz for a in s])
    for site in pmg:
        d = np.sort([n.nn_distance for n in pmg.get_neighbors(site, 2.7)])
        n_bonds = 3 if kind == "graphite" else 4
        assert np.allclose(d[:n_bonds], bond, atol=0.01) and d[n_bonds] == pytest.approx(second, abs=0.02)
    if kind == "graphite":
        assert s.lattice.c / 2 == pytest.approx(3.345, abs=0.01)
    assert kind in LAYER_PROTOTYPES and kind not in ELEMENT_PROTOTYPES


@pytest.mark.parametrize("kind, cation, anion, distance, neighbours, formula",
                         [("rocksalt", "Mg", "O", 2.106, 6, "MgO"), ("fluorite", "Ce", "O", 2.343, 8, "CeO2")])
def test_compound_prototypes_match_pymatgen(kind, cation, anion, distance, neighbours, formula):
    """Rock salt MgO (a = 4.212 Å) and fluorite CeO2 (a = 5.411 Å): pymatgen finds Fm-3m, the
    cation's coordination and the cation-anion distance; the drawn tasks are Fm-3m compounds
    of a cation and an anion, written cation first, half of the fluorites antifluorites."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from training.structures import ANIONS, CATIONS, element_crystal, formula_of, prototype_crystals

    s = element_crystal(kind, distance, element=cation, anion=anion)
    pmg = Structure(Lattice(s.lattice.base), [a.element for a in s], [a.xyz for a in s])
    assert SpacegroupAnalyzer(pmg, symprec=0.01).get_space_group_number() == 225
    assert pmg.composition.reduced_formula == formula == formula_of(s)
    d = np.array([n.nn_distance for n in pmg.get_neighbors(pmg[0], distance + 0.1)])
    assert len(d) == neighbours and np.allclose(d, distance, atol=1e-3)
    with pytest.raises(ValueError, match="anion"):
        element_crystal(kind, distance, element=cation)
    with pytest.raises(ValueError, match="anion"):
        element_crystal("fcc", distance, element=cation, anion=anion)

    records = [t.load() for t in prototype_crystals(40, [kind], seed=4, distance=(1.9, 3.3))]
    assert {r.space_group for r in records} == {225}
    first = [r.structure[0].element for r in records]
    assert all(e in CATIONS for e in first)
    assert all(a.element in CATIONS or a.element in ANIONS for r in records for a in r.structure)
    if kind == "fluorite":
        doubled = [r.formula for r in records if r.formula.startswith(r.structure[0].element + "2")]
        assert 5 < len(doubled) < 35  # antifluorite (Li2O-like) about half of the time
