"""Crystal structures to simulate training PDFs from, each with a space-group label from spglib.

Three sources, all yielding :class:`StructureRecord` objects:

- a folder of CIF files (a user's COD or ICSD export): :func:`cif_directory`;
- a table of CIF strings, e.g. a Materials Project export with columns ``material_id``,
  ``space_group``, ``cif`` (``.csv`` or ``.csv.gz``): :func:`cif_table`;
- synthetic crystals on Wyckoff positions of real materials: :func:`synthetic_crystals`;
- one-element crystals of the common element structure types (fcc, hcp, diamond; bcc and
  simple cubic for out-of-class checks): :func:`prototype_crystals`;
- molecular crystals of random organic molecules on general positions (:mod:`training.molecules`):
  :func:`molecular_crystals`.

Every source describes its structures with small, picklable *tasks* (:class:`CifFile`,
:class:`CifText`, :class:`SyntheticCrystal`, :class:`PrototypeCrystal`,
:class:`MolecularCrystal`); calling ``task.load()`` reads or builds the
structure and labels it. Loading happens in the worker processes of a dataset build, so a
task carries only what it needs (a path, a CIF string, a seed).

Labels
------
The label of every structure is computed with spglib on the structure itself, never taken from
a CIF header or a table column: ``spglib.get_symmetry_dataset`` with ``symprec`` =
:data:`SYMPREC` (0.01 Å, pymatgen's default for experimental structures) and spglib's default
angle tolerance. Atoms on partially occupied sites get a spglib type per (element, occupancy);
atoms of a disordered site that share one position (closer than ``symprec``) are merged into one
site whose type is the set of (element, occupancy) pairs on it, so that a disordered ICSD entry
is labelled by its average structure.

Synthetic crystals
------------------
For a requested space group, a combination of occupied Wyckoff positions is drawn with the
frequency it has among real materials, from the statistics PyXtal ships
(``pyxtal/database/spg_num_wps_mp.csv``: Materials Project structures counted by space group and
Wyckoff-position combination), limited to at most ``max_atoms`` atoms in the conventional cell.
The Wyckoff positions are shared among 1–4 chemical species (each species gets at least one
position). Elements: a one-species crystal is an element from :data:`ELEMENTS`; in a compound,
the species with the most atoms is an anion from :data:`ANIONS` with probability
:data:`ANION_PROBABILITY` and the other species are distinct cations from :data:`CATIONS`, drawn
until the formula is charge balanced with common oxidation states (:func:`charge_balanced`,
pymatgen's table); otherwise the compound is an intermetallic of distinct metals. Then the atoms
are placed, by PyXtal (``placement="pyxtal"``) or by the vectorised placement of
:mod:`training.wyckoff` (``"wyckoff"``, 30–40× faster, the same rules and about the same volumes
and shortest distances; the default of ``sgmine-train dataset``). PyXtal places the atoms, choosing the cell volume from atomic
radii (volume factor uniform in :data:`VOLUME_FACTOR`) and keeping every interatomic distance
above :data:`MIN_DISTANCE` (0.75) times the sum of the two covalent radii, and anion–anion
distances above :data:`ANION_MIN_DISTANCE` (1.6) times it (:func:`tolerance_matrix`). The result is
labelled with spglib as above and rejected if the label is not the requested group (a random
free parameter can land on a special position and raise the symmetry); up to ``max_tries``
draws are made, each from its own generator seeded with ``(seed, index, group, try)``. A
placement that takes PyXtal more than :data:`TRY_SECONDS` of CPU time is abandoned and
counts as a failed draw (rare, but without it a few draws take minutes; on a much slower machine
such a draw may then be abandoned where a fast one finishes it). So crystal ``index`` is the same however the work is split or ordered.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sgmine.sites import SYMPREC  # spglib distance tolerance in Å for all labels

#: Elements for one-species synthetic crystals, with relative weights.
ELEMENTS: dict[str, float] = {
    "Cu": 3, "Ni": 3, "Al": 3, "Fe": 3, "Ag": 2, "Au": 2, "Pt": 2, "Pd": 2, "Co": 2, "Ti": 2,
    "Zr": 2, "Mg": 2, "Zn": 2, "Cr": 2, "Mo": 2, "W": 2, "Nb": 2, "Ta": 1, "V": 1, "Mn": 1,
    "Si": 2, "Ge": 2, "Sn": 1, "Pb": 1, "Bi": 1, "Sb": 1, "C": 1, "Se": 1, "Te": 1, "Ca": 1,
    "Sr": 1, "Ba": 1, "Li": 1, "Na": 1, "K": 1, "Y": 1, "La": 1, "Ce": 1, "Nd": 1, "Ir": 1,
}
#: Anions for compounds, with relative weights (roughly their frequency in inorganic databases).
ANIONS: dict[str, float] = {
    "O": 40, "S": 12, "F": 9, "Cl": 8, "Se": 6, "N": 6, "Br": 4, "Te": 4, "I": 3, "P": 3, "As": 2, "C": 2, "B": 1,
}
#: Cations (and metals of intermetallics), with relative weights.
CATIONS: dict[str, float] = {
    "Li": 4, "Na": 4, "K": 3, "Rb": 1, "Cs": 2, "Mg": 4, "Ca": 4, "Sr": 3, "Ba": 4, "Sc": 1, "Y": 2,
    "La": 3, "Ce": 2, "Pr": 1, "Nd": 2, "Sm": 1, "Gd": 1, "Er": 1, "Yb": 1, "U": 1, "Ti": 3, "Zr": 2,
    "Hf": 1, "V": 2, "Nb": 2, "Ta": 1, "Cr": 2, "Mo": 2, "W": 2, "Mn": 3, "Fe": 3, "Co": 3, "Ni": 3,
    "Cu": 3, "Ag": 2, "Au": 1, "Zn": 3, "Cd": 2, "Hg": 1, "Al": 3, "Ga": 2, "In": 2, "Tl": 1,
    "Si": 2, "Ge": 2, "Sn": 2, "Pb": 2, "Sb": 1, "Bi": 2, "Pd": 1, "Pt": 1, "Rh": 1, "Ru": 1, "Ir": 1,
}
#: Probability that a compound is anion-based (the rest are intermetallics).
ANION_PROBABILITY = 0.75
#: Element draws per Wyckoff combination when looking for a charge-balanced anion compound.
CHARGE_TRIES = 20
#: Shortest allowed distance between two atoms of a synthetic crystal, as a fraction of the sum
#: of their covalent radii; :data:`ANION_MIN_DISTANCE` between two anions.
MIN_DISTANCE = 0.75
ANION_MIN_DISTANCE = 1.6
#: Range of PyXtal's volume factor (cell volume relative to the sum of atomic volumes).
VOLUME_FACTOR = (1.0, 1.3)
#: CPU seconds one PyXtal placement attempt may take before it is abandoned (most take well
#: under a second; a few draws send PyXtal into minutes of retries). CPU time, not wall-clock
#: time, so that a busy machine abandons the same draws as an idle one.
TRY_SECONDS = 3.0
#: Relative weights of 1, 2, 3, 4 species in a synthetic crystal (capped by the number of sites).
SPECIES_WEIGHTS = (0.15, 0.45, 0.3, 0.1)


class StructureError(ValueError):
    """A structure that cannot be read or labelled; the message names it and the problem."""


@dataclass
class StructureRecord:
    """One crystal structure with its spglib space group.

    ``structure_id`` is unique within a dataset and groups the augmented PDFs of one structure;
    ``source`` says where it came from (``cif:<path>``, ``mp:<material_id>``, ``synthetic:pyxtal``);
    ``structure`` is a ``diffpy.structure.Structure``.
    """

    structure_id: str
    source: str
    formula: str
    space_group: int
    structure: Any


# --------------------------------------------------------------------------- labels


def _element_symbol(label: str) -> str:
    """``"Fe3+"`` -> ``"Fe"``, ``"O2-"`` -> ``"O"``, ``"fe"`` -> ``"Fe"`` (:func:`sgmine.simulate.neutral_element`)."""
    from sgmine.simulate import neutral_element

    try:
        return neutral_element(label)
    except ValueError:
        raise StructureError(f"cannot read an element from atom type {label!r}") from None


def merged_sites(structure: Any, symprec: float = SYMPREC) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """The spglib cell of a diffpy Structure and, per site, the atoms merged into it
    (:func:`sgmine.sites.merged_sites`, the rule ``sgmine refine`` uses too).

    Returns ``(lattice, fractional positions, types, members)``: atoms closer than ``symprec``
    (disordered sites sharing a position) are merged into one site; a type stands for the set
    of (element, occupancy) pairs on a site; ``members[s]`` are the atom indices of site ``s``.
    Raises :class:`StructureError` for a structure without atoms or with an unknown element.
    """
    from sgmine import sites

    try:
        return sites.merged_sites(structure, symprec)
    except ValueError as exc:
        raise StructureError(str(exc)) from None


def spglib_cell(structure: Any, symprec: float = SYMPREC) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(lattice, fractional positions, types)`` spglib needs, from a diffpy Structure
    (disordered atoms sharing a position merged into one site, see :func:`merged_sites`)."""
    lattice, xyz, types, _ = merged_sites(structure, symprec)
    return lattice, xyz, types


