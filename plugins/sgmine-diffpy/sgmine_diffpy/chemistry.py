"""Candidate structures from the sample's composition (issue #33).

Given what went into the sample (:class:`sgmine.composition.Composition`) and a structure library
(:class:`~sgmine_diffpy.structlib.StructureLibrary`), :func:`chemistry_candidates` proposes:

1. **the chemical system's compounds**: library structures made of exactly the sample's (majority)
   elements, its polymorphs first;
2. **decorated structure types**: every structure type of the library (space group, atoms in
   the cell, stoichiometry) whose stoichiometry is the sample's, with the sample's elements put
   on its sites (:func:`decorate`), the cell rescaled to the sample's atomic sizes;
3. **elements**: for a one-element sample, every one-element type at that element's size
   (the library holds the reference structures of 72 elements from ``ase.data``).

**Doped and fractional formulas** map onto their parent's stoichiometry (:func:`site_groups`):
alike elements (Pauling electronegativities within :data:`MERGE_DX`) share a site when that
makes the amounts small integers (La0.72Ca0.28MnO3 → (La,Ca)MnO3, ABX3; CuIr1.76Cr0.24S4 →
Cu(Ir,Cr)2S4, AB2X4). A shared site is decorated with its majority element.

**Off-stoichiometric samples** (excess or missing atoms on a site: Na2.25(Zr,Y)Cl6, Cu1.8Se)
are also decorated as the simple stoichiometry they are near (:func:`near_amounts`), a little
behind the exact parent's candidates.

**Which element goes on which site.** The template's elements and the sample's site groups are
matched by their amounts in the formula unit (a site of multiplicity 2 takes an element of amount
2). Where several share one amount, the rule is the electronegativity order: the template's
least electronegative element takes the sample's least electronegative one (ThCr2Si2 decorated
as SrFe2As2: Cr → Fe, Si → As; CaTiO3 as LaMnO3: Ca → La, Ti → Mn). When there are at most
:data:`MAX_PERMUTATIONS` ways, all of them are proposed and the screen decides.

**Size.** A decorated cell is scaled isotropically so that its volume is the template's times
Σ n r³(new) / Σ n r³(old) over its atoms (r: the elements' empirical atomic radii); the screen's
stretch then finds the sample's own size, and :func:`shape_variants` explores the free axial
ratio (c/a) of tetragonal, hexagonal and trigonal candidates, which the isotropic stretch cannot
(:data:`AXIAL_FACTORS`, then :data:`AXIAL_FINE` around the best).

The per-element data (electronegativity, atomic radius) are ``data/elements.csv``, written from
pymatgen's periodic table by ``python -m sgmine_diffpy.chemistry elements --out ...`` (pymatgen is
needed only for that, not at run time).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sgmine.composition import ELEMENTS, Composition
from sgmine_diffpy.structlib import Cell, StructureLibrary, label_cell, structure_type

#: The per-element table (symbol, number, Pauling electronegativity, atomic radius in Å).
ELEMENT_TABLE = Path(__file__).with_name("data") / "elements.csv"
#: Elements whose electronegativities differ by at most this may share a site (dopants).
MERGE_DX = 0.8
#: Tolerance for "an integer amount" in a formula unit (absolute, after the multiplier).
AMOUNT_TOLERANCE = 0.03
#: Largest formula-unit multiplier tried to make amounts integers.
MAX_MULTIPLIER = 12
#: Site assignments proposed per template: all of them up to this many, else the rule's one.
MAX_PERMUTATIONS = 6
#: An off-stoichiometric sample (excess or missing atoms on one site) is also decorated as the
#: simple stoichiometry within this fraction of each amount (:func:`near_amounts`), of at most
#: :data:`NEAR_MULTIPLIER` formula units; those candidates' prior is :data:`NEAR_PENALTY` lower.
NEAR_TOLERANCE, NEAR_MULTIPLIER, NEAR_PENALTY = 0.15, 4, 1.0
#: c/a factors (constant volume) tried by :func:`shape_variants`.
AXIAL_FACTORS = (0.8, 0.87, 0.94, 1.07, 1.15, 1.24, 1.33)
#: Then around the best of them (relative factors).
AXIAL_FINE = (0.97, 1.03)


@dataclass(frozen=True)
class SiteGroup:
    """Elements that share a site of the parent structure, with their amounts."""

    species: tuple[tuple[str, float], ...]

    @property
    def amount(self) -> float:
        return sum(n for _, n in self.species)

    @property
    def majority(self) -> str:
        return max(self.species, key=lambda s: s[1])[0]

    @property
    def label(self) -> str:
        if len(self.species) == 1:
            return self.species[0][0]
        return "(" + ",".join(el for el, _ in self.species) + ")"


@dataclass
class ChemistryCandidate:
    """A candidate cell and how it was made (``origin``: ``system``, ``decorated`` or
    ``element``; ``template``: the library id it came from)."""

    cell: Cell
    origin: str
    template: str
    prior: float = 0.0


# --------------------------------------------------------------------------- element data


@lru_cache(maxsize=1)
def element_data() -> dict[str, tuple[float, float]]:
    """Symbol → (electronegativity, atomic radius in Å), from :data:`ELEMENT_TABLE`."""
    data = {}
    with open(ELEMENT_TABLE, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            data[row["symbol"]] = (float(row["electronegativity"]), float(row["radius"]))
    data.setdefault("D", data["H"])
    return data


def electronegativity(element: str) -> float:
    return element_data()[element][0]


def radius(element: str) -> float:
    return element_data()[element][1]


def write_element_table(path: str | Path) -> None:
    """Write :data:`ELEMENT_TABLE` from pymatgen's periodic table (missing values: 1.5)."""
    from pymatgen.core.periodic_table import Element

    from sgmine.files import atomic_write

    lines = ["symbol,number,electronegativity,radius"]
    for z, symbol in enumerate(ELEMENTS[1:104], start=1):
        element = Element.from_Z(z)
        x = element.X
        r = element.atomic_radius
        x = 1.5 if x is None or math.isnan(float(x)) else float(x)
        r = 1.5 if r is None else float(r)
        lines.append(f"{symbol},{z},{x:.2f},{r:.2f}")
    atomic_write(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- formulas


def integer_amounts(amounts, *, tolerance: float = AMOUNT_TOLERANCE, max_multiplier: int = MAX_MULTIPLIER,
                    relative: bool = False):
    """``(integers, multiplier)``: the amounts as written, times the smallest multiplier
    1…``max_multiplier`` that makes them all within ``tolerance`` of integers (or, ``relative``,
    within that fraction of each integer), reduced by their gcd (``[0.8, 0.2, 2]`` →
    ``((4, 1, 10), 5)``; ``[1, 2]`` → ``((1, 2), 1)``; ``[0.33, 1]`` → ``((1, 3), 3)``);
    ``(None, None)`` when none does. An absolute tolerance keeps a large multiplier from
    rounding away a real excess (3.25 × 3 = 9.75 is not 10)."""
    values = np.asarray(list(amounts), dtype=float)
    if len(values) == 0 or np.any(values <= 0):
        return None, None
    for multiplier in range(1, max_multiplier + 1):
        scaled = values * multiplier
        ints = np.round(scaled)
        if np.all(ints > 0) and np.all(np.abs(scaled - ints) <= (tolerance * ints if relative else tolerance)):
            ints = ints.astype(int)
            divisor = math.gcd(*ints.tolist())
            return tuple(int(i) for i in ints // divisor), multiplier
    return None, None


def _partitions(items: list):
    """Every set partition of ``items`` (lists of lists)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first]] + partition
        for k in range(len(partition)):
            yield partition[:k] + [[first] + partition[k]] + partition[k + 1:]


def site_groups(composition: Composition) -> list[SiteGroup]:
    """The sample's elements grouped onto the sites of its parent stoichiometry.

    Every way of letting alike elements share a site (at most three per site, electronegativities
    within :data:`MERGE_DX`) is tried; the grouping whose amounts are nearest a simple
    stoichiometry wins (the fewest formula units for :func:`near_amounts`, then for exact
    integers), then the one with more sites (no merging when none is needed: SrTiO3 stays three
    sites; Na2.25Y0.25Zr0.75Cl6 → Na(Zr,Y)Cl6 near Na2(Zr,Y)Cl6, Y on zirconium's site).
    Elements given with amounts that never become integers stay separate.
    """
    items = list(composition.amounts.items())
    if len(items) > 7:  # 877 partitions at 7; beyond, keep the elements as they are
        return [SiteGroup(((el, n),)) for el, n in items]
    best_key, best = None, None
    for partition in _partitions(items):
        if any(len(group) > 3 for group in partition):
            continue
        if any(max(electronegativity(e) for e, _ in g) - min(electronegativity(e) for e, _ in g) > MERGE_DX
               for g in partition if len(g) > 1):
            continue
        amounts = [sum(n for _, n in g) for g in partition]
        _, near = _near_integers(amounts)
        _, exact = integer_amounts(amounts)
        key = (near or MAX_MULTIPLIER + 1, exact or MAX_MULTIPLIER + 1, -len(partition))
        if best_key is None or key < best_key:
            best_key, best = key, partition
    groups = [SiteGroup(tuple(sorted(g, key=lambda s: -s[1]))) for g in best]
    order = {el: k for k, el in enumerate(composition.amounts)}
    return sorted(groups, key=lambda g: min(order[e] for e, _ in g.species))


def parent_formula(groups: list[SiteGroup]) -> str:
    """The parent's formula, shared sites in brackets: ``(La,Ca)MnO3``."""
    ints, _ = integer_amounts([g.amount for g in groups])
    if ints is None:
        return "".join(f"{g.label}{g.amount:g}" for g in groups)
    return "".join(f"{g.label}{'' if n == 1 else n}" for g, n in zip(groups, ints))


# --------------------------------------------------------------------------- decoration


def _cell_counts(library: StructureLibrary, index: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = int(library.offsets[index]), int(library.offsets[index + 1])
    return np.unique(library.numbers[lo:hi], return_counts=True)


def orbits(library: StructureLibrary, index: int) -> np.ndarray | None:
    """Per atom of entry ``index``, its Wyckoff orbit (spglib's ``equivalent_atoms``), or None
    for a disordered entry or one spglib cannot analyse. Stored in libraries built since
    orbits were (:attr:`StructureLibrary.orbits`), else computed."""
    import warnings

    import spglib
    from diffpy.structure import Lattice

    lo, hi = int(library.offsets[index]), int(library.offsets[index + 1])
    if np.any(np.abs(library.occupancy[lo:hi].astype(float) - 1) > 1e-3):
        return None
    if library.orbits is not None:
        stored = np.asarray(library.orbits[lo:hi], dtype=int)
        return None if np.any(stored < 0) else stored
    base = Lattice(*(float(v) for v in library.lattice[index])).base
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            data = spglib.get_symmetry_dataset((base, library.xyz[lo:hi].astype(float), library.numbers[lo:hi].astype(int)),
                                               symprec=1e-3)
    except Exception:
        return None
    return None if data is None else np.asarray(data.equivalent_atoms)


#: Complete site assignments enumerated per template at most (then the best-scored are kept).
MAX_ENUMERATED = 5000


def site_assignments(template: list[str], sizes: list[int], sample: list[tuple[str, int]]) -> list[tuple[str, ...]]:
    """Ways to put the sample's elements on a template's Wyckoff orbits, best first.

    Parameters
    ----------
    template : list of str
        Per orbit, the template's element.
    sizes : list of int
        Per orbit, its number of atoms in the cell.
    sample : list of (str, int)
        The sample's (majority) elements and their integer amounts per formula unit.

    Returns
    -------
    list of tuple
        Per assignment, the sample element of each orbit. Each sample element fills orbits
        whose sizes add up to its amount times the cell's formula units. Assignments are
        ordered by their agreement with the template's chemistry: +1 for every pair of orbits
        whose electronegativity order the decoration keeps (−1 where it reverses it), +1 for
        every pair that shares an element in both. At most :data:`MAX_PERMUTATIONS` are kept.
    """
    total = sum(n for _, n in sample)
    atoms = sum(sizes)
    if atoms % total:
        return []
    z = atoms // total
    if len(set(template)) == len(sample):
        found = _element_assignments(template, sizes, sample, z)
    elif len(set(template)) < len(sample) and len(sizes) <= MAX_SPLIT_ORBITS:
        found = _orbit_assignments(sizes, sample, z)
    else:
        found = []
    if not found:
        return []
    xt = [electronegativity(t) for t in template]

    def agreement(choice: tuple[str, ...]) -> int:
        score = 0
        xs = [electronegativity(e) for e in choice]
        for i, j in itertools.combinations(range(len(choice)), 2):
            if template[i] == template[j] and choice[i] == choice[j]:
                score += 1
            elif xt[i] != xt[j] and xs[i] != xs[j]:
                score += 1 if (xt[i] < xt[j]) == (xs[i] < xs[j]) else -1
        return score

    found.sort(key=lambda c: -agreement(c))
    return found[:MAX_PERMUTATIONS]


#: Atoms at most in a template's (primitive) cell: a larger cell costs more to screen and refine
#: than a chemistry candidate is likely to repay (the library's own compounds still come).
MAX_TEMPLATE_ATOMS = 40
#: Orbits at most of a template whose elements' sites are split among more sample elements
#: (BaAl4's 4d and 4e taking Fe and As): the ways to do so grow exponentially with them.
MAX_SPLIT_ORBITS = 8


def _element_assignments(template: list[str], sizes: list[int], sample: list[tuple[str, int]], z: int) -> list[tuple[str, ...]]:
    """Each template element onto one sample element with as many atoms (per orbit)."""
    atoms_t: dict[str, int] = {}
    for el, n in zip(template, sizes):
        atoms_t[el] = atoms_t.get(el, 0) + n
    t_elements = list(atoms_t)
    found = []
    for perm in itertools.permutations([el for el, _ in sample]):
        amount = dict(sample)
        if all(atoms_t[t] == amount[s] * z for t, s in zip(t_elements, perm)):
            mapping = dict(zip(t_elements, perm))
            found.append(tuple(mapping[t] for t in template))
        if len(found) >= MAX_ENUMERATED:
            break
    return found


def _orbit_assignments(sizes: list[int], sample: list[tuple[str, int]], z: int) -> list[tuple[str, ...]]:
    """Each orbit onto a sample element, the sample's amounts filled exactly."""
    remaining = {el: n * z for el, n in sample}
    order = sorted(range(len(sizes)), key=lambda k: -sizes[k])
    found: list[tuple[str, ...]] = []
    chosen: dict[int, str] = {}

    def walk(depth: int) -> None:
        if len(found) >= MAX_ENUMERATED:
            return
        if depth == len(order):
            if all(v == 0 for v in remaining.values()):
                found.append(tuple(chosen[k] for k in range(len(sizes))))
            return
        k = order[depth]
        for el in remaining:
            if remaining[el] >= sizes[k]:
                remaining[el] -= sizes[k]
                chosen[k] = el
                walk(depth + 1)
                remaining[el] += sizes[k]
        chosen.pop(k, None)

    walk(0)
    return found


def decorate(library: StructureLibrary, index: int, species: list[str], *, structure_id: str, source: str) -> Cell:
    """Entry ``index`` of ``library`` with the atoms' elements replaced by ``species`` (one per
    atom), its cell scaled by the atomic radii (see the module text), labelled again by spglib
    (a decoration may gain symmetry: an ordered type decorated with one element)."""
    from sgmine_diffpy.structlib import atomic_number

    lo, hi = int(library.offsets[index]), int(library.offsets[index + 1])
    old = [ELEMENTS[int(z)] for z in library.numbers[lo:hi]]
    occupancy = library.occupancy[lo:hi].astype(float)
    ratio = sum(o * radius(n) ** 3 for n, o in zip(species, occupancy)) / sum(o * radius(e) ** 3 for e, o in zip(old, occupancy))
    lattice = np.array(library.lattice[index], dtype=float)
    lattice[:3] *= ratio ** (1.0 / 3.0)
    return label_cell(structure_id, source, tuple(lattice), [atomic_number(n) for n in species],
                      library.xyz[lo:hi].astype(float), occupancy)


_TYPE_CACHE: dict[str, dict] = {}


def type_index(library: StructureLibrary) -> dict[tuple, list[int]]:
    """:func:`~sgmine_diffpy.structlib.structure_type` → its entries, kept per library."""
    key = library.digest
    if key not in _TYPE_CACHE:
        index: dict[tuple, list[int]] = {}
        for i in range(len(library)):
            index.setdefault(structure_type(library, i), []).append(i)
        _TYPE_CACHE[key] = index
    return _TYPE_CACHE[key]


def _templates(library: StructureLibrary, sample: list[tuple[str, int]]):
    """``(prior, entry, assignments)`` per structure type that can carry the sample: as many
    atoms in the cell as whole formula units, no more elements than the sample has sites (one
    element for an element), and a way to fill its orbits (:func:`site_assignments`). The entry
    is the type's member chemically closest to the sample; ``prior`` is log(1 + members) less
    twice the mean electronegativity difference between its atoms and the sample's on them."""
    total = sum(n for _, n in sample)
    out = []
    for (sg, n_atoms, counts), members in type_index(library).items():
        if n_atoms % total or n_atoms > MAX_TEMPLATE_ATOMS or len(counts) > len(sample) or (len(sample) == 1) != (len(counts) == 1):
            continue
        best = None
        for i in members[:5]:
            per_atom = orbits(library, i)
            if per_atom is None:
                continue
            lo = int(library.offsets[i])
            labels = sorted(set(per_atom.tolist()))
            template = [ELEMENTS[int(library.numbers[lo + k])] for k in labels]
            sizes = [int(np.sum(per_atom == k)) for k in labels]
            found = site_assignments(template, sizes, sample)
            if not found:
                break  # the members of one type share their orbits
            where = {k: n for n, k in enumerate(labels)}
            choices = [[choice[where[int(a)]] for a in per_atom] for choice in found]
            atoms = [ELEMENTS[int(z)] for z in library.numbers[lo:lo + n_atoms]]
            mismatch = float(np.mean([abs(electronegativity(a) - electronegativity(b)) for a, b in zip(atoms, choices[0])]))
            if best is None or mismatch < best[0]:
                best = (mismatch, i, choices)
        if best is not None:
            out.append((math.log1p(len(members)) - 2.0 * best[0], best[1], best[2]))
    out.sort(key=lambda t: -t[0])
    return out


def chemistry_candidates(library: StructureLibrary, composition: Composition, *, max_types: int = 30,
                         max_system: int = 24, max_candidates: int = 80) -> list[ChemistryCandidate]:
    """Candidate cells for a sample of ``composition`` (see the module text): the chemical
    system's compounds (at most ``max_system``, the sample's stoichiometry first), then the
    structure types of the library decorated with the sample's elements (the ``max_types`` with
    the highest prior, :func:`_templates`, each with its site assignments), one-element types
    for an element. Duplicates (the same cell from two templates) are dropped, and of the rest
    the ``max_candidates`` of highest prior are kept: the screen's time grows with them, and a
    formula of five elements decorates a few types in up to 180 ways (CH6NPbI3)."""
    groups = site_groups(composition)
    majority = [g.majority for g in groups]
    ints, _ = integer_amounts([g.amount for g in groups])
    out: list[ChemistryCandidate] = _system(library, majority, ints, max_system)
    near = near_amounts([g.amount for g in groups])  # an off-stoichiometric sample's simple parent
    for parent, penalty in ((ints, 0.0), (near if near != ints else None, NEAR_PENALTY)):
        if parent is not None:
            out += _decorated(library, list(zip(majority, parent)), max_types, penalty)
    return _unique(out)[:max_candidates]


def near_amounts(amounts) -> tuple[int, ...] | None:
    """The simple stoichiometry an off-stoichiometric sample is close to: the amounts rounded with
    :data:`NEAR_TOLERANCE` and at most :data:`NEAR_MULTIPLIER` formula units (Na2.25(Y,Zr)Cl6 →
    (2, 1, 6): excess sodium on interstitial sites; Cu1.8Se → (2, 1)); None when there is none."""
    return _near_integers(amounts)[0]


def _near_integers(amounts):
    """:func:`integer_amounts` within :data:`NEAR_TOLERANCE` of each amount, at most
    :data:`NEAR_MULTIPLIER` formula units: ``(integers, multiplier)``."""
    return integer_amounts(amounts, tolerance=NEAR_TOLERANCE, max_multiplier=NEAR_MULTIPLIER, relative=True)


def _decorated(library: StructureLibrary, sample: list[tuple[str, int]], max_types: int,
               penalty: float) -> list[ChemistryCandidate]:
    """The ``max_types`` best structure types for ``sample`` (:func:`_templates`), decorated in
    each of their site assignments; ``penalty`` lowers their prior."""
    label = "".join(f"{el}{'' if n == 1 else n}" for el, n in sample)
    out = []
    for prior, i, choices in _templates(library, sample)[:max_types]:
        for k, species in enumerate(choices):
            tag = f"{label}@{library.ids[i]}" + (f"#{k + 1}" if k else "")
            try:
                cell = decorate(library, i, species, structure_id=tag, source=f"decorated:{library.ids[i]}")
            except Exception:  # a degenerate cell spglib cannot label: skip this decoration
                continue
            out.append(ChemistryCandidate(cell, "element" if len(sample) == 1 else "decorated", str(library.ids[i]),
                                          prior - 0.1 * k - penalty))
    return out


def _system(library: StructureLibrary, elements: list[str], ints, limit: int) -> list[ChemistryCandidate]:
    """The library's compounds made of exactly ``elements``, one per (space group, formula, atoms
    in the cell): the sample's stoichiometry first, smaller cells first."""
    from sgmine_diffpy.structlib import atomic_number

    wanted = {atomic_number(e) for e in elements}
    found = []
    for i in range(len(library)):
        numbers, counts = _cell_counts(library, i)
        if set(numbers.tolist()) != wanted:
            continue
        order = [int(counts[list(numbers).index(atomic_number(e))]) for e in elements]
        same = ints is not None and integer_amounts(order, tolerance=1e-6, max_multiplier=1)[0] == tuple(ints)
        found.append((not same, int(library.offsets[i + 1] - library.offsets[i]), i))
    found.sort()
    kept, seen = [], set()
    for different, size, i in found:  # one entry per polymorph (several databases hold anatase)
        key = (int(library.space_groups[i]), str(library.formulas[i]), size)
        if key not in seen:
            seen.add(key)
            kept.append((different, size, i))
    out = []
    for different, _, i in kept[:limit]:
        lat = library.lattice[i]
        lo, hi = int(library.offsets[i]), int(library.offsets[i + 1])
        cell = Cell(str(library.ids[i]), str(library.formulas[i]), int(library.space_groups[i]), str(library.symbols[i]),
                    str(library.sources[i]), np.array(lat, float), library.numbers[lo:hi].astype(int),
                    library.xyz[lo:hi].astype(float), library.occupancy[lo:hi].astype(float))
        out.append(ChemistryCandidate(cell, "system", str(library.ids[i]), 10.0 - float(different)))
    return out


def _unique(candidates: list[ChemistryCandidate]) -> list[ChemistryCandidate]:
    """One candidate per cell: two templates of one type decorated alike (same space group,
    rounded volume per atom and the same element at the same positions) are the same."""
    from diffpy.structure import Lattice

    seen, out = set(), []
    for c in sorted(candidates, key=lambda c: -c.prior):
        volume = Lattice(*(float(v) for v in c.cell.lattice)).volume / max(len(c.cell.numbers), 1)
        sites = tuple(sorted(zip(c.cell.numbers.tolist(), map(tuple, np.round(c.cell.xyz % 1.0, 2).tolist()))))
        key = (c.cell.space_group, round(volume, 0), sites)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


# --------------------------------------------------------------------------- cell shape


def shape_variants(cell: Cell, factors=AXIAL_FACTORS) -> list[tuple[Cell, float]]:
    """``(cell, factor)``: the cell with its c/a multiplied by each factor at constant volume,
    for tetragonal, hexagonal and trigonal cells (space groups 75–194), in the conventional
    cell; none for other systems (their shape has no single free ratio, or none)."""
    import spglib

    if not 75 <= cell.space_group <= 194:
        return []
    from diffpy.structure import Lattice

    base = Lattice(*(float(v) for v in cell.lattice)).base
    standard = spglib.standardize_cell((base, cell.xyz, cell.numbers), to_primitive=False, symprec=1e-3)
    if standard is None:
        return []
    lattice, xyz, numbers = standard
    lengths = np.linalg.norm(lattice, axis=1)
    out = []
    for factor in factors:
        stretch = np.array([factor ** (-1 / 3), factor ** (-1 / 3), factor ** (2 / 3)])
        a, b, c = lengths * stretch
        angles = _angles(lattice)
        try:
            out.append((label_cell(f"{cell.structure_id}~c{factor:.3g}", cell.source, (a, b, c, *angles), numbers,
                                   xyz, np.ones(len(numbers))), float(factor)))
        except Exception:
            continue
    return out


def _angles(lattice: np.ndarray) -> tuple[float, float, float]:
    a, b, c = lattice
    def angle(u, v):
        return math.degrees(math.acos(float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))))
    return angle(b, c), angle(a, c), angle(a, b)


# --------------------------------------------------------------------------- screening


#: The stretch search for candidates made from the chemistry: ±18 % in 0.5 % steps (their size
#: comes from atomic radii, which miss a compound's own by more than the library screen's ±10 %).
CHEMISTRY_STRETCHES = np.linspace(0.82, 1.18, 73)
#: Candidates whose free axial ratio :func:`screen_chemistry` explores (best-screened first).
SHAPE_TOP = 4


def screen_chemistry(candidates: list[ChemistryCandidate], r: np.ndarray, g: np.ndarray, *, radiation: str,
                     qmax: float | None, qdamp: float | None, rmin: float, rmax: float, shape_top: int = SHAPE_TOP,
                     workers: int | None = None):
    """Screen chemistry candidates against a measured ``(r, g)``, as the library is screened
    (:func:`sgmine_diffpy.screen.screen`) but with the wider :data:`CHEMISTRY_STRETCHES`; then
    the best ``shape_top`` tetragonal, trigonal or hexagonal candidates are screened again at
    other c/a (:func:`shape_variants`: :data:`AXIAL_FACTORS`, then :data:`AXIAL_FINE` around
    the best) and replaced by their best variant.

    Returns
    -------
    (StructureLibrary, ScreenResult, list of ChemistryCandidate)
        The screened cells as a library, their screening result and the candidates in the
        library's order (None when there are no candidates).
    """
    from sgmine_diffpy.screen import compute_curves, prepare, screen

    if not candidates:
        return None

    def run(cells: list[Cell]):
        library = StructureLibrary.from_cells(cells)
        curves = compute_curves((library.structure(i) for i in range(len(library))), radiation, workers=workers)
        valid = np.isfinite(curves[:, -1])
        result = screen(r, g, prepare(curves, qmax=qmax, qdamp=qdamp), rmin=rmin, rmax=rmax,
                        stretches=CHEMISTRY_STRETCHES, valid=valid, curves=curves, qmax=qmax, qdamp=qdamp)
        return library, result

    candidates = list(candidates)
    library, result = run([c.cell for c in candidates])
    shaped = [int(i) for i in result.best(len(library)) if math.isfinite(result.rw[i])
              and 75 <= candidates[int(i)].cell.space_group <= 194][:shape_top]
    originals = {i: candidates[i].cell for i in shaped}
    factor = {i: 1.0 for i in shaped}
    for step in ("coarse", "fine"):
        variants, owners, factors = [], [], []
        for i in shaped:
            tried = AXIAL_FACTORS if step == "coarse" else tuple(factor[i] * f for f in AXIAL_FINE)
            more = shape_variants(originals[i], tried)
            variants += [cell for cell, _ in more]
            factors += [f for _, f in more]
            owners += [i] * len(more)
        if not variants:
            break
        _, extra = run(variants)
        for k, owner in enumerate(owners):
            if extra.rw[k] < result.rw[owner]:
                template = candidates[owner]
                candidates[owner] = ChemistryCandidate(variants[k], template.origin, template.template, template.prior)
                factor[owner] = factors[k]
                result.rw[owner], result.stretch[owner] = extra.rw[k], extra.stretch[k]
                if result.diameter is not None and extra.diameter is not None:
                    result.diameter[owner] = extra.diameter[k]
    library = StructureLibrary.from_cells([c.cell for c in candidates])
    return library, result, candidates


def main(argv: list[str] | None = None) -> int:
    """``python -m sgmine_diffpy.chemistry elements --out FILE`` writes the element table."""
    parser = argparse.ArgumentParser(prog="python -m sgmine_diffpy.chemistry", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("elements", help="write the per-element table from pymatgen's periodic table")
    e.add_argument("--out", type=Path, default=ELEMENT_TABLE)
    args = parser.parse_args(argv)
    write_element_table(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
