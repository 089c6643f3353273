"""More distinct structures from each real one: symmetry-preserving variants and substitutions.

A network trained on a few thousand structures memorises them (train accuracy far above the
accuracy on unseen structures). Two cheap ways to show it many more, each keeping the space
group the label says:

- :func:`symmetric_variant` moves a crystal within its space group: a random strain of the
  lattice that the point group leaves invariant (so a cubic cell only changes size, a
  monoclinic one changes a, b, c and beta) and random displacements of the atoms projected onto
  the displacements the space group allows (the free Wyckoff coordinates move, atoms on special
  positions stay on them). The projection is the group average
  ``D_i = 1/|G| Σ_g R_g⁻¹ d_{g(i)}`` over spglib's symmetry operations of the cell, which is
  invariant by construction; the variant is relabelled with spglib and kept only if its group
  is unchanged and no two atoms came closer than :data:`MIN_DISTANCE_RATIO` of the original's
  shortest distance.
- :func:`substituted` relabels the elements of a pair table (chemical substitution at fixed
  geometry; the lattice scale varies through the strain augmentation). The PDF of a crystal
  depends on its elements only through their scattering weights, so this is a reweighting of
  the pair table, no new pair search.
- :func:`with_negative_scatterer` puts one element with a negative neutron scattering length
  (:data:`NEGATIVE_SCATTERERS`) on the sites of one element of a pair table. Under neutrons
  its pairs with the other elements turn into negative peaks (MnO's Mn–O, TiC's Ti–C), which
  real structures and uniform substitution show a network too rarely.

Both draw from a generator the caller seeds per structure, so a variant is reproducible.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from training.structures import SYMPREC, StructureError, merged_sites, space_group_of
from training.wyckoff import periodic_distances

#: A variant whose shortest interatomic distance fell below this fraction of the original's is
#: rejected (atoms pushed into each other).
MIN_DISTANCE_RATIO = 0.85
#: Tolerance (Å) when matching a site to its image under a symmetry operation.
MATCH_TOLERANCE = 3 * SYMPREC
#: Elements a substitution draws from: common elements with both X-ray and neutron weights.
SUBSTITUTES: tuple[str, ...] = (
    "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca", "Sc", "Ti",
    "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Rb", "Sr", "Y", "Zr",
    "Nb", "Mo", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Cs", "Ba", "La", "Ce", "Nd",
    "Gd", "Hf", "Ta", "W", "Ir", "Pt", "Au", "Tl", "Pb", "Bi",
)

#: Elements with a negative coherent neutron scattering length (fm: H −3.74, Li −1.93, Ti −3.37,
#: Mn −3.75; ``periodictable``'s ``b_c``). V (−0.44) nearly vanishes and is left out.
NEGATIVE_SCATTERERS: tuple[str, ...] = ("H", "Li", "Ti", "Mn")


def _symmetry_operations(lattice: np.ndarray, xyz: np.ndarray, types: np.ndarray, symprec: float):
    import spglib

    try:
        sym = spglib.get_symmetry((lattice, xyz, types), symprec=symprec)
    except Exception as exc:  # spglib >= 2.5 raises where older versions returned None
        raise StructureError(f"spglib found no symmetry ({exc})") from exc
    if sym is None:
        raise StructureError("spglib found no symmetry")
    return np.asarray(sym["rotations"], dtype=float), np.asarray(sym["translations"], dtype=float)


def _site_images(lattice: np.ndarray, xyz: np.ndarray, types: np.ndarray, rotations: np.ndarray,
                 translations: np.ndarray) -> np.ndarray | None:
    """``image[g, i]``: the site that operation ``g`` moves site ``i`` onto (None if one is missing)."""
    moved = np.einsum("gij,nj->gni", rotations, xyz) + translations[:, None, :]  # (ops, sites, 3)
    diff = moved[:, :, None, :] - xyz[None, None, :, :]
    diff -= np.round(diff)
    dist = np.linalg.norm(diff @ lattice, axis=-1)  # (ops, sites, sites)
    dist = np.where(types[None, None, :] == types[None, :, None], dist, np.inf)
    image = dist.argmin(axis=2)
    if not np.all(np.take_along_axis(dist, image[:, :, None], axis=2) < MATCH_TOLERANCE):
        return None
    return image


def symmetric_strain(lattice: np.ndarray, rotations: np.ndarray, rng: np.random.Generator, size: float) -> np.ndarray:
    """A random symmetric strain tensor (Cartesian) left invariant by the point group of ``rotations``.

    Components of the unprojected strain are normal with standard deviation ``size``.
    """
    cart = _cartesian_rotations(lattice, rotations)
    e = rng.normal(0.0, size, (3, 3))
    e = (e + e.T) / 2
    return np.mean(cart @ e @ cart.transpose(0, 2, 1), axis=0)


def _cartesian_rotations(lattice: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Fractional rotations as Cartesian ones (lattice vectors are the rows of ``lattice``)."""
    return lattice.T @ rotations @ np.linalg.inv(lattice.T)