def space_group_of(structure: Any, symprec: float = SYMPREC) -> int:
    """The space-group number spglib finds for a diffpy Structure at tolerance ``symprec`` (Å)."""
    import spglib

    cell = spglib_cell(structure, symprec)
    try:
        dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except Exception as exc:  # spglib >= 2.5 raises SpglibError where older versions returned None
        raise StructureError(f"spglib found no symmetry ({exc})") from exc
    if dataset is None:
        raise StructureError(f"spglib found no symmetry ({spglib.get_error_message()})")
    return int(dataset.number)


def formula_of(structure: Any) -> str:
    """Reduced chemical formula of a diffpy Structure (occupancy-weighted), e.g. ``"Fe2O3"``."""
    counts: dict[str, float] = {}
    for atom in structure:
        el = _element_symbol(atom.element)
        counts[el] = counts.get(el, 0.0) + float(atom.occupancy)
    if all(abs(n - round(n)) < 1e-3 for n in counts.values()):
        ints = {el: int(round(n)) for el, n in counts.items() if round(n) > 0}
        divisor = math.gcd(*ints.values()) if ints else 1
        return "".join(f"{el}{'' if n // divisor == 1 else n // divisor}" for el, n in ints.items())
    return "".join(f"{el}{n:.3g}" for el, n in counts.items())


