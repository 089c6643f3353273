"""A structure library: CIF files (or diffpy Structures) with their spglib-determined space group.

Each structure is standardised by spglib to the conventional cell in the standard setting of
its space group (the setting diffpy.structure's ``GetSpaceGroup(number)`` uses), so that
``constrainAsSpaceGroup`` and the pdffit2 constraints apply to it as they are written.
Disordered atoms sharing a position become one spglib site whose species is their set of
(element, occupancy) pairs (:mod:`sgmine.sites`, the rule the training labels use too); each keeps
its occupancy in the standardised structure. Every atom keeps the site label of the CIF atom it
was copied from (:func:`site_labels`), so a refined structure written back (Ti1, O1) names its
sites as the user's CIF did.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from sgmine import pdfdefaults
from sgmine.sites import SYMPREC

#: Symmetry tolerance (Å) handed to spglib; CIFs from databases are usually good to 1e-3 Å.
DEFAULT_SYMPREC = SYMPREC
#: Isotropic U (Å²) given to atoms whose CIF has no usable ADP (missing, zero or > 0.1 Å²).
DEFAULT_UISO = pdfdefaults.UISO

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


def standardise(structure, name: str, symprec: float = DEFAULT_SYMPREC) -> LibraryEntry:
    """spglib's conventional standard cell of a diffpy Structure, as a :class:`LibraryEntry`
    (site labels kept: :func:`site_labels`)."""
    from diffpy.structure import Atom, Lattice, Structure

    from sgmine.sites import atom_species, merged_sites, site_species

    if len(structure) == 0:
        raise LibraryError(f"{name}: structure has no atoms")
    try:
        keys = [atom_species(atom) for atom in structure]
        lattice_vectors, positions, numbers, members = merged_sites(structure, symprec)
    except ValueError as exc:
        raise LibraryError(f"{name}: {exc}") from None
    uiso: dict[tuple[str, float], list[float]] = {}
    for key, atom in zip(keys, structure):
        u = float(atom.Uisoequiv)
        uiso.setdefault(key, []).append(u if 0 < u <= 0.1 else DEFAULT_UISO)
    # the (element, occupancy) pairs each spglib type stands for (a disordered site has several)
    species = {int(t): site_species(keys, m) for t, m in zip(numbers, members)}
    std, dataset, source = _spglib_standard((lattice_vectors, positions, numbers), symprec)
    if dataset is None:
        raise LibraryError(f"{name}: spglib could not determine the space group (symprec {symprec} Å)")
    lattice_vectors, positions, std_numbers = std
    lattice = Lattice(base=lattice_vectors)
    # Exact values matter: srfit picks monoclinic/trigonal constraints by comparing angles to 90/120.
    params = [round(v, 8) for v in (lattice.a, lattice.b, lattice.c)]
    params += [round(v, 6) for v in (lattice.alpha, lattice.beta, lattice.gamma)]
    atoms, first_atom, site_of_atom, given = [], [], [], []
    for n, (number, xyz) in enumerate(zip(std_numbers, positions)):
        first_atom.append(len(atoms))
        copied_from = {keys[i]: structure[i].label for i in members[source[n]]}
        for element, occupancy in species[int(number)]:
            site_of_atom.append(n)
            given.append(copied_from.get((element, occupancy), ""))
            atoms.append(Atom(element, xyz=np.round(xyz, 10) % 1.0, occupancy=occupancy,
                              Uisoequiv=float(np.mean(uiso[(element, occupancy)]))))
    representative = [first_atom[int(i)] for i in dataset.equivalent_atoms]
    sites = [representative[n] for n in site_of_atom]
    for atom, label in zip(atoms, site_labels(given, [a.element for a in atoms], sites, site_of_atom, first_atom)):
        atom.label = label
    return LibraryEntry(
        name=name,
        path=None,
        structure=Structure(atoms, lattice=Lattice(*params), title=name),
        space_group=int(dataset.number),
        symbol=str(dataset.international),
        sites=sites,
    )


def site_labels(given: list[str], elements: list[str], sites: list[int], position: list[int],
                first_atom: list[int]) -> list[str]:
    """One label per atom of a standardised cell: all atoms of one orbit share it.

    Parameters
    ----------
    given
        Per atom, the label of the CIF atom it was copied from ("" where there was none).
    elements
        Per atom, its element.
    sites
        Per atom, the index of its orbit's representative atom (:attr:`LibraryEntry.sites`).
    position, first_atom
        Per atom, the index of its position; per position, its first atom (a disordered
        position holds several atoms, one per element).

    Returns
    -------
    list of str
        The label the orbit's first atom was given in the CIF; where that is empty or already
        another orbit's, the element and the lowest free number (``Ti1``, ``O2``).
    """
    orbit_label: dict[tuple[int, int], str] = {}
    orbits = [(sites[k], k - first_atom[position[k]]) for k in range(len(given))]
    taken: set[str] = set()
    for k, orbit in enumerate(orbits):
        if orbit in orbit_label:
            continue
        label = given[k].strip()
        if not label or label in taken:
            label = next(f"{elements[k]}{n}" for n in range(1, 2 * len(given) + 2) if f"{elements[k]}{n}" not in taken
                         and f"{elements[k]}{n}" not in given)
        orbit_label[orbit] = label
        taken.add(label)
    return [orbit_label[orbit] for orbit in orbits]


def _spglib_standard(cell, symprec: float):
    """``(standard cell, its symmetry dataset, source)`` from spglib, ``(None, None, None)`` when
    it finds no group; ``source[k]``: the index in ``cell`` of the site that atom ``k`` of the
    standard cell is a copy of (both map to the same atom of the primitive cell).

    Works with spglib's old error handling (None returned, a DeprecationWarning per call, kept
    quiet here) and its new one (SpglibError raised), without changing spglib's global setting.
    """
    import warnings

    import spglib

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*OLD_ERROR_HANDLING.*", category=DeprecationWarning)
            found = spglib.get_symmetry_dataset(cell, symprec=symprec)
            if found is None:
                return None, None, None
            # the standard cell spglib.standardize_cell(to_primitive=False, no_idealize=False) gives
            std = (found.std_lattice, found.std_positions, found.std_types)
            dataset = spglib.get_symmetry_dataset(std, symprec=symprec)
    except Exception as exc:  # spglib.error.SpglibError with the new error handling
        if type(exc).__name__ != "SpglibError":
            raise
        return None, None, None
    first: dict[int, int] = {}
    for site, primitive in enumerate(found.mapping_to_primitive):
        first.setdefault(int(primitive), site)
    return std, dataset, [first[int(p)] for p in found.std_mapping_to_primitive]


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