def symmetric_displacements(lattice: np.ndarray, rotations: np.ndarray, image: np.ndarray,
                            rng: np.random.Generator, size: float) -> np.ndarray:
    """Random fractional displacements of the sites that the space group allows.

    Cartesian displacements drawn normal with standard deviation ``size`` Å are averaged over the
    group, ``D_i = 1/|G| Σ_g R_g⁻¹ d_{g(i)}``, so that operation ``g`` maps the displacement of
    site ``i`` onto that of site ``g(i)``.
    """
    cart = _cartesian_rotations(lattice, rotations)
    d = rng.normal(0.0, size, (image.shape[1], 3))
    inverse = np.linalg.inv(cart)  # (ops, 3, 3)
    D = np.mean(np.einsum("gij,gnj->gni", inverse, d[image]), axis=0)
    return D @ np.linalg.inv(lattice)


def _shortest_distance(lattice: np.ndarray, xyz: np.ndarray) -> float:
    """Shortest distance between two sites of the crystal (periodic images included)."""
    dist = periodic_distances(lattice, xyz, xyz)
    dist[dist < 1e-6] = np.inf
    return float(dist.min())


def symmetric_variant(structure: Any, rng: np.random.Generator, *, strain: float = 0.03,
                      displacement: float = 0.1, symprec: float = SYMPREC) -> Any:
    """A copy of the diffpy ``structure`` moved within its space group (see the module docstring).

    ``strain`` is the standard deviation of the strain components before the symmetric
    projection, ``displacement`` the largest standard deviation (Å) of the atomic moves (each
    variant draws its own between 0 and it). Raises :class:`StructureError` when the variant
    changed group or pushed atoms too close together (draw another).
    """
    group = space_group_of(structure, symprec)
    lattice, xyz, types, members = merged_sites(structure, symprec)
    rotations, translations = _symmetry_operations(lattice, xyz, types, symprec)
    e = symmetric_strain(lattice, rotations, rng, strain)
    new_lattice = lattice @ (np.eye(3) + e).T
    moves = np.zeros_like(xyz)
    image = _site_images(lattice, xyz, types, rotations, translations)
    if image is not None and displacement > 0:
        moves = symmetric_displacements(lattice, rotations, image, rng, float(rng.uniform(0, displacement)))
    if len(xyz) > 1 and _shortest_distance(new_lattice, xyz + moves) < MIN_DISTANCE_RATIO * _shortest_distance(lattice, xyz):
        raise StructureError("variant rejected: atoms pushed too close together")

    variant = structure.copy()
    a, b, c = np.linalg.norm(new_lattice, axis=1)
    alpha = np.degrees(np.arccos(new_lattice[1] @ new_lattice[2] / (b * c)))
    beta = np.degrees(np.arccos(new_lattice[0] @ new_lattice[2] / (a * c)))
    gamma = np.degrees(np.arccos(new_lattice[0] @ new_lattice[1] / (a * b)))
    variant.lattice.setLatPar(a, b, c, alpha, beta, gamma)
    for site, atoms in enumerate(members):
        for i in atoms:
            variant[i].xyz = np.asarray(variant[i].xyz, dtype=float) + moves[site]
    if space_group_of(variant, symprec) != group:
        raise StructureError("variant rejected: its space group changed")
    return variant


def substituted(table: Any, rng: np.random.Generator) -> Any:
    """The pair table with every element replaced by a distinct random one from :data:`SUBSTITUTES`."""
    new = rng.choice(len(SUBSTITUTES), size=len(table.elements), replace=False)
    return dataclasses.replace(table, elements=tuple(SUBSTITUTES[i] for i in new))


def with_negative_scatterer(table: Any, rng: np.random.Generator) -> Any:
    """The pair table with one random element replaced by a random one of
    :data:`NEGATIVE_SCATTERERS` not already in it (same geometry).

    Under neutrons, the pairs of that element with the others get negative weights. A table
    that already holds every negative scatterer is returned unchanged.
    """
    free = [e for e in NEGATIVE_SCATTERERS if e not in table.elements]
    if not free:
        return table
    elements = list(table.elements)
    elements[int(rng.integers(len(elements)))] = free[int(rng.integers(len(free)))]
    return dataclasses.replace(table, elements=tuple(elements))
