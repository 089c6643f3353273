"""Higher-symmetry versions of a refined structure, to be refined in their own group.

A structure refined in a subgroup of its true group fits at least as well as the true one (it
has more free parameters), and a candidate of the right group can stop in a worse minimum than
a subgroup candidate that happens to start closer (neutron LaMnO3: the GdFeO3-type Pnma
candidate refined to Rw 0.20, a decorated Pna2_1 one to 0.17, and the Pna2_1 result made
Pnma within 0.1 Å refines in Pnma to 0.17 again). So where a refined structure is within a
few tenths of an Ångström of a higher symmetry (:data:`TOLERANCES`), that symmetric structure
is proposed and refined in its own group; the data decide between them (the ranking's tie rule,
:data:`sgmine_diffpy.ranking.TIE_RW`), not the tolerance.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from sgmine_diffpy.structlib import Cell, StructureLibraryError, atomic_number, label_cell

#: Distance tolerances (Å) at which a refined structure's symmetry is looked for, smallest
#: first: displacements of this size are what thermal motion (rms 0.05–0.1 Å) and a PDF's
#: resolution (π/Qmax ≈ 0.1–0.2 Å) blur. Each higher group found is proposed once.
TOLERANCES = (0.1, 0.2, 0.3)


@functools.lru_cache(maxsize=None)
def point_group_order(space_group: int) -> int:
    """The order of a space group's point group (48 for Fm-3m, 16 for I4/mmm, 4 for Amm2): the
    number of its symmetry operations per lattice point, a measure of symmetry that does not
    depend on the cell's centring."""
    import spglib

    for hall in range(1, 531):
        if spglib.get_spacegroup_type(hall).number == space_group:
            rotations = spglib.get_symmetry_from_database(hall)["rotations"]
            return len({r.tobytes() for r in rotations})
    raise ValueError(f"no space group {space_group}")


def _cell_arrays(structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spglib cell of an ordered diffpy Structure (:func:`sgmine.sites.merged_sites`), its
    types given as atomic numbers, so that a standardised cell names its elements."""
    from sgmine.sites import merged_sites

    lattice, xyz, types, members = merged_sites(structure)
    number = {int(t): atomic_number(structure[m[0]].element) for t, m in zip(types, members)}
    return lattice, xyz, np.array([number[int(t)] for t in types])


def symmetry_at(structure, symprec: float) -> tuple[int, str] | None:
    """spglib's space group ``(number, symbol)`` of a diffpy Structure at ``symprec`` Å, or None."""
    import spglib

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            data = spglib.get_symmetry_dataset(_cell_arrays(structure), symprec=symprec)
    except Exception:  # spglib's errors, an element it cannot name
        return None
    return None if data is None else (int(data.number), str(data.international))


def higher_symmetry_cells(structure, space_group: int, *, structure_id: str, source: str = "symmetrised",
                          tolerances=TOLERANCES) -> list[tuple[Cell, float]]:
    """``[(cell, tolerance)]``: the structure made symmetric in each group of higher symmetry
    (:func:`point_group_order`) than ``space_group`` that spglib finds at one of the
    ``tolerances``, once per group, smallest tolerance first. Each cell is spglib's idealised
    standard primitive cell, labelled (:func:`~sgmine_diffpy.structlib.label_cell`) with the
    id ``structure_id>symbol``; a cell whose own group is not the one found is left out."""
    import spglib
    from diffpy.structure import Lattice

    order = point_group_order(space_group)
    found: list[tuple[Cell, float]] = []
    seen = {space_group}
    for tol in tolerances:
        group = symmetry_at(structure, tol)
        if group is None or group[0] in seen or point_group_order(group[0]) <= order:
            continue
        seen.add(group[0])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                base, xyz, numbers = spglib.standardize_cell(_cell_arrays(structure), to_primitive=True, symprec=tol)
            lat = Lattice(base=base)
            cell = label_cell(f"{structure_id}>{group[1]}", source, (lat.a, lat.b, lat.c, lat.alpha, lat.beta, lat.gamma),
                              numbers, xyz, np.ones(len(numbers)))
        except (StructureLibraryError, TypeError, ValueError):
            continue
        if cell.space_group == group[0]:
            found.append((cell, tol))
    return found
