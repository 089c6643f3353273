"""Fast placement of atoms on Wyckoff positions, for synthetic crystals in bulk.

PyXtal's ``from_random`` takes about a second per crystal on one core, too slow for the
10⁵ crystals a network needs to see many structure types. This module does the same job
with the same rules, vectorised with numpy, in milliseconds:

1. a random cell of the group's lattice type (:func:`random_cell`), its volume the sum of one
   random atomic volume per atom (uniform between the covalent-radius and the van der Waals
   sphere, PyXtal's estimate) times a volume factor;
2. the Wyckoff positions placed one after another, fixed ones first (:func:`place_sites`):
   for each, up to :data:`POSITION_TRIES` random free coordinates, the orbit given by PyXtal's
   Wyckoff operations (``wp.ops``; operation ``k`` applied to a generic point gives the orbit's
   ``k``-th atom), kept when every distance from its atoms to each other and to the atoms
   already placed (periodic images included) is at least the pair's minimum distance.

The minimum distances are those of :func:`training.structures.tolerance_matrix`: a fraction of
the sum of the two covalent radii, larger between two anions. The caller labels the result with
spglib and rejects it when the group came out different (a random coordinate on a special
value raises the symmetry); :class:`training.structures.SyntheticCrystal` does that.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Random free coordinates tried for one Wyckoff position before the cell is given up.
POSITION_TRIES = 30
#: Standard deviation of the log of the axis ratios of a random cell (PyXtal's ``random_vector``).
AXIS_SPREAD = 0.35
#: Largest ratio of two cell lengths.
MAX_AXIS_RATIO = 5.0
#: Range of a cell angle that is not fixed by the lattice type (degrees).
ANGLE_RANGE = (60.0, 120.0)
#: Periodic images searched for the shortest distance (enough for the angles above).
_SHIFTS = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)


@lru_cache(maxsize=None)
def wyckoff_operations(space_group: int) -> tuple[str, tuple[np.ndarray, ...], tuple[str, ...], tuple[int, ...]]:
    """The lattice type of ``space_group`` and, per PyXtal Wyckoff index, its operations.

    Returns ``(lattice type, ops, labels, degrees of freedom)`` where ``ops[i]`` is an array of
    shape (multiplicity, 3, 4) of affine operations in the conventional cell.
    """
    from pyxtal.symmetry import Group

    group = Group(int(space_group))
    ops = tuple(np.array([op.affine_matrix[:3] for op in wp.ops], dtype=float) for wp in group)
    labels = tuple(wp.get_label() for wp in group)
    dof = tuple(int(wp.get_dof()) for wp in group)
    return str(group.lattice_type), ops, labels, dof


@lru_cache(maxsize=None)
def atomic_radii(element: str) -> tuple[float, float]:
    """Covalent and van der Waals radius of ``element`` (Å, PyXtal's table)."""
    from pyxtal.database.element import Element

    el = Element(element)
    return float(el.covalent_radius), float(el.vdw_radius)


def random_volume(elements: list[str], rng: np.random.Generator, *, factor: float) -> float:
    """Cell volume for atoms of ``elements`` (one entry per atom): per atom a volume uniform
    between its covalent and van der Waals sphere, summed, times ``factor``."""
    radii = np.array([atomic_radii(e) for e in elements])
    spheres = 4 / 3 * np.pi * radii**3
    return float(factor * rng.uniform(spheres[:, 0], spheres[:, 1]).sum())


def random_cell(lattice_type: str, volume: float, rng: np.random.Generator) -> tuple[float, ...]:
    """Cell parameters ``(a, b, c, alpha, beta, gamma)`` (Å, degrees) of the given lattice type
    and volume: log-normal axis ratios (:data:`AXIS_SPREAD`, at most :data:`MAX_AXIS_RATIO`),
    free angles uniform in :data:`ANGLE_RANGE`, monoclinic with unique axis b. Trigonal cells are
    hexagonal (PyXtal's setting for R groups too)."""
    for _ in range(100):
        ratios = np.exp(rng.normal(0.0, AXIS_SPREAD, 3))
        alpha = beta = gamma = 90.0
        if lattice_type == "cubic":
            ratios[:] = 1.0
        elif lattice_type in ("tetragonal", "hexagonal", "trigonal"):
            ratios[1] = ratios[0]
            gamma = 90.0 if lattice_type == "tetragonal" else 120.0
        elif lattice_type == "monoclinic":
            beta = float(rng.uniform(90.0, ANGLE_RANGE[1]))
        elif lattice_type == "triclinic":
            alpha, beta, gamma = (float(v) for v in rng.uniform(*ANGLE_RANGE, 3))
        elif lattice_type != "orthorhombic":
            raise ValueError(f"unknown lattice type {lattice_type!r}")
        if ratios.max() / ratios.min() > MAX_AXIS_RATIO:
            continue
        cosines = np.cos(np.radians([alpha, beta, gamma]))
        shape = 1 - (cosines**2).sum() + 2 * cosines.prod()
        if shape < 0.2:  # nearly flat cell
            continue
        scale = (volume / (ratios.prod() * np.sqrt(shape))) ** (1 / 3)
        a, b, c = ratios * scale
        return float(a), float(b), float(c), alpha, beta, gamma
    raise ValueError(f"no {lattice_type} cell found")  # unreachable in practice


def periodic_distances(lattice: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (Å) from each fractional position of ``a`` to each of ``b`` and its images in the
    26 neighbouring cells: an array of shape (len(a), len(b), 27), the unshifted image at index
    13. ``lattice`` holds the lattice vectors as rows."""
    diff = a[:, None, :] - b[None, :, :]
    diff -= np.round(diff)
    return np.linalg.norm((diff[:, :, None, :] + _SHIFTS[None, None, :, :]) @ lattice, axis=-1)


def _too_close(lattice: np.ndarray, new: np.ndarray, new_min: np.ndarray, old: np.ndarray, old_min: np.ndarray) -> bool:
    """Whether any atom of ``new`` comes closer than allowed to another atom of ``new`` or to one
    of ``old`` (periodic images included). ``new_min[i, j]``/``old_min[i, j]`` are the allowed
    distances between new atom ``i`` and new/old atom ``j``."""
    for others, allowed, is_self in ((new, new_min, True), (old, old_min, False)):
        if len(others) == 0:
            continue
        dist = periodic_distances(lattice, new, others)  # (n_new, n_other, 27)
        if is_self:  # an atom and itself, unshifted
            idx = np.arange(len(new))
            dist[idx, idx, 13] = np.inf
        if np.any(dist < allowed[:, :, None]):
            return True
    return False


def place_sites(space_group: int, wyckoff: list[int], min_distance: np.ndarray, lattice: np.ndarray,
                rng: np.random.Generator) -> list[tuple[int, np.ndarray]] | None:
    """Fractional positions for the occupied Wyckoff positions, or ``None`` if one cannot be placed.

    ``wyckoff[s]`` is the PyXtal Wyckoff index of site ``s``; ``min_distance[s, t]`` the shortest
    allowed distance (Å) between an atom of site ``s`` and one of site ``t``. Returns, per site in
    the order given, ``(s, positions)`` with ``positions`` of shape (multiplicity, 3) in [0, 1).
    """
    _, ops, _, dof = wyckoff_operations(space_group)
    order = sorted(range(len(wyckoff)), key=lambda s: (dof[wyckoff[s]], -len(ops[wyckoff[s]])))
    placed: list[tuple[int, np.ndarray]] = []
    placed_xyz = np.zeros((0, 3))
    placed_site = np.zeros(0, dtype=int)
    for s in order:
        op = ops[wyckoff[s]]
        tries = 1 if dof[wyckoff[s]] == 0 else POSITION_TRIES
        for _ in range(tries):
            generic = rng.random(3)
            orbit = (op[:, :, :3] @ generic + op[:, :, 3]) % 1.0
            n = len(orbit)
            if not _too_close(lattice, orbit, np.full((n, n), min_distance[s, s]), placed_xyz,
                              np.broadcast_to(min_distance[s, placed_site], (n, len(placed_site)))):
                placed.append((s, orbit))
                placed_xyz = np.vstack([placed_xyz, orbit])
                placed_site = np.concatenate([placed_site, np.full(n, s)])
                break
        else:
            return None
    return sorted(placed, key=lambda item: item[0])
