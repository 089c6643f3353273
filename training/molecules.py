"""Synthetic molecular crystals: random organic molecules packed on a space group's general position.

The real-structure check (``benchmarks/eval_real.py``) showed that the models had hardly seen a
molecular crystal: the structure tables are inorganic, and PyXtal's organic CIFs in P2_1/c and
C2/c were called P-1 in 33 of 44 PDFs by `2026.12-8sg-2.6`. A measured PDF of a pharmaceutical or another organic
solid is a common input, so the training data need molecular crystals of the groups organics
crystallise in. This module makes them without any real molecule or crystal:

1. **A molecule** (:func:`random_molecule`) grows from one atom by attaching, at random open
   bonds, six-membered aromatic rings (C, sometimes one N), sp3 and sp2 carbon, N and O (chain
   or terminal, carbonyl O on sp2 C) and halogens or S, with textbook bond lengths and the
   bond angles of each hybridisation (109.5° sp3, 120° sp2), a random torsion at every single
   bond, and no two non-bonded heavy atoms closer than :data:`NONBONDED_MIN` Å. The open bonds
   left at the end get hydrogen atoms (C–H, N–H, O–H at x-ray-like lengths) where there is room.
2. **A crystal** (:func:`pack_molecule`): the molecule in a random orientation and position is
   the asymmetric unit; the general position's operations (PyXtal, as for
   :mod:`training.wyckoff`) make its Z copies in a loose cell of the group's lattice type
   (:func:`training.wyckoff.random_cell`). The cell is then shrunk one axis at a time, each as
   far as it goes before two molecules come closer than their van der Waals contact
   (:func:`contact_distances`), in :data:`SHRINK_ROUNDS` rounds with a small random turn and
   move of the molecule between them. That leaves 19–45 Å³ per non-hydrogen atom, median about
   25 (real organic crystals: 16–20; a random orientation packs less tightly than a real one).

The caller labels the result with spglib and rejects a crystal whose group came out different:
:class:`training.structures.MolecularCrystal` does that, and ``sgmine-train dataset --molecular
N`` builds such crystals.
"""

from __future__ import annotations

import numpy as np

#: Groups molecular crystals are made in (those of a dataset's --space-groups that are here):
#: the groups of issue #16's 45 in which organic crystals most often sit on general positions
#: (P-1, P2_1, Cc, P2_1/c, C2/c, P2_12_12_1, Pna2_1, Pbcn, Pbca, Pnma). For the eight-class model
#: that is P-1, P2_1/c, C2/c and Pnma.
MOLECULAR_GROUPS = (2, 4, 9, 14, 15, 19, 33, 60, 61, 62)
#: Non-hydrogen atoms per molecule (inclusive range), and molecules started before one that
#: stopped short of the lower end is kept.
HEAVY_ATOMS = (6, 30)
MOLECULE_TRIES = 10
#: Shortest distance (Å) between two heavy atoms of one molecule that are not bonded to each
#: other or to a common atom (1–3 pairs sit at 2.4–2.5 Å and are allowed at
#: :data:`ONE_THREE_MIN`).
NONBONDED_MIN = 2.8
ONE_THREE_MIN = 2.2
#: Shortest distance (Å) from a hydrogen atom to a heavy atom, and to another hydrogen atom,
#: of its molecule, beyond the atom it is bonded to and that atom's neighbours (whose distances
#: the bond geometry fixes: 1.9–2.2 Å).
HYDROGEN_MIN = 2.2
H_H_MIN = 1.9
#: Fraction of the sum of the two van der Waals radii that two atoms of different molecules may
#: approach; :data:`HBOND_CONTACT` (Å) for H to N or O (hydrogen bonds, H···O about 1.8 Å).
CONTACT_FACTOR = 0.87
HBOND_CONTACT = 1.75
#: The loose starting cell's volume per atom (Å³) before it is shrunk, and the least margin (Å)
#: between the molecule's length and the thinnest layer of that cell.
START_VOLUME_PER_ATOM = 40.0
START_MARGIN = 4.0
#: Times the loose cell is made 1.3 times longer when the molecules still touch in it.
START_GROWTHS = 6
#: Rounds of shrinking each axis (the molecule is nudged between rounds), and bisection steps
#: per axis and round; the nudge: standard deviation of the move (fractional) and turn
#: (degrees), and nudges tried (the first that touches no other molecule is kept).
SHRINK_ROUNDS = 8
BISECTION_STEPS = 6
NUDGE = 0.02
NUDGE_DEGREES = 8.0
NUDGE_TRIES = 4