def label(structure: Any, structure_id: str, source: str, symprec: float = SYMPREC) -> StructureRecord:
    """Label a diffpy Structure with spglib and wrap it in a :class:`StructureRecord`."""
    if len(structure) == 0:
        raise StructureError(f"{structure_id}: structure has no atoms")
    try:
        group = space_group_of(structure, symprec)
    except StructureError as exc:
        raise StructureError(f"{structure_id}: {exc}") from exc
    return StructureRecord(structure_id, source, formula_of(structure), group, structure)


# --------------------------------------------------------------------------- CIF files


@dataclass(frozen=True)
class CifFile:
    """A task: read one CIF file and label it."""

    path: str
    structure_id: str

    def load(self, symprec: float = SYMPREC) -> StructureRecord:
        from sgmine.simulate import read_structure

        try:
            structure = read_structure(self.path)
        except Exception as exc:
            raise StructureError(f"{self.path}: cannot read CIF ({_one_line(exc)})") from exc
        return label(structure, self.structure_id, f"cif:{self.path}", symprec)


def cif_directory(directory: str | Path) -> list[CifFile]:
    """Tasks for every ``*.cif`` file below ``directory`` (recursive, sorted by path).

    The structure id is the path relative to ``directory`` without the suffix (``1000041`` for
    a COD file ``1000041.cif``). Raises :class:`StructureError` if the folder does not exist or
    holds no CIF files.
    """
    root = Path(directory)
    if not root.is_dir():
        raise StructureError(f"{root}: not a folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".cif")
    if not paths:
        raise StructureError(f"{root}: no .cif files found")
    return [CifFile(str(p), str(p.relative_to(root).with_suffix(""))) for p in paths]


# --------------------------------------------------------------------------- CIF table


@dataclass(frozen=True)
class CifText:
    """A task: parse a CIF string (one row of a CIF table) and label it."""

    material_id: str
    cif: str
    table: str = ""

    def load(self, symprec: float = SYMPREC) -> StructureRecord:
        from diffpy.structure.parsers import getParser

        try:
            structure = getParser("cif").parse(self.cif)
        except Exception as exc:
            raise StructureError(f"{self.table}: {self.material_id}: cannot parse CIF ({_one_line(exc)})") from exc
        return label(structure, self.material_id, f"mp:{self.material_id}", symprec)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def cif_table(path: str | Path, space_groups: list[int] | None = None) -> list[CifText]:
    """Tasks for the rows of a CSV (optionally gzip-compressed) of CIF strings.

    Columns ``material_id`` (or ``id``) and ``cif`` are required. When ``space_groups`` is given and the
    table has a ``space_group`` column, only rows whose table label is one of them are kept (a
    cheap pre-selection: every kept structure is still relabelled with spglib, and the table's
    own label is never used as the training label).
    """
    path = Path(path)
    if not path.is_file():
        raise StructureError(f"{path}: no such file")
    csv.field_size_limit(sys.maxsize)
    wanted = set(space_groups) if space_groups else None
    tasks = []
    try:
        with _open_text(path) as fh:
            reader = csv.DictReader(fh)
            id_column = "material_id" if "material_id" in (reader.fieldnames or []) else "id"
            missing = {id_column, "cif"} - set(reader.fieldnames or [])
            if missing:
                raise StructureError(f"{path}: missing column(s) {sorted(missing)}; need material_id and cif")
            has_label = "space_group" in (reader.fieldnames or [])
            for row in reader:
                if wanted is not None and has_label:
                    try:
                        if int(row["space_group"]) not in wanted:
                            continue
                    except ValueError:
                        pass  # unreadable table label: keep the row, spglib decides
                tasks.append(CifText(row[id_column], row["cif"], str(path)))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise StructureError(f"{path}: cannot read CIF table ({_one_line(exc)})") from exc
    return tasks


# --------------------------------------------------------------------------- synthetic


@lru_cache(maxsize=None)
def _wyckoff_table() -> dict[int, list[tuple[int, tuple[int, ...], int]]]:
    """PyXtal's Wyckoff-combination statistics: group -> [(n_atoms, wyckoff indices, count)]."""
    from importlib.resources import files

    text = (files("pyxtal") / "database" / "spg_num_wps_mp.csv").read_text()
    table: dict[int, list[tuple[int, tuple[int, ...], int]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        wps = tuple(int(w) for w in str(row["wps"]).split("-"))
        table.setdefault(int(row["spg"]), []).append((int(row["n_atoms"]), wps, int(row["count"])))
    return table


def wyckoff_combinations(space_group: int, max_atoms: int = 64) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Wyckoff-position combinations of real materials in ``space_group`` and their frequencies.

    Returns the combinations (PyXtal Wyckoff indices, 0 = general position) with at most
    ``max_atoms`` atoms in the conventional cell, and their probabilities. Raises
    :class:`StructureError` if PyXtal's statistics have none for the group.
    """
    rows = [r for r in _wyckoff_table().get(int(space_group), []) if r[0] <= max_atoms]
    if not rows:
        raise StructureError(
            f"space group {space_group}: no Wyckoff combinations with <= {max_atoms} atoms in PyXtal's statistics"
        )
    counts = np.array([r[2] for r in rows], dtype=float)
    return [r[1] for r in rows], counts / counts.sum()


def _weighted_choice(rng: np.random.Generator, table: dict[str, float], exclude: set[str]) -> str:
    names = [k for k in table if k not in exclude]
    weights = np.array([table[k] for k in names], dtype=float)
    return str(rng.choice(names, p=weights / weights.sum()))


@lru_cache(maxsize=None)
def _common_oxidation_states(element: str) -> tuple[int, ...]:
    from pymatgen.core import Element

    return tuple(int(s) for s in Element(element).common_oxidation_states)


def charge_balanced(elements: list[str], counts: list[int], anion: int) -> bool:
    """Whether some choice of one common oxidation state per element (pymatgen's table; the
    anion's negative, the others' positive) makes ``Σ count × state`` zero."""
    totals = {0}
    for i, (el, n) in enumerate(zip(elements, counts)):
        states = [s for s in _common_oxidation_states(el) if (s < 0 if i == anion else s > 0)]
        if not states:
            return False
        totals = {t + n * s for t in totals for s in states}
    return 0 in totals


def _choose_species(rng: np.random.Generator, n_species: int, atoms_per_species: list[int]) -> list[str] | None:
    """Element for each species (see the module docstring for the rules); ``None`` if no
    charge-balanced choice was found for an anion compound."""
    if n_species == 1:
        return [_weighted_choice(rng, ELEMENTS, set())]
    if rng.random() >= ANION_PROBABILITY:  # intermetallic: distinct metals
        used: set[str] = set()
        for _ in range(n_species):
            used.add(_weighted_choice(rng, CATIONS, used))
        return [str(e) for e in rng.permutation(sorted(used))]
    anion = int(np.argmax(atoms_per_species))
    for _ in range(CHARGE_TRIES):
        elements: list[str] = [""] * n_species
        elements[anion] = _weighted_choice(rng, ANIONS, set())
        used = {elements[anion]}
        for i in range(n_species):
            if i != anion:
                elements[i] = _weighted_choice(rng, CATIONS, used)
                used.add(elements[i])
        if charge_balanced(elements, atoms_per_species, anion):
            return elements
    return None


def tolerance_matrix(species: list[str]) -> Any:
    """PyXtal's minimum distances for ``species``: :data:`MIN_DISTANCE` × the sum of the covalent
    radii, and :data:`ANION_MIN_DISTANCE` × that sum between two anions (no O–O, S–S, ... bonds)."""
    from pyxtal.database.element import Element
    from pyxtal.tolerance import Tol_matrix

    anions = [s for s in species if s in ANIONS]
    pairs = [
        (a, b, ANION_MIN_DISTANCE * (Element(a).covalent_radius + Element(b).covalent_radius))
        for i, a in enumerate(anions)
        for b in anions[i:]
    ]
    # pyxtal's "atomic" prototype is 0.5 x the radius sum; its factor scales that
    return Tol_matrix(*pairs, prototype="atomic", factor=MIN_DISTANCE / 0.5)


#: Ways to place the atoms of a synthetic crystal: PyXtal's ``from_random`` (about a second per
#: crystal) or :mod:`training.wyckoff`'s vectorised placement (milliseconds), same rules.
PLACEMENTS = ("pyxtal", "wyckoff")
#: Cells tried per draw by the ``wyckoff`` placement, each 1.1 times the volume of the last
#: (PyXtal grows the volume likewise when it cannot place the atoms).
CELL_TRIES = 4


@dataclass(frozen=True)
class SyntheticCrystal:
    """A task: build synthetic crystal number ``index`` in ``space_group``, placing the atoms
    with PyXtal or the fast Wyckoff placement (``placement``, see :data:`PLACEMENTS`)."""

    index: int
    space_group: int
    seed: int = 0
    max_atoms: int = 64
    max_tries: int = 20
    try_seconds: float | None = TRY_SECONDS
    placement: str = "pyxtal"

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {self.placement!r}; known: {', '.join(PLACEMENTS)}")

    @property
    def structure_id(self) -> str:
        prefix = "syn" if self.placement == "pyxtal" else "wyk"
        return f"{prefix}-{self.seed}-{self.space_group}-{self.index}"

    def load(self, symprec: float = SYMPREC) -> StructureRecord:
        from training.wyckoff import wyckoff_operations

        combos, probs = wyckoff_combinations(self.space_group, self.max_atoms)
        _, operations, labels, _ = wyckoff_operations(self.space_group)
        reasons: list[str] = []
        for attempt in range(self.max_tries):
            # each try has its own generator, so an abandoned try does not change the next ones
            rng = np.random.default_rng([int(self.seed), int(self.index), int(self.space_group), attempt])
            combo = combos[int(rng.choice(len(combos), p=probs))]
            n_species = int(
                rng.choice(np.arange(1, 5), p=_capped_weights(len(combo)))
            )
            slots = [int(s) for s in rng.permutation(len(combo))]
            owner = [0] * len(combo)
            for k, slot in enumerate(slots):
                owner[slot] = k if k < n_species else int(rng.integers(n_species))
            num_ions = [0] * n_species
            for slot, wp_index in enumerate(combo):
                num_ions[owner[slot]] += len(operations[wp_index])
            species = _choose_species(rng, n_species, num_ions)
            if species is None:
                reasons.append("no charge-balanced elements for the sites")
                continue
            try:
                if self.placement == "pyxtal":
                    structure = self._pyxtal_structure(labels, combo, owner, species, num_ions, rng)
                else:
                    structure = _wyckoff_structure(self.space_group, combo, [species[o] for o in owner], rng)
            except StructureError as exc:
                reasons.append(str(exc))
                continue
            try:
                record = label(structure, self.structure_id, f"synthetic:{self.placement}", symprec)
            except StructureError as exc:
                reasons.append(str(exc))
                continue
            if record.space_group != self.space_group:
                reasons.append(f"spglib found {record.space_group}")
                continue
            return record
        summary = "; ".join(sorted(set(reasons)))[:300]
        raise StructureError(
            f"{self.structure_id}: no valid crystal in space group {self.space_group} after "
            f"{self.max_tries} tries ({summary})"
        )

    def _pyxtal_structure(self, labels: tuple[str, ...], combo: tuple[int, ...], owner: list[int], species: list[str],
                          num_ions: list[int], rng: np.random.Generator) -> Any:
        """PyXtal's placement of the drawn sites (``labels``: the group's Wyckoff labels by PyXtal
        index) as a diffpy Structure (:class:`StructureError` if it fails)."""
        import warnings

        from pyxtal import pyxtal

        from sgmine.simulate import to_diffpy

        sites: list[list[str]] = [[] for _ in species]
        for slot, wp_index in enumerate(combo):
            sites[owner[slot]].append(labels[wp_index])
        crystal = pyxtal()
        try:
            with warnings.catch_warnings(), _time_limit(self.try_seconds):
                warnings.simplefilter("ignore")
                crystal.from_random(
                    3, int(self.space_group), species, num_ions, sites=sites,
                    factor=float(rng.uniform(*VOLUME_FACTOR)), random_state=rng,
                    tm=tolerance_matrix(species),
                )
        except _TimeUp:
            raise StructureError(f"pyxtal took more than {self.try_seconds:g} s") from None
        except Exception as exc:  # pyxtal raises RuntimeError and others when it cannot place atoms
            raise StructureError(f"pyxtal: {_one_line(exc)}") from None
        if not crystal.valid:
            raise StructureError("pyxtal could not place the atoms")
        return to_diffpy(crystal)


def minimum_distances(elements: list[str]) -> np.ndarray:
    """``d[i, j]``: the shortest allowed distance (Å) between atoms of ``elements[i]`` and
    ``elements[j]``, the rule of :func:`tolerance_matrix` (:data:`MIN_DISTANCE` × the sum of the
    covalent radii, :data:`ANION_MIN_DISTANCE` × it between two anions)."""
    from training.wyckoff import atomic_radii

    radius = np.array([atomic_radii(e)[0] for e in elements])
    anion = np.array([e in ANIONS for e in elements])
    factor = np.where(anion[:, None] & anion[None, :], ANION_MIN_DISTANCE, MIN_DISTANCE)
    return factor * (radius[:, None] + radius[None, :])


def _wyckoff_structure(space_group: int, combo: tuple[int, ...], elements: list[str], rng: np.random.Generator) -> Any:
    """The fast placement (:mod:`training.wyckoff`) of element ``elements[s]`` on Wyckoff position
    ``combo[s]``, as a diffpy Structure (:class:`StructureError` if no cell fits the atoms)."""
    from diffpy.structure import Atom, Lattice, Structure

    from training import wyckoff

    lattice_type, ops, _, _ = wyckoff.wyckoff_operations(space_group)
    per_atom = [el for el, wp in zip(elements, combo) for _ in range(len(ops[wp]))]
    volume = wyckoff.random_volume(per_atom, rng, factor=float(rng.uniform(*VOLUME_FACTOR)))
    limits = minimum_distances(elements)
    for grow in range(CELL_TRIES):
        lattice = Lattice(*wyckoff.random_cell(lattice_type, volume * 1.1**grow, rng))
        placed = wyckoff.place_sites(space_group, list(combo), limits, lattice.base, rng)
        if placed is not None:
            atoms = [Atom(elements[s], xyz=xyz) for s, orbit in placed for xyz in orbit]
            return Structure(atoms, lattice=lattice)
    raise StructureError(f"wyckoff placement found no room for the atoms in {CELL_TRIES} cells")


class _TimeUp(BaseException):
    """Raised by :func:`_time_limit` (a BaseException, so PyXtal's ``except Exception`` retry
    loops cannot swallow it)."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_TimeUp` in the block after ``seconds`` of CPU time of this process.

    Uses a virtual interval timer (SIGVTALRM), so it applies only in a process's main thread on
    POSIX (worker processes of a local build); elsewhere (a threaded Dask worker) the block
    runs without a limit.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "SIGVTALRM")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _TimeUp()

    previous = signal.signal(signal.SIGVTALRM, expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def _capped_weights(n_sites: int) -> np.ndarray:
    weights = np.array(SPECIES_WEIGHTS, dtype=float)
    weights[min(n_sites, len(weights)):] = 0.0
    return weights / weights.sum()


def synthetic_crystals(
    n: int, space_groups: list[int], seed: int = 0, max_atoms: int = 64, *, placement: str = "pyxtal"
) -> list[SyntheticCrystal]:
    """Tasks for ``n`` synthetic crystals, spread evenly over ``space_groups`` (round robin),
    their atoms placed by ``placement`` (:data:`PLACEMENTS`; :class:`SyntheticCrystal` checks it)."""
    if n < 0:
        raise ValueError(f"number of synthetic crystals must be >= 0, got {n}")
    if n and not space_groups:
        raise ValueError("synthetic crystals need at least one space group")
    for sg in space_groups:
        if not 1 <= int(sg) <= 230:
            raise ValueError(f"space group must be 1-230, got {sg}")
        wyckoff_combinations(int(sg), max_atoms)  # fail early for a group without statistics
    return [
        SyntheticCrystal(i, int(space_groups[i % len(space_groups)]), seed, max_atoms, placement=placement)
        for i in range(n)
    ]


# --------------------------------------------------------------------------- molecular crystals

#: Tries per molecular crystal (each a new molecule and packing) before it counts as failed.
MOLECULAR_TRIES = 5


@dataclass(frozen=True)
class MolecularCrystal:
    """A task: molecular crystal number ``index`` in ``space_group``: a random organic molecule
    on the group's general position, packed to van der Waals contact (:mod:`training.molecules`)."""

    index: int
    space_group: int
    seed: int = 0

    @property
    def structure_id(self) -> str:
        return f"mol-{self.seed}-{self.space_group}-{self.index}"

    def load(self, symprec: float = SYMPREC) -> StructureRecord:
        from diffpy.structure import Atom, Lattice, Structure

        from training.molecules import pack_molecule, random_molecule

        reasons: list[str] = []
        for attempt in range(MOLECULAR_TRIES):
            rng = np.random.default_rng([int(self.seed), int(self.index), int(self.space_group), attempt, 7])
            elements, xyz = random_molecule(rng)
            packed = pack_molecule(self.space_group, elements, xyz, rng)
            if packed is None:
                reasons.append("the molecules touch in every starting cell")
                continue
            cell, positions = packed
            copies = len(positions) // len(elements)
            structure = Structure([Atom(e, xyz=p) for e, p in zip(elements * copies, positions)], lattice=Lattice(*cell))
            record = label(structure, self.structure_id, "synthetic:molecular", symprec)
            if record.space_group == self.space_group:
                return record
            reasons.append(f"spglib found {record.space_group}")
        raise StructureError(
            f"{self.structure_id}: no molecular crystal in space group {self.space_group} after "
            f"{MOLECULAR_TRIES} tries ({'; '.join(sorted(set(reasons)))[:300]})"
        )


def molecular_crystals(n: int, space_groups: list[int], seed: int = 0) -> list[MolecularCrystal]:
    """Tasks for ``n`` molecular crystals, spread evenly over those of ``space_groups`` that are
    common for organics (:data:`training.molecules.MOLECULAR_GROUPS`; round robin)."""
    from training.molecules import MOLECULAR_GROUPS

    if n < 0:
        raise ValueError(f"number of molecular crystals must be >= 0, got {n}")
    groups = [g for g in MOLECULAR_GROUPS if g in {int(sg) for sg in space_groups}]
    if n and not groups:
        raise ValueError(
            f"molecular crystals are made in {', '.join(map(str, MOLECULAR_GROUPS))}; none of these is among the space groups"
        )
    return [MolecularCrystal(i, groups[i % len(groups)], seed) for i in range(n)]


# --------------------------------------------------------------------------- element prototypes

#: One-element structure types: space group, Wyckoff positions (fractional coordinates of the
#: conventional cell), nearest-neighbour distance in units of the cubic/hexagonal ``a``, and
#: the range of c/a (hexagonal only). Measured PDFs of elements (metal powders and nanoparticles,
#: Si, Ge, C) are among the most common, and real-structure tables hold few of them.
PROTOTYPES: dict[str, tuple[int, tuple[tuple[float, float, float], ...], float, tuple[float, float] | None]] = {
    "fcc": (225, ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)), math.sqrt(0.5), None),
    "hcp": (194, ((1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)), 1.0, (1.57, 1.67)),
    "diamond": (227, tuple(
        (x + dx, y + dy, z + dz)
        for x, y, z in ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0))
        for dx, dy, dz in ((0, 0, 0), (0.25, 0.25, 0.25))
    ), math.sqrt(3) / 4, None),
    "bcc": (229, ((0, 0, 0), (0.5, 0.5, 0.5)), math.sqrt(3) / 2, None),
    "simple-cubic": (221, ((0, 0, 0),), 1.0, None),
    # layered and hexagonal sp2/sp3 networks (graphite 2H, h-BN's geometry; lonsdaleite), whose
    # bonds are 1.4-1.6 A: made only when asked for (LAYER_PROTOTYPES)
    "graphite": (194, ((0, 0, 0.25), (0, 0, 0.75), (1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)),
                 1 / math.sqrt(3), (2.55, 2.90)),
    "lonsdaleite": (194, ((1 / 3, 2 / 3, 1 / 16), (2 / 3, 1 / 3, 9 / 16), (2 / 3, 1 / 3, 15 / 16), (1 / 3, 2 / 3, 7 / 16)),
                    math.sqrt(3 / 8), (1.60, 1.68)),
    # two-element structure types (COMPOUND_PROTOTYPES): the cation on the first four sites (fcc),
    # the anion on the rest; the distance is the cation-anion one. Rock salt (NaCl, MgO, MnO, TiC)
    # and fluorite (CaF2, CeO2; with the two swapped, antifluorite: Li2O, Mg2Sn)
    "rocksalt": (225, ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
                       (0.5, 0, 0), (0.5, 0.5, 0.5), (0, 0, 0.5), (0, 0.5, 0)), 0.5, None),
    "fluorite": (225, ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)) + tuple(
        (x + d, y + d, z + d)
        for x, y, z in ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0))
        for d in (0.25, 0.75)
    ), math.sqrt(3) / 4, None),
}
#: The prototypes ``sgmine-train dataset --prototypes`` makes unless ``--prototype-kinds`` says
#: otherwise (every dataset before 2026-12-02 was built with these).
ELEMENT_PROTOTYPES = ("fcc", "hcp", "diamond", "bcc", "simple-cubic")
#: The layered and hexagonal networks of short bonds (``--prototype-kinds graphite,lonsdaleite``
#: with ``--prototype-distance`` about 1.35,1.65).
LAYER_PROTOTYPES = ("graphite", "lonsdaleite")
#: Two-element prototypes: kind -> how many of its sites (the first) hold the cation; the anion
#: holds the rest. Cation and anion are drawn from :data:`CATIONS` and :data:`ANIONS` and
#: swapped half the time (antifluorite; no change for rock salt). ``--prototype-kinds
#: rocksalt,fluorite`` with ``--prototype-distance`` about 1.9,3.3 (Li-H 2.04 to K-Br 3.30).
COMPOUND_PROTOTYPES: dict[str, int] = {"rocksalt": 4, "fluorite": 4}
#: Nearest-neighbour distances drawn for the prototypes, Å: from C–C 1.54 (diamond) to Sr–Sr 4.3
#: (fcc), so that fcc Pb (3.50), Ce, Th, Yb and Ca (3.95) are covered. The runtime refuses a
#: first peak beyond 4.5 Å as not a G(r) (``sgmine.plausibility``), so larger ones are not drawn.
NEIGHBOUR_DISTANCE = (1.5, 4.4)
#: The range of the datasets built before 2026-12-02 (v5, sg45: ``--prototype-distance 2.3,3.3``).
#: It left out every element whose fcc a exceeds 4.67 Å, and the shipped 8-group model calls such
#: fcc crystals I4/mmm (a = 4.8–5.6 Å: ``benchmarks/probe_elements.py``).
LEGACY_NEIGHBOUR_DISTANCE = (2.3, 3.3)


