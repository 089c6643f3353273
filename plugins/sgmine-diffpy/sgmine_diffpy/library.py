"""A structure library: CIF files (or diffpy Structures) with their spglib-determined space group.

Each structure is standardised by spglib to the conventional cell in the standard setting of
its space group (the setting diffpy.structure's ``GetSpaceGroup(number)`` uses), so that
``constrainAsSpaceGroup`` and the pdffit2 constraints apply to it as they are written.
Ordered structures are assumed: a partially occupied site keeps its occupancy, but spglib sees
every (element, occupancy) pair as one species.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

#: Symmetry tolerance (Å) handed to spglib; CIFs from databases are usually good to 1e-3 Å.
DEFAULT_SYMPREC = 0.01
#: Isotropic U (Å²) given to atoms whose CIF has no usable ADP (missing, zero or > 0.1 Å²).
DEFAULT_UISO = 0.005

StructureSource = Union[str, os.PathLike, "Library", Iterable, Mapping]


class LibraryError(ValueError):
    """A structure that cannot be used; the message names the file and the problem."""


@dataclass
class LibraryEntry:
    """One structure of the library, standardised, with its space group."""

    name: str
    path: str | None
    structure: object  # diffpy.structure.Structure (conventional standard cell)
    space_group: int
    symbol: str
    sites: list[int]  # per atom: the index of its symmetry-independent representative


@dataclass
class Library:
    """The usable structures, and one message per structure that was skipped."""

    entries: list[LibraryEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def with_group(self, space_group: int) -> list[LibraryEntry]:
        """Entries whose spglib space group is ``space_group``."""
        return [e for e in self.entries if e.space_group == space_group]


def element_of(symbol: str) -> str:
    """The element in a CIF type symbol: ``Si0+`` → ``Si``, ``O2-`` → ``O``, ``ni`` → ``Ni``."""
    match = re.match(r"\s*([A-Za-z][a-z]?)", symbol)
    if not match:
        raise LibraryError(f"atom type {symbol!r} names no element")
    text = match.group(1)
    return text[0].upper() + text[1:].lower()


def standardise(structure, name: str, symprec: float = DEFAULT_SYMPREC) -> LibraryEntry:
    """spglib's conventional standard cell of a diffpy Structure, as a :class:`LibraryEntry`."""
    from diffpy.structure import Atom, Lattice, Structure

    if len(structure) == 0:
        raise LibraryError(f"{name}: structure has no atoms")
    species: list[tuple[str, float]] = []
    numbers, uiso = [], {}
    for atom in structure:
        key = (element_of(atom.element), round(float(atom.occupancy), 4))
        if key not in species:
            species.append(key)
        numbers.append(species.index(key) + 1)
        u = float(atom.Uisoequiv)
        uiso.setdefault(key, []).append(u if 0 < u <= 0.1 else DEFAULT_UISO)
    cell = (np.array(structure.lattice.base), np.array(structure.xyz) % 1.0, numbers)
    std, dataset = _spglib_standard(cell, symprec)
    if dataset is None:
        raise LibraryError(f"{name}: spglib could not determine the space group (symprec {symprec} Å)")
    lattice_vectors, positions, std_numbers = std
    lattice = Lattice(base=lattice_vectors)
    # Exact values matter: srfit picks monoclinic/trigonal constraints by comparing angles to 90/120.
    params = [round(v, 8) for v in (lattice.a, lattice.b, lattice.c)]
    params += [round(v, 6) for v in (lattice.alpha, lattice.beta, lattice.gamma)]
    atoms = []
    for n, (number, xyz) in enumerate(zip(std_numbers, positions)):
        element, occupancy = species[number - 1]
        atoms.append(
            Atom(element, xyz=np.round(xyz, 10) % 1.0, label=f"{element}{n + 1}", occupancy=occupancy,
                 Uisoequiv=float(np.mean(uiso[(element, occupancy)])))
        )
    standard = Structure(atoms, lattice=Lattice(*params), title=name)
    return LibraryEntry(
        name=name,
        path=None,
        structure=standard,
        space_group=int(dataset.number),
        symbol=str(dataset.international),
        sites=[int(i) for i in dataset.equivalent_atoms],
    )


def _spglib_standard(cell, symprec: float):
    """``(standard cell, symmetry dataset)`` from spglib, ``(None, None)`` when it finds none.

    Works with spglib's old error handling (None returned, a DeprecationWarning per call, kept
    quiet here) and its new one (SpglibError raised), without changing spglib's global setting.
    """
    import warnings

    import spglib

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*OLD_ERROR_HANDLING.*", category=DeprecationWarning)
            std = spglib.standardize_cell(cell, to_primitive=False, no_idealize=False, symprec=symprec)
            dataset = spglib.get_symmetry_dataset(std, symprec=symprec) if std is not None else None
    except Exception as exc:  # spglib.error.SpglibError with the new error handling
        if type(exc).__name__ != "SpglibError":
            raise
        return None, None
    return std, dataset


def read_structure(path: str | os.PathLike, symprec: float = DEFAULT_SYMPREC) -> LibraryEntry:
    """Read a CIF (or any format diffpy.structure reads) and standardise it."""
    from diffpy.structure import loadStructure

    path = Path(path)
    if not path.is_file():
        raise LibraryError(f"{path}: no such file")
    try:
        structure = loadStructure(str(path))
    except Exception as exc:  # diffpy raises StructureFormatError, and plain errors for odd files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LibraryError(f"{path}: cannot read structure ({first})") from exc
    entry = standardise(structure, path.name, symprec)
    entry.path = str(path)
    return entry


def load_library(source: StructureSource, symprec: float = DEFAULT_SYMPREC) -> Library:
    """Build a :class:`Library` from a folder of ``*.cif`` files, a list of CIF paths and/or
    diffpy Structures, or a mapping name → Structure. A file that cannot be used is skipped
    with a message in ``Library.skipped``; it does not stop the others.
    """
    if isinstance(source, Library):
        return source
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise LibraryError(f"{folder}: not a directory of CIF files")
        items: list = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".cif")
        if not items:
            raise LibraryError(f"{folder}: no .cif files")
    elif isinstance(source, Mapping):
        items = list(source.items())
    else:
        items = list(source)
    library = Library()
    for index, item in enumerate(items):
        try:
            if isinstance(item, (str, os.PathLike)):
                library.entries.append(read_structure(item, symprec))
            else:
                name, structure = item if isinstance(item, tuple) else (_title(item, index), item)
                library.entries.append(standardise(structure, str(name), symprec))
        except LibraryError as exc:
            library.skipped.append(str(exc))
    return library


def _title(structure, index: int) -> str:
    return getattr(structure, "title", "") or f"structure {index}"
