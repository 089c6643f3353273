"""The structure library ``sgmine identify`` screens: compact cells, their space groups, and how
the shipped default library is built.

A :class:`StructureLibrary` holds, per structure, an id, formula, spglib space group, source and
its (primitive, where spglib finds one) cell as numbers: lattice parameters, atomic numbers,
fractional positions and occupancies. That is all the screen (:mod:`sgmine_diffpy.screen`) and
the refinement need, and it stores in a few MB (``np.savez_compressed``).

The default library (``sgmine_diffpy/data/structures.npz``) is built by::

    python -m sgmine_diffpy.structlib build ../shared/data/structures/mp_structures.csv.gz \\
        --per-type 1 --max-atoms 40 --size-ratio 1.15 --out plugins/sgmine-diffpy/sgmine_diffpy/data/structures.npz

from the Materials Project structures of that table (CC-BY-4.0; see NOTICE) and the one-element
prototypes of :data:`ELEMENT_PROTOTYPES` (fcc, hcp, bcc, diamond, simple cubic at a few lattice
constants; the free isotropic stretch of the screen covers the gaps): 5,217 structures in 1 MB,
of the table's 18,244 with at most 40 atoms in the primitive cell the first of each structure
type at each size (:func:`thin`). Only tables whose rows may
be redistributed belong in it: a table with a ``licence`` column keeps the rows that do not say
"training only".
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgmine import pdfdefaults

#: The default library shipped with the plugin.
DEFAULT_LIBRARY = Path(__file__).with_name("data") / "structures.npz"
#: The full library (every redistributable structure, as compounds and types) that
#: :mod:`sgmine_diffpy.chemistry` draws candidates from.
COMPOUND_LIBRARY = Path(__file__).with_name("data") / "compounds.npz"
#: spglib distance tolerance (Å) used to label the library.
SYMPREC = 0.01

#: One-element prototypes: space group, fractional sites of the conventional cell, nearest-
#: neighbour distance in units of a, c/a (hexagonal) or None, and the element named.
ELEMENT_PROTOTYPES = {
    "fcc": (225, ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)), math.sqrt(0.5), None, "Ni"),
    "hcp": (194, ((1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)), 1.0, (1.57, 1.633), "Mg"),
    "diamond": (227, ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
                      (0.25, 0.25, 0.25), (0.25, 0.75, 0.75), (0.75, 0.25, 0.75), (0.75, 0.75, 0.25)),
                math.sqrt(3) / 4, None, "Si"),
    "bcc": (229, ((0, 0, 0), (0.5, 0.5, 0.5)), math.sqrt(3) / 2, None, "Fe"),
    "simple-cubic": (221, ((0, 0, 0),), 1.0, None, "Po"),
}
#: Nearest-neighbour distances (Å) of the prototypes: ±10 % stretches of these cover 2.1–4.1 Å.
PROTOTYPE_NEIGHBOURS = (2.35, 2.75, 3.2, 3.75)


class StructureLibraryError(ValueError):
    """A library file or table that cannot be used; the message says why."""


@dataclass
class StructureLibrary:
    """Structures as arrays: entry ``i`` has atoms ``offsets[i]:offsets[i + 1]``."""

    ids: np.ndarray  # (n,) str
    formulas: np.ndarray  # (n,) str
    space_groups: np.ndarray  # (n,) int
    symbols: np.ndarray  # (n,) str, Hermann–Mauguin
    sources: np.ndarray  # (n,) str
    lattice: np.ndarray  # (n, 6) a, b, c, alpha, beta, gamma
    offsets: np.ndarray  # (n + 1,) int
    numbers: np.ndarray  # (m,) atomic numbers
    xyz: np.ndarray  # (m, 3) fractional
    occupancy: np.ndarray  # (m,)
    #: (m,) per atom, the index (within its entry) of its Wyckoff orbit's first atom (spglib's
    #: ``equivalent_atoms``); -1 for entries without one (disordered). None in older files.
    orbits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def digest(self) -> str:
        """A short hash of the cells and labels (names cached screening curves)."""
        h = hashlib.sha1()
        for array in (self.lattice, self.offsets, self.numbers, self.xyz, self.occupancy):
            h.update(np.ascontiguousarray(array).tobytes())
        h.update("\n".join(self.ids.tolist()).encode())
        return h.hexdigest()[:16]

    def structure(self, index: int):
        """Entry ``index`` as a ``diffpy.structure.Structure`` (title: its id)."""
        from diffpy.structure import Atom, Lattice, Structure

        from sgmine.simulate import RADIATIONS  # noqa: F401  (sgmine's simulate extra is present)

        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        atoms = [Atom(_SYMBOLS[self.numbers[k]], xyz=self.xyz[k].astype(float), occupancy=float(self.occupancy[k]))
                 for k in range(lo, hi)]
        for atom in atoms:
            atom.Uisoequiv = pdfdefaults.UISO
        return Structure(atoms, lattice=Lattice(*self.lattice[index].astype(float)), title=str(self.ids[index]))

    def save(self, path: str | os.PathLike) -> None:
        """Write the library (compressed ``.npz``) atomically."""
        from sgmine.files import atomic_write

        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, ids=self.ids.astype(str), formulas=self.formulas.astype(str), space_groups=self.space_groups.astype(np.int16),
            symbols=self.symbols.astype(str), sources=self.sources.astype(str), lattice=self.lattice.astype(np.float32),
            offsets=self.offsets.astype(np.int32), numbers=self.numbers.astype(np.uint8),
            xyz=self.xyz.astype(np.float32), occupancy=self.occupancy.astype(np.float16),
            **({} if self.orbits is None else {"orbits": self.orbits.astype(np.int16)}),
        )
        atomic_write(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StructureLibrary":
        """Read a library written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise StructureLibraryError(f"{path}: no such structure library (build it: python -m sgmine_diffpy.structlib build ...)")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name != "orbits" or name in data})
        except (OSError, KeyError, ValueError) as exc:
            raise StructureLibraryError(f"{path}: not a structure library ({exc})") from exc

    @classmethod
    def from_cells(cls, cells: list["Cell"]) -> "StructureLibrary":
        """Stack :class:`Cell` records into a library."""
        if not cells:
            raise StructureLibraryError("no structures")
        counts = [len(c.numbers) for c in cells]
        return cls(
            ids=np.array([c.structure_id for c in cells]), formulas=np.array([c.formula for c in cells]),
            space_groups=np.array([c.space_group for c in cells], dtype=int), symbols=np.array([c.symbol for c in cells]),
            sources=np.array([c.source for c in cells]), lattice=np.array([c.lattice for c in cells], dtype=float),
            offsets=np.concatenate(([0], np.cumsum(counts))).astype(int),
            numbers=np.concatenate([c.numbers for c in cells]).astype(int),
            xyz=np.concatenate([c.xyz for c in cells]).astype(float),
            occupancy=np.concatenate([c.occupancy for c in cells]).astype(float),
            orbits=(np.concatenate([c.orbits for c in cells]).astype(int)
                    if all(c.orbits is not None for c in cells) else None),
        )