#: Bond lengths (Å) between heavy atoms: (single, double/aromatic).
_BONDS = {
    frozenset(("C",)): (1.52, 1.39), frozenset(("C", "N")): (1.46, 1.34), frozenset(("C", "O")): (1.42, 1.22),
    frozenset(("N",)): (1.42, 1.30), frozenset(("N", "O")): (1.40, 1.22), frozenset(("O",)): (1.46, 1.46),
    frozenset(("C", "S")): (1.81, 1.71), frozenset(("C", "Cl")): (1.74, 1.74), frozenset(("C", "F")): (1.35, 1.35),
    frozenset(("C", "Br")): (1.90, 1.90),
}
#: X–H bond lengths (Å) as x-ray PDFs see them (the electron density sits inside the bond).
_H_BONDS = {"C": 0.97, "N": 0.90, "O": 0.84, "S": 1.20}
#: What is attached at an open bond: (kind, weight). "ring" is a six-membered aromatic ring.
_ATTACHMENTS = (
    ("ring", 0.22), ("C3", 0.22), ("C2", 0.14), ("N3", 0.08), ("N2", 0.04), ("O2", 0.12), ("O1", 0.08),
    ("Cl", 0.04), ("F", 0.02), ("Br", 0.01), ("S2", 0.03),
)


class _Molecule:
    """A molecule under construction: elements, positions, bonds, and open bond directions."""

    def __init__(self) -> None:
        self.elements: list[str] = []
        self.xyz: list[np.ndarray] = []
        self.neighbours: list[list[int]] = []
        self.sp2: list[bool] = []
        self.open: list[tuple[int, np.ndarray]] = []  # (atom, unit vector)

    def add(self, element: str, xyz: np.ndarray, *, sp2: bool, bonded_to: int | None) -> int:
        index = len(self.elements)
        self.elements.append(element)
        self.xyz.append(np.asarray(xyz, dtype=float))
        self.neighbours.append([])
        self.sp2.append(sp2)
        if bonded_to is not None:
            self.neighbours[index].append(bonded_to)
            self.neighbours[bonded_to].append(index)
        return index

    def heavy(self) -> int:
        return sum(e != "H" for e in self.elements)

    def fits(self, xyz: np.ndarray, anchor: int) -> bool:
        """Whether a new heavy atom at ``xyz`` bonded to ``anchor`` keeps its distances."""
        if not self.xyz:
            return True
        near = set(self.neighbours[anchor])
        for j, other in enumerate(self.xyz):
            if j == anchor:
                continue
            limit = ONE_THREE_MIN if j in near else (HYDROGEN_MIN if self.elements[j] == "H" else NONBONDED_MIN)
            if np.linalg.norm(other - xyz) < limit:
                return False
        return True


