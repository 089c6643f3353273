"""Synthetic molecular crystals (training.molecules, MolecularCrystal): chemistry, packing, labels."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffpy.structure")
pytest.importorskip("spglib")
pytest.importorskip("pyxtal")

from training import structures  # noqa: E402
from training.molecules import MOLECULAR_GROUPS, pack_molecule, random_molecule  # noqa: E402
from training.structures import MolecularCrystal, StructureError, molecular_crystals  # noqa: E402

#: Covalent bond lengths (Å) a random molecule may have: C–H/N–H/O–H as x-ray sees them
#: (0.84–0.97) up to C–Br (1.90).
BOND_RANGE = (0.80, 1.95)


def _bonds(elements: list[str], xyz: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d


@pytest.mark.parametrize("seed", range(6))
def test_random_molecules_have_organic_bonds(seed):
    """Every atom is bonded (a neighbour at a covalent distance), no two atoms overlap, every
    H has exactly one neighbour, and the molecule is one connected piece."""
    elements, xyz = random_molecule(np.random.default_rng(seed))
    heavy = [e for e in elements if e != "H"]
    assert 6 <= len(heavy) <= 30 and "C" in heavy
    assert "H" in elements
    d = _bonds(elements, xyz)
    assert d.min() >= BOND_RANGE[0]
    bonded = d <= BOND_RANGE[1]
    assert bonded.any(axis=1).all()
    for i, e in enumerate(elements):
        if e == "H":
            assert (d[i] < 1.25).sum() == 1 and np.sort(d[i])[1] >= 1.35
    seen, todo = {0}, [0]
    while todo:
        for j in np.nonzero(bonded[todo.pop()])[0]:
            if j not in seen:
                seen.add(int(j))
                todo.append(int(j))
    assert len(seen) == len(elements)
    assert np.allclose(xyz.mean(axis=0), 0.0)


def test_random_molecules_have_aromatic_rings_and_heteroatoms_in_a_batch():
    """Over 30 molecules: aromatic C–C (1.39 Å) and carbonyl/hydroxyl O, N, a halogen appear."""
    rng = np.random.default_rng(3)
    found = set()
    aromatic = 0
    for _ in range(30):
        elements, xyz = random_molecule(rng)
        found |= set(elements)
        d = _bonds(elements, xyz)
        carbon = np.array([e == "C" for e in elements])
        aromatic += int(np.any(np.abs(d[np.ix_(carbon, carbon)] - 1.39) < 0.01))
    assert {"C", "H", "N", "O"} <= found and found & {"Cl", "F", "Br"}
    assert aromatic >= 10


@pytest.mark.parametrize("space_group", [2, 14, 15, 62, 19])
def test_molecular_crystals_have_their_group_and_no_intermolecular_overlap(space_group):
    """The crystal has the requested group (spglib), Z copies of the molecule, a density like
    an organic solid, and (pymatgen's neighbour list, independent of the packing code) every
    atom has exactly the neighbours within 1.7 Å that it has in the isolated molecule: no atom
    of another molecule comes that close."""
    from pymatgen.core import Lattice, Structure

    record = MolecularCrystal(0, space_group, seed=5).load()
    assert record.space_group == space_group
    s = record.structure
    elements = [a.element for a in s]
    heavy = sum(e != "H" for e in elements)
    assert 14 <= s.lattice.volume / heavy <= 60
    for attempt in range(structures.MOLECULAR_TRIES):  # the molecule of the try that built it
        molecule, xyz = random_molecule(np.random.default_rng([5, 0, space_group, attempt, 7]))
        if molecule == elements[: len(molecule)]:
            break
    z = {2: 2, 14: 4, 15: 8, 62: 8, 19: 4}[space_group]
    assert len(s) == z * len(molecule)
    own = (_bonds(molecule, xyz) <= 1.7).sum(axis=1)
    pmg = Structure(Lattice(s.lattice.base), elements, [a.xyz for a in s])
    found = np.array([len(pmg.get_neighbors(site, 1.7)) for site in pmg])
    assert np.array_equal(found, np.tile(own, z))


def test_molecular_crystals_are_reproducible_and_distinct():
    a = MolecularCrystal(3, 14, seed=2).load()
    b = MolecularCrystal(3, 14, seed=2).load()
    c = MolecularCrystal(4, 14, seed=2).load()
    assert a.structure_id == "mol-2-14-3" and a.source == "synthetic:molecular"
    assert np.allclose(a.structure.xyz, b.structure.xyz) and a.formula == b.formula
    assert a.formula != c.formula or not np.allclose(a.structure.lattice.abcABG(), c.structure.lattice.abcABG())


def test_molecular_crystal_tasks_use_the_organic_groups_asked_for():
    tasks = molecular_crystals(10, [2, 14, 15, 62, 139, 194, 225, 227], seed=1)
    assert [t.space_group for t in tasks[:4]] == [2, 14, 15, 62]
    assert {t.space_group for t in tasks} == {2, 14, 15, 62}
    assert set(MOLECULAR_GROUPS) >= {2, 14, 15, 62}
    with pytest.raises(ValueError, match="none of these"):
        molecular_crystals(3, [225, 227], seed=1)
    with pytest.raises(ValueError, match=">= 0"):
        molecular_crystals(-1, [2])
    assert molecular_crystals(0, [225]) == []


def test_a_molecular_crystal_of_the_wrong_group_is_rejected(monkeypatch):
    """When spglib finds another group on every try, the task fails with the reason."""
    real = structures.label

    def wrong(structure, structure_id, source, symprec=structures.SYMPREC):
        record = real(structure, structure_id, source, symprec)
        return structures.StructureRecord(record.structure_id, record.source, record.formula, 1, record.structure)

    monkeypatch.setattr(structures, "label", wrong)
    with pytest.raises(StructureError, match="spglib found 1"):
        MolecularCrystal(0, 2, seed=1).load()


def test_packing_gives_up_when_no_cell_is_loose_enough(monkeypatch):
    """When the molecules touch in every starting cell, packing gives None and the task fails
    with that reason."""
    from training import molecules

    monkeypatch.setattr(molecules, "_clashes", lambda copies, lattice, limit: True)
    elements, xyz = random_molecule(np.random.default_rng(0))
    assert pack_molecule(14, elements, xyz, np.random.default_rng(0)) is None
    with pytest.raises(StructureError, match="touch in every starting cell"):
        MolecularCrystal(0, 14, seed=1).load()