@dataclass
class Cell:
    """One labelled structure before stacking."""

    structure_id: str
    formula: str
    space_group: int
    symbol: str
    source: str
    lattice: np.ndarray
    numbers: np.ndarray
    xyz: np.ndarray
    occupancy: np.ndarray
    orbits: np.ndarray | None = None  # per atom: its Wyckoff orbit (see StructureLibrary.orbits)


class _Symbols:
    """Element symbol by atomic number (``periodictable``)."""

    def __getitem__(self, z: int) -> str:
        import periodictable

        return periodictable.elements[int(z)].symbol


_SYMBOLS = _Symbols()


def atomic_number(element: str) -> int:
    import periodictable

    from sgmine.simulate import neutral_element

    return int(periodictable.elements.symbol(neutral_element(element)).number)


def formula(numbers: np.ndarray, occupancy: np.ndarray) -> str:
    """Reduced formula in order of first appearance, e.g. ``"Fe2O3"``."""
    counts: dict[int, float] = {}
    for z, occ in zip(numbers.tolist(), occupancy.tolist()):
        counts[z] = counts.get(z, 0.0) + occ
    if all(abs(n - round(n)) < 1e-3 for n in counts.values()):
        ints = {z: int(round(n)) for z, n in counts.items() if round(n) > 0}
        divisor = math.gcd(*ints.values()) if ints else 1
        return "".join(f"{_SYMBOLS[z]}{'' if n // divisor == 1 else n // divisor}" for z, n in ints.items())
    return "".join(f"{_SYMBOLS[z]}{n:.3g}" for z, n in counts.items())


