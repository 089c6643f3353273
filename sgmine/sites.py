"""The sites of a crystal as spglib sees them: one rule for training labels and ``sgmine refine``.

A diffpy ``Structure`` lists atoms; a disordered CIF lists several atoms (say Fe 0.5 and Ni 0.5)
on one position. spglib needs one species per position, so atoms closer than ``symprec`` are
merged into one site whose species is the set of its (element, occupancy) pairs. The training
labels (:mod:`training.structures`) and the diffpy plugin's structure library both build their
spglib cell here, so a CIF gets the same space group in both.

Needs numpy only; element symbols are read by :func:`sgmine.simulate.neutral_element`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Symmetry tolerance (Å): pymatgen's default for experimental structures.
SYMPREC = 0.01
#: Occupancies that agree to this many decimals are the same species.
OCCUPANCY_DECIMALS = 3

Species = tuple[str, float]


def atom_species(atom: Any) -> Species:
    """``(element, occupancy)`` of a diffpy Atom: ``Fe3+`` at 0.5 -> ``("Fe", 0.5)``.

    Raises :class:`sgmine.simulate.SimulationError` (a ``ValueError``) for an unknown element.
    """
    from sgmine.simulate import neutral_element

    return neutral_element(atom.element), round(float(atom.occupancy), OCCUPANCY_DECIMALS)


def merged_sites(structure: Any, symprec: float = SYMPREC) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """The spglib cell of a diffpy Structure and, per site, the atoms merged into it.

    Parameters
    ----------
    structure
        A ``diffpy.structure.Structure`` with at least one atom.
    symprec
        Atoms closer than this (Å, periodic distance) share a site.

    Returns
    -------
    lattice, positions, types, members
        Lattice vectors (rows), fractional positions of the sites, a type number per site
        (one per distinct set of (element, occupancy) pairs), and ``members[s]``: the atom
        indices merged into site ``s``.
    """
    lattice = np.asarray(structure.lattice.base, dtype=float)
    xyz = np.asarray(structure.xyz, dtype=float) % 1.0
    keys = [atom_species(a) for a in structure]
    if len(keys) == 0:
        raise ValueError("structure has no atoms")
    sites: list[int] = []  # representative atom of each merged site
    members: list[list[int]] = []
    for i in range(len(keys)):
        for s, rep in enumerate(sites):
            d = xyz[i] - xyz[rep]
            d -= np.round(d)
            if np.linalg.norm(d @ lattice) < symprec:
                members[s].append(i)
                break
        else:
            sites.append(i)
            members.append([i])
    site_keys = [site_species(keys, m) for m in members]
    type_of = {k: n + 1 for n, k in enumerate(sorted(set(site_keys)))}
    types = np.array([type_of[k] for k in site_keys], dtype=int)
    return lattice, xyz[sites], types, members


def site_species(keys: list[Species], members: list[int]) -> tuple[Species, ...]:
    """The species of a merged site: the sorted (element, occupancy) pairs of its ``members``."""
    return tuple(sorted(keys[i] for i in members))


def spglib_cell(structure: Any, symprec: float = SYMPREC) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(lattice, fractional positions, types)`` spglib needs, from a diffpy Structure
    (disordered atoms sharing a position merged into one site, see :func:`merged_sites`)."""
    lattice, xyz, types, _ = merged_sites(structure, symprec)
    return lattice, xyz, types