@dataclass(frozen=True)
class PrototypeCrystal:
    """A task: prototype ``kind`` (:data:`PROTOTYPES`) of one element, with a nearest-neighbour
    distance (and c/a) drawn from ``(seed, kind, index)``. The PDF of a one-element crystal does
    not depend on which element it is, only on the lattice. A compound prototype
    (:data:`COMPOUND_PROTOTYPES`) also draws its cation and anion, whose weights shape the PDF."""

    kind: str
    index: int
    seed: int = 0
    distance: tuple[float, float] = NEIGHBOUR_DISTANCE

    @property
    def structure_id(self) -> str:
        lo, hi = self.distance
        return f"proto-{self.seed}-{self.kind}-{self.index}-nn{lo:g}-{hi:g}"

    def load(self, symprec: float = SYMPREC) -> StructureRecord:
        c_over_a = PROTOTYPES[self.kind][3]
        rng = np.random.default_rng([int(self.seed), int(self.index), list(PROTOTYPES).index(self.kind)])
        if self.kind in COMPOUND_PROTOTYPES:
            cation = _weighted_choice(rng, CATIONS, set())
            anion = _weighted_choice(rng, ANIONS, {cation})
            pair = (cation, anion) if rng.random() < 0.5 else (anion, cation)
            crystal = element_crystal(self.kind, float(rng.uniform(*self.distance)), element=pair[0], anion=pair[1])
            # the cation's atoms first, so the formula reads as in the tables (MgO, Li2O) and a
            # compound held out there is recognised as the same split group
            crystal = type(crystal)(sorted(crystal, key=lambda atom: atom.element != cation), lattice=crystal.lattice)
            return label(crystal, self.structure_id, f"prototype:{self.kind}", symprec)
        element = str(rng.choice(list(ELEMENTS)))
        distance = float(rng.uniform(*self.distance))
        ratio = None if c_over_a is None else float(rng.uniform(*c_over_a))
        structure = element_crystal(self.kind, distance, element=element, c_over_a=ratio)
        return label(structure, self.structure_id, f"prototype:{self.kind}", symprec)