def label_cell(structure_id: str, source: str, lattice_params, numbers, xyz, occupancy, symprec: float = SYMPREC) -> Cell:
    """spglib's space group of a cell, and the cell reduced to spglib's primitive standard cell
    when it is ordered (fewer atoms: faster screening curves). Raises StructureLibraryError."""
    import warnings

    import spglib
    from diffpy.structure import Lattice

    numbers = np.asarray(numbers, dtype=int)
    xyz = np.asarray(xyz, dtype=float) % 1.0
    occupancy = np.asarray(occupancy, dtype=float)
    if numbers.size == 0:
        raise StructureLibraryError(f"{structure_id}: no atoms")
    base = np.asarray(Lattice(*lattice_params).base, dtype=float)
    ordered = bool(np.all(np.abs(occupancy - 1.0) < 1e-6))
    if ordered:
        types = numbers
    else:  # occupancy is part of the species, as sgmine.sites does
        keys = list(zip(numbers.tolist(), np.round(occupancy, 3).tolist()))
        index = {k: n + 1 for n, k in enumerate(sorted(set(keys)))}
        types = np.array([index[k] for k in keys])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = spglib.get_symmetry_dataset((base, xyz, types), symprec=symprec)
            primitive = spglib.standardize_cell((base, xyz, types), to_primitive=True, symprec=symprec) if ordered else None
    except Exception as exc:  # SpglibError (new error handling)
        raise StructureLibraryError(f"{structure_id}: spglib found no symmetry ({exc})") from None
    if dataset is None:
        raise StructureLibraryError(f"{structure_id}: spglib found no symmetry")
    orbits = np.asarray(dataset.equivalent_atoms, dtype=int) if ordered else np.full(len(numbers), -1)
    if primitive is not None:
        pbase, xyz, numbers = primitive
        lat = Lattice(base=pbase)
        lattice_params = (lat.a, lat.b, lat.c, lat.alpha, lat.beta, lat.gamma)
        occupancy = np.ones(len(numbers))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                orbits = np.asarray(spglib.get_symmetry_dataset((pbase, xyz, numbers), symprec=symprec).equivalent_atoms, dtype=int)
        except Exception:  # no orbits: the entry cannot be decorated, but it can be screened
            orbits = np.full(len(numbers), -1)
    return Cell(structure_id, formula(np.asarray(numbers), occupancy), int(dataset.number), str(dataset.international),
                source, np.asarray(lattice_params, dtype=float), np.asarray(numbers, dtype=int), np.asarray(xyz, dtype=float) % 1.0,
                occupancy, orbits)


# --------------------------------------------------------------------------- reading CIF text

_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _cif_number(text: str) -> float:
    match = _NUMBER.match(text.strip())
    if not match:
        raise ValueError(f"not a number: {text!r}")
    return float(match.group(0))


