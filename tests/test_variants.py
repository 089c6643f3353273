"""Symmetry-preserving structure variants and element substitution (training.variants)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("spglib")
pytest.importorskip("diffpy.structure")

from diffpy.structure import Atom, Lattice, Structure  # noqa: E402

from sgmine.simulate import PDFParams, pair_table, pdf  # noqa: E402
from training.structures import StructureError, space_group_of  # noqa: E402
from training.variants import (  # noqa: E402
    NEGATIVE_SCATTERERS,
    SUBSTITUTES,
    substituted,
    symmetric_strain,
    symmetric_variant,
    with_negative_scatterer,
)


def _rutile_like() -> Structure:
    """TiO2 rutile (P4_2/mnm, 136): one free coordinate x of O at (x, x, 0)."""
    lattice = Lattice(4.59, 4.59, 2.96, 90, 90, 90)
    x = 0.305
    atoms = [Atom("Ti", (0, 0, 0)), Atom("Ti", (0.5, 0.5, 0.5)),
             Atom("O", (x, x, 0)), Atom("O", (1 - x, 1 - x, 0)),
             Atom("O", (0.5 + x, 0.5 - x, 0.5)), Atom("O", (0.5 - x, 0.5 + x, 0.5))]
    return Structure(atoms, lattice=lattice)


def _monoclinic() -> Structure:
    """A P2_1/c (14) cell with two atoms on general positions."""
    lattice = Lattice(5.1, 6.3, 7.2, 90, 104.0, 90)
    atoms = []
    for element, (x, y, z) in (("Zn", (0.12, 0.21, 0.33)), ("S", (0.37, 0.08, 0.14))):
        for px, py, pz in ((x, y, z), (-x, y + 0.5, -z + 0.5), (-x, -y, -z), (x, -y + 0.5, z + 0.5)):
            atoms.append(Atom(element, (px % 1, py % 1, pz % 1)))
    return Structure(atoms, lattice=lattice)


@pytest.mark.parametrize("make, group", [(_rutile_like, 136), (_monoclinic, 14)])
def test_variants_keep_the_space_group_and_differ_from_the_original(make, group):
    structure = make()
    assert space_group_of(structure) == group
    rng = np.random.default_rng(0)
    made = 0
    for _ in range(10):
        try:
            v = symmetric_variant(structure, rng, strain=0.03, displacement=0.1)
        except StructureError:
            continue
        made += 1
        assert space_group_of(v) == group
        assert not np.allclose(v.xyz, structure.xyz) or not np.allclose(v.lattice.abcABG(), structure.lattice.abcABG())
    assert made >= 5


def test_cubic_strain_is_isotropic_and_special_positions_stay():
    fcc = Structure([Atom("Ni", p) for p in ((0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5))],
                    lattice=Lattice(3.52, 3.52, 3.52, 90, 90, 90))
    rng = np.random.default_rng(1)
    v = symmetric_variant(fcc, rng, strain=0.05, displacement=0.2)
    a, b, c, alpha, beta, gamma = v.lattice.abcABG()
    assert a == pytest.approx(b) == pytest.approx(c)
    assert (alpha, beta, gamma) == pytest.approx((90, 90, 90))
    assert np.allclose(v.xyz % 1, fcc.xyz % 1, atol=1e-9)  # every fcc site is a special position
    assert space_group_of(v) == 225


def test_symmetric_strain_commutes_with_the_point_group():
    import spglib

    structure = _monoclinic()
    lattice = np.asarray(structure.lattice.base)
    sym = spglib.get_symmetry((lattice, structure.xyz, [1] * 4 + [2] * 4), symprec=0.01)
    rotations = np.asarray(sym["rotations"], dtype=float)
    e = symmetric_strain(lattice, rotations, np.random.default_rng(2), 0.05)
    cart = lattice.T @ rotations @ np.linalg.inv(lattice.T)
    for R in cart:
        assert np.allclose(R @ e @ R.T, e, atol=1e-12)


def test_substitution_relabels_elements_and_changes_the_pdf():
    table = pair_table(_rutile_like(), rmax=12.0)
    rng = np.random.default_rng(4)
    sub = substituted(table, rng)
    assert len(set(sub.elements)) == len(table.elements)
    assert set(sub.elements) <= set(SUBSTITUTES)
    assert np.array_equal(sub.distance, table.distance)  # geometry kept
    r = np.arange(1.0, 10.0, 0.01)
    g0, g1 = pdf(table, r, PDFParams()), pdf(sub, r, PDFParams())
    assert not np.allclose(g0, g1)


def test_a_negative_scatterer_turns_a_rock_salts_first_neutron_peak_negative():
    """NaCl with Na or Cl replaced by H, Li, Ti or Mn: under neutrons the unlike pairs (the
    first peak, a/2) go negative, the like pairs (a/sqrt 2) stay positive; X-rays weigh by Z."""
    a = 5.64
    atoms = [Atom("Na", xyz) for xyz in ((0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0))]
    atoms += [Atom("Cl", xyz) for xyz in ((.5, .5, .5), (.5, 0, 0), (0, .5, 0), (0, 0, .5))]
    table = pair_table(Structure(atoms, lattice=Lattice(a, a, a, 90, 90, 90)), rmax=10.0)
    r = np.arange(1.0, 9.0, 0.01)
    first, second = np.argmin(abs(r - a / 2)), np.argmin(abs(r - a / np.sqrt(2)))
    assert pdf(table, r, PDFParams(radiation="neutron"))[first] > 0
    for seed in range(6):
        neg = with_negative_scatterer(table, np.random.default_rng(seed))
        changed = [e for e, old in zip(neg.elements, table.elements) if e != old]
        assert len(changed) == 1 and changed[0] in NEGATIVE_SCATTERERS
        assert np.array_equal(neg.distance, table.distance)  # geometry kept
        g = pdf(neg, r, PDFParams(radiation="neutron"))
        assert g[first] < 0 < g[second]


def test_a_table_of_every_negative_scatterer_stays_as_it_is():
    atoms = [Atom(e, (i / 4, 0, 0)) for i, e in enumerate(NEGATIVE_SCATTERERS)]
    table = pair_table(Structure(atoms, lattice=Lattice(8, 8, 8, 90, 90, 90)), rmax=6.0)
    assert with_negative_scatterer(table, np.random.default_rng(0)) is table


def test_rutile_oxygen_moves_only_along_its_free_coordinate():
    structure = _rutile_like()
    v = symmetric_variant(structure, np.random.default_rng(5), strain=0.0, displacement=0.2)
    xyz = np.asarray(v.xyz) % 1
    assert np.allclose(xyz[:2], [[0, 0, 0], [0.5, 0.5, 0.5]], atol=1e-9)  # Ti on 2a stays
    x = xyz[2, 0]
    assert xyz[2] == pytest.approx([x, x, 0.0], abs=1e-9)  # O stays on 4f (x, x, 0)
    assert xyz[4] == pytest.approx([(0.5 + x) % 1, (0.5 - x) % 1, 0.5], abs=1e-9)