def element_crystal(kind: str, distance: float, *, element: str = "Cu", c_over_a: float | None = None,
                    anion: str | None = None) -> Any:
    """A diffpy Structure of prototype ``kind`` (:data:`PROTOTYPES`) made of ``element``, with
    nearest neighbours at ``distance`` Å; ``c_over_a`` is the hexagonal prototypes' c/a (required
    for them, refused for the cubic ones). A compound prototype (:data:`COMPOUND_PROTOTYPES`)
    needs ``anion`` for its other sites; ``element`` then takes the cation sites."""
    from diffpy.structure import Atom, Lattice, Structure

    _, sites, nn, ratios = PROTOTYPES[kind]
    if (ratios is None) != (c_over_a is None):
        raise ValueError(f"{kind}: c/a is {'not ' if ratios is None else ''}a setting of this prototype")
    if (kind in COMPOUND_PROTOTYPES) != (anion is not None):
        raise ValueError(f"{kind}: an anion is {'' if kind in COMPOUND_PROTOTYPES else 'not '}a setting of this prototype")
    a = distance / nn
    lattice = Lattice(a, a, a, 90, 90, 90) if c_over_a is None else Lattice(a, a, a * c_over_a, 90, 90, 120)
    cations = COMPOUND_PROTOTYPES.get(kind, len(sites))
    return Structure([Atom(element if i < cations else anion, xyz=xyz) for i, xyz in enumerate(sites)], lattice=lattice)


def prototype_crystals(n: int, kinds: list[str], seed: int = 0, *,
                       distance: tuple[float, float] = NEIGHBOUR_DISTANCE) -> list[PrototypeCrystal]:
    """Tasks for ``n`` one-element crystals of each prototype in ``kinds``, with nearest-neighbour
    distances drawn uniformly from ``distance`` (Å)."""
    unknown = [k for k in kinds if k not in PROTOTYPES]
    if unknown:
        raise ValueError(f"unknown prototype(s) {unknown}; known: {list(PROTOTYPES)}")
    lo, hi = (float(d) for d in distance)
    if not 0.5 <= lo <= hi <= 10.0:
        raise ValueError(f"prototype nearest-neighbour distances must satisfy 0.5 <= low <= high <= 10 Å, got {lo:g}, {hi:g}")
    return [PrototypeCrystal(kind, i, seed, (lo, hi)) for kind in kinds for i in range(n)]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