def parse_p1_cif(text: str) -> tuple[tuple[float, ...], list[int], np.ndarray, np.ndarray] | None:
    """Fast path for P1 CIFs as pymatgen writes them (the Materials Project tables): ``(lattice
    parameters, atomic numbers, xyz, occupancies)``, or None when the text is not such a CIF
    (then diffpy.structure reads it)."""
    if not re.search(r"^_(?:symmetry_space_group_name_H-M|space_group_name_H-M_alt)\s+'P 1'\s*$", text, re.M):
        return None
    cell = {}
    for key in ("a", "b", "c", "alpha", "beta", "gamma"):
        m = re.search(rf"^_cell_(?:length|angle)_{key}\s+(\S+)", text, re.M)
        if not m:
            return None
        cell[key] = _cif_number(m.group(1))
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if line.strip().startswith("_atom_site_") and not lines[start - 1].strip().startswith("_atom_site_"):
            break
    else:
        return None
    columns = []
    k = start
    while k < len(lines) and lines[k].strip().startswith("_atom_site_"):
        columns.append(lines[k].strip())
        k += 1
    need = ["_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"]
    if any(c not in columns for c in need):
        return None
    col = {c: i for i, c in enumerate(columns)}
    numbers, xyz, occ = [], [], []
    for line in lines[k:]:
        fields = line.split()
        if not fields or fields[0].startswith(("_", "loop_", "#")) or len(fields) != len(columns):
            break
        numbers.append(atomic_number(fields[col["_atom_site_type_symbol"]]))
        xyz.append([_cif_number(fields[col[c]]) for c in need[1:]])
        occ.append(_cif_number(fields[col["_atom_site_occupancy"]]) if "_atom_site_occupancy" in col else 1.0)
    if not numbers:
        return None
    return tuple(cell[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")), numbers, np.array(xyz), np.array(occ)


def cell_from_cif(structure_id: str, source: str, text: str, symprec: float = SYMPREC) -> Cell:
    """A labelled :class:`Cell` from CIF text (fast path for P1, else diffpy.structure)."""
    try:
        parsed = parse_p1_cif(text)
    except Exception:  # odd numbers or elements: let diffpy try
        parsed = None
    if parsed is None:
        from diffpy.structure.parsers import getParser

        try:
            s = getParser("cif").parse(text)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StructureLibraryError(f"{structure_id}: cannot parse CIF ({first})") from None
        try:
            numbers = [atomic_number(a.element) for a in s]
        except ValueError as exc:
            raise StructureLibraryError(f"{structure_id}: {exc}") from None
        lat = s.lattice
        parsed = ((lat.a, lat.b, lat.c, lat.alpha, lat.beta, lat.gamma), numbers, np.array(s.xyz), np.array([a.occupancy for a in s]))
    return label_cell(structure_id, source, *parsed, symprec=symprec)


def prototype_cells() -> list[Cell]:
    """The one-element prototypes of :data:`ELEMENT_PROTOTYPES` at :data:`PROTOTYPE_NEIGHBOURS`."""
    cells = []
    for kind, (group, sites, nn, c_over_a, element) in ELEMENT_PROTOTYPES.items():
        for ratio in c_over_a or (None,):
            for d in PROTOTYPE_NEIGHBOURS:
                a = d / nn
                params = (a, a, a, 90, 90, 90) if ratio is None else (a, a, a * ratio, 90, 90, 120)
                tag = f"proto-{kind}-{d:.2f}" + ("" if ratio is None else f"-c{ratio:.3f}")
                z = atomic_number(element)
                cells.append(label_cell(tag, f"prototype:{kind}", params, [z] * len(sites), np.array(sites, float), np.ones(len(sites))))
    return cells


def _prototype_name(tags: dict) -> str:
    """``Halite, Rock Salt (B1, AB_cF8_225_a_b)``: mineral, Strukturbericht and AFLOW label."""
    words = [tags.get("strukturbericht"), tags.get("aflow")]
    inside = ", ".join(str(w) for w in words if w and str(w) != "None")
    mineral = str(tags.get("mineral") or "").replace("None", "").strip()
    return f"{mineral} ({inside})" if mineral else inside


def aflow_prototype_cells(path: str | os.PathLike | None = None, symprec: float = SYMPREC) -> list[Cell]:
    """The 288 AFLOW prototypes that pymatgen ships (``pymatgen/analysis/prototypes/
    aflow_prototypes.json.gz``: Mehl et al. 2017, Hicks et al. 2019), each with the elements of
    its example compound, its source ``prototype:<mineral (Strukturbericht, AFLOW label)>``.
    Read when the library is built (pymatgen is a build-time dependency only)."""
    import json

    if path is None:
        import importlib.util

        spec = importlib.util.find_spec("pymatgen.analysis.prototypes")
        if spec is None or not spec.submodule_search_locations:
            raise StructureLibraryError("pymatgen is not installed: it ships the AFLOW prototypes (pip install pymatgen)")
        path = Path(list(spec.submodule_search_locations)[0]) / "aflow_prototypes.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        entries = json.load(handle)
    cells = []
    for entry in entries:
        snl, tags = entry["snl"], entry["tags"]
        lat = snl["lattice"]
        numbers, xyz, occupancy = [], [], []
        for site in snl["sites"]:
            for species in site["species"]:
                numbers.append(atomic_number(species["element"]))
                xyz.append(site["abc"])
                occupancy.append(float(species.get("occu", 1.0)))
        params = tuple(float(lat[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma"))
        try:
            cells.append(label_cell(f"aflow-{tags['aflow']}", f"prototype:{_prototype_name(tags)}", params, numbers,
                                    np.array(xyz, float) % 1.0, np.array(occupancy), symprec=symprec))
        except StructureLibraryError:
            continue
    return cells


def reference_element_cells(symprec: float = SYMPREC) -> list[Cell]:
    """The crystal structures of the elements at their own size, from ``ase.data.reference_states``
    through ``ase.build.bulk`` (72 elements: fcc, bcc, hcp, diamond, and the others ase builds),
    source ``prototype:element-<symmetry>``. Build-time only (ase comes with the train extra)."""
    from ase.build import bulk
    from ase.data import chemical_symbols, reference_states

    cells = []
    for z, state in enumerate(reference_states):
        if not state or state.get("symmetry") in (None, "atom", "diatom"):
            continue
        symbol = chemical_symbols[z]
        try:
            atoms = bulk(symbol)
            params = tuple(float(v) for v in atoms.cell.cellpar())
            cells.append(label_cell(f"element-{symbol}", f"prototype:element-{state['symmetry']}", params,
                                    list(atoms.numbers), atoms.get_scaled_positions() % 1.0, np.ones(len(atoms)),
                                    symprec=symprec))
        except Exception:  # a reference state ase cannot build
            continue
    return cells


def read_table(path: str | os.PathLike, symprec: float = SYMPREC, limit: int | None = None) -> tuple[list[Cell], list[str], int]:
    """The redistributable rows of a CIF table (``.csv`` or ``.csv.gz`` with an id column
    ``material_id`` or ``id`` and a ``cif`` column). Returns ``(cells, skipped messages,
    rows left out for their licence)``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    csv.field_size_limit(1 << 30)
    cells, skipped, restricted = [], [], 0
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "cif" not in fields or not ({"material_id", "id"} & set(fields)):
            raise StructureLibraryError(f"{path}: a CIF table needs a 'cif' column and a 'material_id' or 'id' column")
        for row in reader:
            if "training only" in (row.get("licence") or "").lower():
                restricted += 1
                continue
            sid = row.get("material_id") or row.get("id")
            source = "mp" if sid.startswith("mp-") else path.name
            try:
                cells.append(cell_from_cif(sid, source, row["cif"], symprec))
            except StructureLibraryError as exc:
                skipped.append(str(exc))
            if limit is not None and len(cells) >= limit:
                break
    return cells, skipped, restricted


def build(tables: list[str | os.PathLike], *, prototypes: bool = True, limit: int | None = None,
          symprec: float = SYMPREC) -> tuple[StructureLibrary, list[str]]:
    """The library of ``tables`` and, with ``prototypes``, the one-element prototypes, the
    elements' reference structures (:func:`reference_element_cells`) and the AFLOW prototypes
    (:func:`aflow_prototype_cells`). Returns it and the skip messages."""
    cells: list[Cell] = prototype_cells() + reference_element_cells() + aflow_prototype_cells() if prototypes else []
    messages = []
    for table in tables:
        got, skipped, restricted = read_table(table, symprec, limit)
        cells += got
        messages += skipped
        if restricted:
            messages.append(f"{table}: {restricted} rows marked 'training only' left out")
    seen, unique = set(), []
    for cell in cells:
        if cell.structure_id not in seen:
            seen.add(cell.structure_id)
            unique.append(cell)
    return StructureLibrary.from_cells(unique), messages


def structure_type(library: StructureLibrary, index: int) -> tuple:
    """A cheap structure-type key: space group, atoms in the stored cell, and the sorted
    stoichiometry with the elements left out (NaCl and MgO share one; so do Ni and Cu)."""
    lo, hi = int(library.offsets[index]), int(library.offsets[index + 1])
    _, counts = np.unique(library.numbers[lo:hi], return_counts=True)
    return int(library.space_groups[index]), hi - lo, tuple(sorted(counts.tolist()))


def entry_elements(library: StructureLibrary, index: int) -> set[str]:
    """The element symbols of entry ``index``."""
    from sgmine.composition import ELEMENTS

    lo, hi = int(library.offsets[index]), int(library.offsets[index + 1])
    return {ELEMENTS[int(z)] for z in library.numbers[lo:hi]}


def atomic_size(library: StructureLibrary, index: int) -> float:
    """The cube root (Å) of the stored cell's volume per atom: what the screen's stretch scales."""
    from diffpy.structure import Lattice

    volume = Lattice(*(float(v) for v in library.lattice[index])).volume
    return (volume / max(int(library.offsets[index + 1] - library.offsets[index]), 1)) ** (1 / 3)


def thin(library: StructureLibrary, *, per_type: int | None = 1, max_atoms: int | None = None,
         size_ratio: float | None = None) -> StructureLibrary:
    """Keep at most ``per_type`` structures of each :func:`structure_type` (the first ones; the
    prototypes come first) and none with more than ``max_atoms`` atoms in the stored cell: the
    screen matches structure types (its stretch absorbs the chemistry's lattice constants), and
    every structure costs screening time.

    With ``size_ratio``, the limit holds per size: a structure counts only against the kept ones
    of its type whose :func:`atomic_size` is within that factor of its own, so that a type is kept
    at every size the screen's ±10 % stretch cannot reach from another (with 1.15, rock salts as
    small as MgO and as large as NaCl and KCl; with one per type, a rock salt of one size only)."""
    keep: list[int] = []
    sizes: dict[tuple, list[float]] = {}
    for i in range(len(library)):
        prototype = str(library.sources[i]).startswith("prototype")
        n_atoms = int(library.offsets[i + 1] - library.offsets[i])
        if max_atoms is not None and n_atoms > max_atoms and not prototype:
            continue
        key = structure_type(library, i)
        size = atomic_size(library, i)
        kept = sizes.setdefault(key, [])
        near = kept if size_ratio is None else [k for k in kept if max(k, size) / min(k, size) < size_ratio]
        if prototype or per_type is None or len(near) < per_type:
            keep.append(i)
            kept.append(size)
    return subset(library, keep)


def subset(library: StructureLibrary, indices) -> StructureLibrary:
    """The entries ``indices`` of ``library``, in that order."""
    indices = np.asarray(indices, dtype=int)
    atoms = np.concatenate([np.arange(library.offsets[i], library.offsets[i + 1]) for i in indices]) if len(indices) else np.zeros(0, int)
    counts = library.offsets[indices + 1] - library.offsets[indices]
    return StructureLibrary(
        ids=library.ids[indices], formulas=library.formulas[indices], space_groups=library.space_groups[indices],
        symbols=library.symbols[indices], sources=library.sources[indices], lattice=library.lattice[indices],
        offsets=np.concatenate(([0], np.cumsum(counts))).astype(int), numbers=library.numbers[atoms],
        xyz=library.xyz[atoms], occupancy=library.occupancy[atoms],
        orbits=None if library.orbits is None else library.orbits[atoms],
    )


def concatenate(libraries: list[StructureLibrary]) -> StructureLibrary:
    """The entries of ``libraries``, one after the other (orbits kept where all have them)."""
    offsets = [np.asarray(lib.offsets[1:]) + total for lib, total in
               zip(libraries, np.cumsum([0] + [int(lib.offsets[-1]) for lib in libraries[:-1]]))]
    have_orbits = all(lib.orbits is not None for lib in libraries)
    return StructureLibrary(
        ids=np.concatenate([lib.ids for lib in libraries]), formulas=np.concatenate([lib.formulas for lib in libraries]),
        space_groups=np.concatenate([lib.space_groups for lib in libraries]),
        symbols=np.concatenate([lib.symbols for lib in libraries]), sources=np.concatenate([lib.sources for lib in libraries]),
        lattice=np.concatenate([lib.lattice for lib in libraries]), offsets=np.concatenate([[0], *offsets]).astype(int),
        numbers=np.concatenate([lib.numbers for lib in libraries]), xyz=np.concatenate([lib.xyz for lib in libraries]),
        occupancy=np.concatenate([lib.occupancy for lib in libraries]),
        orbits=np.concatenate([lib.orbits for lib in libraries]) if have_orbits else None,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m sgmine_diffpy.structlib build TABLE... --out FILE``."""
    parser = argparse.ArgumentParser(prog="python -m sgmine_diffpy.structlib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a structure library from CIF tables and the element prototypes")
    b.add_argument("tables", nargs="*", help="CIF tables (.csv/.csv.gz with material_id|id and cif columns)")
    b.add_argument("--out", required=True, type=Path, help="the library file (.npz)")
    b.add_argument("--no-prototypes", action="store_true", help="leave out the one-element prototypes")
    b.add_argument("--limit", type=int, default=None, help="read at most this many structures per table")
    t = sub.add_parser("thin", help="keep a few structures per structure type (see thin())")
    t.add_argument("library", type=Path, help="a library built by 'build'")
    t.add_argument("--out", required=True, type=Path, help="the thinned library (.npz)")
    for p in (b, t):
        p.add_argument("--per-type", type=int, default=None, help="keep at most this many structures per structure type")
        p.add_argument("--max-atoms", type=int, default=None, help="leave out structures with more atoms in the (primitive) cell")
        p.add_argument("--size-ratio", type=float, default=None,
                       help="apply --per-type per size: count only same-type structures within this factor of (volume/atom)^(1/3)")
    args = parser.parse_args(argv)
    if args.command == "thin":
        library, messages = StructureLibrary.load(args.library), []
    else:
        library, messages = build(args.tables, prototypes=not args.no_prototypes, limit=args.limit)
    if args.per_type is not None or args.max_atoms is not None:
        library = thin(library, per_type=args.per_type, max_atoms=args.max_atoms, size_ratio=args.size_ratio)
    library.save(args.out)
    for m in messages[:20]:
        print(f"skipped {m}", file=sys.stderr)
    print(f"{len(library)} structures ({len(messages)} skipped) in {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