def _perpendicular(u: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``u`` and to each other, at a random angle about ``u``."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    phi = rng.uniform(0, 2 * np.pi)
    return np.cos(phi) * e1 + np.sin(phi) * e2, -np.sin(phi) * e1 + np.cos(phi) * e2


def _branch_directions(u: np.ndarray, n: int, sp2: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` directions of further bonds from an atom reached along ``u``: tetrahedral (sp3)
    or trigonal planar (sp2) with the incoming bond, at a random torsion."""
    e1, e2 = _perpendicular(u, rng)
    if sp2:
        angles, along, across = (0.0, np.pi), 0.5, np.sqrt(3) / 2
    else:
        angles, along, across = (0.0, 2 * np.pi / 3, 4 * np.pi / 3), 1 / 3, 2 * np.sqrt(2) / 3
    return [along * u + across * (np.cos(a) * e1 + np.sin(a) * e2) for a in angles[:n]]


def _bond(a: str, b: str, double: bool) -> float:
    single, multiple = _BONDS.get(frozenset((a, b)), (1.50, 1.40))
    return multiple if double else single


def _add_ring(mol: _Molecule, anchor: int | None, u: np.ndarray, rng: np.random.Generator) -> bool:
    """A planar six-membered aromatic ring bonded along ``u`` from ``anchor`` (or the first atoms)."""
    side = 1.39
    start = np.zeros(3) if anchor is None else mol.xyz[anchor] + u * _bond(mol.elements[anchor], "C", False)
    centre = start + u * side
    e1, _ = _perpendicular(u, rng)
    ring = [centre + side * (-np.cos(t) * u + np.sin(t) * e1) for t in np.arange(6) * np.pi / 3]
    if anchor is not None and not all(mol.fits(p, anchor) for p in ring):
        return False
    nitrogen = int(rng.integers(1, 6)) if rng.random() < 0.25 else -1
    first = len(mol.elements)
    for k, p in enumerate(ring):
        element = "N" if k == nitrogen else "C"
        mol.add(element, p, sp2=True, bonded_to=anchor if k == 0 else first + k - 1)
    mol.neighbours[first].append(first + 5)
    mol.neighbours[first + 5].append(first)
    for k in range(1 if anchor is not None else 0, 6):
        if k != nitrogen:
            radial = ring[k] - centre
            mol.open.append((first + k, radial / np.linalg.norm(radial)))
    return True


def _attach(mol: _Molecule, kind: str, anchor: int, u: np.ndarray, rng: np.random.Generator) -> bool:
    """Attach one atom of ``kind`` (see :data:`_ATTACHMENTS`) to ``anchor`` along ``u``."""
    if kind == "ring":
        return _add_ring(mol, anchor, u, rng)
    element = kind.rstrip("0123456789")
    double = kind == "O1" and mol.sp2[anchor] and mol.elements[anchor] == "C"
    if kind == "O1" and not double:
        return False  # a terminal O is a carbonyl; a hydroxyl is O2 with its H
    sp2 = kind in ("C2", "N2")
    xyz = mol.xyz[anchor] + u * _bond(mol.elements[anchor], element, double or (sp2 and mol.sp2[anchor]))
    if not mol.fits(xyz, anchor):
        return False
    index = mol.add(element, xyz, sp2=sp2 or double, bonded_to=anchor)
    branches = {"C3": 3, "C2": 2, "N3": 2, "N2": 1, "O2": 1, "S2": 1}.get(kind, 0)
    for d in _branch_directions(u, branches, sp2, rng):
        mol.open.append((index, d))
    return True


def _add_hydrogens(mol: _Molecule) -> None:
    """Hydrogen atoms on the open bonds of C, N, O and S where there is room."""
    for anchor, u in mol.open:
        element = mol.elements[anchor]
        if element not in _H_BONDS:
            continue
        xyz = mol.xyz[anchor] + u * _H_BONDS[element]
        near = set(mol.neighbours[anchor]) | {anchor}  # bond geometry fixes these distances
        if all(np.linalg.norm(p - xyz) >= (H_H_MIN if mol.elements[j] == "H" else HYDROGEN_MIN)
               for j, p in enumerate(mol.xyz) if j not in near):
            mol.add("H", xyz, sp2=False, bonded_to=anchor)
    mol.open = []


def random_molecule(rng: np.random.Generator, *, heavy_atoms: tuple[int, int] = HEAVY_ATOMS,
                    hydrogens: bool = True) -> tuple[list[str], np.ndarray]:
    """A random organic-like molecule: ``(elements, positions)`` with positions in Å, centred.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    heavy_atoms : (int, int), keyword-only
        Range of the number of non-hydrogen atoms (inclusive). A molecule grows until it has the
        drawn number; one that runs out of open bonds before the lower end (terminal atoms
        everywhere) is started again, up to :data:`MOLECULE_TRIES` times.
    hydrogens : bool, keyword-only
        Whether to put hydrogen atoms on the open bonds at the end.
    """
    for _ in range(MOLECULE_TRIES):
        mol = _grow(rng, int(rng.integers(heavy_atoms[0], heavy_atoms[1] + 1)), heavy_atoms[1])
        if mol.heavy() >= heavy_atoms[0]:
            break
    if hydrogens:
        _add_hydrogens(mol)
    xyz = np.array(mol.xyz)
    return list(mol.elements), xyz - xyz.mean(axis=0)


def _grow(rng: np.random.Generator, target: int, largest: int) -> _Molecule:
    """A molecule grown from a ring or one sp3 carbon to ``target`` heavy atoms (fewer if no
    open bond takes another atom in 50 tries running), without hydrogen."""
    mol = _Molecule()
    if rng.random() < 0.7:
        _add_ring(mol, None, np.array([1.0, 0.0, 0.0]), rng)
    else:
        index = mol.add("C", np.zeros(3), sp2=False, bonded_to=None)
        u = np.array([1.0, 0.0, 0.0])
        mol.open += [(index, -u)] + [(index, d) for d in _branch_directions(u, 3, False, rng)]  # tetrahedral
    kinds = [k for k, _ in _ATTACHMENTS]
    weights = np.array([w for _, w in _ATTACHMENTS])
    failures = 0
    while mol.heavy() < target and mol.open and failures < 50:
        slot = int(rng.integers(len(mol.open)))
        anchor, u = mol.open[slot]
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        if kind == "ring" and mol.heavy() + 6 > largest:
            kind = "C3"
        if _attach(mol, kind, anchor, u, rng):
            mol.open.pop(slot)
            failures = 0
        else:
            failures += 1
    return mol


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3×3 rotation matrix (from a random unit quaternion)."""
    q = rng.standard_normal(4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
    ])


def contact_distances(elements: list[str]) -> np.ndarray:
    """``d[i, j]``: how close atoms ``i`` and ``j`` of two different molecules may come (Å):
    :data:`CONTACT_FACTOR` × the sum of their van der Waals radii, :data:`HBOND_CONTACT` between
    H and N or O."""
    from training.wyckoff import atomic_radii

    vdw = np.array([atomic_radii(e)[1] for e in elements])
    limit = CONTACT_FACTOR * (vdw[:, None] + vdw[None, :])
    h = np.array([e == "H" for e in elements])
    acceptor = np.array([e in ("N", "O") for e in elements])
    hbond = (h[:, None] & acceptor[None, :]) | (acceptor[:, None] & h[None, :])
    return np.where(hbond, np.minimum(limit, HBOND_CONTACT), limit)


def _cartesian_copies(ops: np.ndarray, centre: np.ndarray, shape: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """The molecule's Z copies (Z, n, 3) in Cartesian Å: ``shape`` (n, 3, Å) about the fractional
    ``centre``, each copy made by one operation of ``ops`` (Z, 3, 4), its centre moved into the cell."""
    frac = centre + shape @ np.linalg.inv(lattice)
    copies = np.einsum("zij,nj->zni", ops[:, :, :3], frac) + ops[:, None, :, 3]
    centres = copies.mean(axis=1)
    copies -= np.floor(centres)[:, None, :]
    return copies @ lattice


def _clashes(copies: np.ndarray, lattice: np.ndarray, limit: np.ndarray) -> bool:
    """Whether copy 0 touches another copy or a lattice translation of any copy (every contact of
    a crystal is symmetry-equivalent to one of copy 0)."""
    centres = copies.mean(axis=1)  # (Z, 3)
    reach_distance = 2 * np.linalg.norm(copies[0] - centres[0], axis=1).max() + limit.max()
    reach = np.ceil(reach_distance / _layer_heights(lattice)).astype(int) + 1
    shifts = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in reach], indexing="ij"), -1).reshape(-1, 3)
    translations = shifts @ lattice  # (S, 3)
    gaps = np.linalg.norm(centres[None, :, :] + translations[:, None, :] - centres[0], axis=-1)  # (S, Z)
    near = gaps < reach_distance
    near[np.all(shifts == 0, axis=1), 0] = False  # copy 0 itself
    shift_index, copy_index = np.nonzero(near)
    if not len(shift_index):
        return False
    others = copies[copy_index] + translations[shift_index][:, None, :]  # (K, n, 3)
    d = np.linalg.norm(copies[0][None, :, None, :] - others[:, None, :, :], axis=-1)  # (K, n, n)
    return bool(np.any(d < limit))


def _layer_heights(lattice: np.ndarray) -> np.ndarray:
    """The cell's thickness (Å) across each pair of faces: volume over the area of the face
    spanned by the other two lattice vectors (rows of ``lattice``)."""
    return abs(np.linalg.det(lattice)) / np.linalg.norm(np.cross(lattice[[1, 2, 0]], lattice[[2, 0, 1]]), axis=1)


def _lattice(cell: np.ndarray) -> np.ndarray:
    """Lattice vectors (rows, Å) of cell parameters ``(a, b, c, alpha, beta, gamma)``."""
    from diffpy.structure import Lattice

    return np.array(Lattice(*cell).base)


def _spread_centre(ops: np.ndarray, lattice: np.ndarray, rng: np.random.Generator, tries: int = 30) -> np.ndarray:
    """Of ``tries`` random fractional points, the one whose symmetry copies (and their lattice
    translations) lie farthest from it: a molecule there has room on every side."""
    best, best_gap = rng.random(3), -1.0
    for _ in range(tries):
        point = rng.random(3)
        images = (ops[:, :, :3] @ point + ops[:, :, 3])[1:]
        diff = images - point
        diff -= np.round(diff)
        gap = np.linalg.norm(diff @ lattice, axis=1).min() if len(images) else np.inf
        if gap > best_gap:
            best, best_gap = point, gap
    return best


def _small_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation by a random angle of about :data:`NUDGE_DEGREES` about a random axis."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.normal(0.0, NUDGE_DEGREES))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def pack_molecule(space_group: int, elements: list[str], xyz: np.ndarray, rng: np.random.Generator) -> tuple[tuple[float, ...], np.ndarray] | None:
    """A crystal of the molecule on the general position of ``space_group``.

    Returns ``(cell, positions)``: the cell parameters (Å, degrees) and the fractional
    positions (Z·n, 3) of all atoms in the cell, copy after copy in the order of ``elements``;
    or ``None`` if the molecules touch even in the loosest starting cell.
    """
    from training.wyckoff import random_cell, wyckoff_operations

    lattice_type, operations, _, _ = wyckoff_operations(space_group)
    ops = operations[0]
    limit = contact_distances(elements)

    def touching(cell: np.ndarray, centre: np.ndarray, shape: np.ndarray) -> bool:
        lattice = _lattice(cell)
        return _clashes(_cartesian_copies(ops, centre, shape, lattice), lattice, limit)

    rotation = random_rotation(rng)
    volume = START_VOLUME_PER_ATOM * len(elements) * len(ops)
    cell = np.array(random_cell(lattice_type, volume, rng), dtype=float)
    # every layer of the loose cell thicker than the molecule, so no translation touches it
    cell[:3] *= max(1.0, (np.ptp(xyz, axis=0).max() + START_MARGIN) / _layer_heights(_lattice(cell)).min())
    for _ in range(START_GROWTHS):
        centre = _spread_centre(ops, _lattice(cell), rng)
        if not touching(cell, centre, xyz @ rotation.T):
            break
        cell[:3] *= 1.3
    else:
        return None
    tied = {"tetragonal": [(0, 1)], "hexagonal": [(0, 1)], "trigonal": [(0, 1)], "cubic": [(0, 1, 2)]}
    groups = tied.get(lattice_type, [])
    axes = list(groups) + [(k,) for k in range(3) if not any(k in g for g in groups)]
    for round_ in range(SHRINK_ROUNDS):
        for _ in range(NUDGE_TRIES if round_ else 0):
            # nudge the molecule, so that the contact that stopped the last round may open
            trial_rotation = _small_rotation(rng) @ rotation
            trial_centre = centre + rng.normal(0.0, NUDGE, 3)
            if not touching(cell, trial_centre, xyz @ trial_rotation.T):
                rotation, centre = trial_rotation, trial_centre
                break
        shape = xyz @ rotation.T
        for axis in [axes[i] for i in rng.permutation(len(axes))]:
            low, high = 0.4, 1.0  # high always fits
            for _ in range(BISECTION_STEPS):
                mid = 0.5 * (low + high)
                trial = cell.copy()
                trial[list(axis)] *= mid
                if touching(trial, centre, shape):
                    low = mid
                else:
                    high = mid
            cell[list(axis)] *= high
    shape = xyz @ rotation.T
    lat = _lattice(cell)
    frac = (_cartesian_copies(ops, centre, shape, lat) @ np.linalg.inv(lat)).reshape(-1, 3) % 1.0
    return tuple(float(v) for v in cell), frac
