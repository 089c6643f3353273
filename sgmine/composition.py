"""The sample's composition: chemical formulas as users and file headers write them.

One home for formula parsing (issue #33): the header reader, ``sgmine identify``'s
``--composition`` and ``--compositions`` options and the plugin's candidate generation all use
:func:`parse_formula` and :class:`Composition`.

Formulas are read as crystallographers write them, doped and fractional ones included::

    La0.8Ca0.2MnO3    Ba0.8K0.2(Zn0.85Mn0.15)2As2    CuIr1.76Cr0.24S4
    Zr H2 P2 O8 H2 O  C 10 H 8    CuSO4·5H2O    [Co(NH3)6]Cl3

Whitespace separates nothing but tokens, so ``C 10 H 8`` is C10H8 (PDFgetX2 and PDFgetN write
formulas so). Round and square brackets group, a number after a symbol or a group multiplies
it, ``·`` or ``*`` joins parts of a hydrate (a leading number multiplies its part), and a
symbol repeated adds up (``Zr H2 P2 O8 H2 O`` is ZrH4P2O9). ``D`` (deuterium) is accepted
beside the 118 elements. The runtime parses formulas itself (pymatgen is not a runtime
dependency, and pymatgen reads ``C 10 H 8`` as something else); ``tests/test_composition.py``
checks it against pymatgen's ``Composition`` on the formulas both read.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ELEMENTS",
    "Composition",
    "CompositionError",
    "parse_formula",
    "read_composition_table",
    "composition_for",
]

#: The element symbols by atomic number (index 0 is unused), and deuterium.
ELEMENTS = (
    "", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
    "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge",
    "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd",
    "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn",
    "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)
_SYMBOLS = frozenset(ELEMENTS[1:]) | {"D"}
_TOKEN = re.compile(r"\s*(?:([A-Z][a-z]?)|(\d+(?:\.\d*)?|\.\d+)|([()\[\]])|(\S))")
_OPEN = {"(": ")", "[": "]"}
#: Where a composition came from, in the order of precedence (first wins), and how messages name it.
SOURCES = {"table": "the composition table", "option": "the --composition option", "header": "the file header"}


class CompositionError(ValueError):
    """A formula that cannot be read; the message says what is wrong and where."""


@dataclass(frozen=True)
class Composition:
    """A sample's composition.

    Attributes
    ----------
    amounts : dict
        Element symbol → amount, in the order the formula first names each element.
    text : str
        The formula as given.
    source : str
        Where it came from: ``"table"`` (``--compositions``), ``"option"`` (``--composition``),
        ``"header"`` (the file's header) or ``""`` (given directly).
    """

    amounts: dict[str, float]
    text: str = ""
    source: str = ""

    @classmethod
    def parse(cls, text: str, *, source: str = "") -> "Composition":
        """Parse ``text`` (see :func:`parse_formula`); raises :class:`CompositionError`."""
        return cls(amounts=parse_formula(text), text=str(text).strip(), source=source)

    @property
    def elements(self) -> tuple[str, ...]:
        """The element symbols, in the formula's order."""
        return tuple(self.amounts)

    @property
    def formula(self) -> str:
        """A normalised formula: ``La0.8Ca0.2Mn1O3`` is written ``La0.8Ca0.2MnO3``."""
        return "".join(f"{el}{_amount(n)}" for el, n in self.amounts.items())

    def fractions(self) -> dict[str, float]:
        """Atomic fractions (summing to 1)."""
        total = sum(self.amounts.values())
        return {el: n / total for el, n in self.amounts.items()}


def _amount(n: float) -> str:
    if abs(n - 1) < 1e-9:
        return ""
    if abs(n - round(n)) < 1e-9:
        return str(int(round(n)))
    return f"{n:.6g}"


def parse_formula(text: str) -> dict[str, float]:
    """Element amounts of a chemical formula.

    Parameters
    ----------
    text : str
        A formula such as ``"La0.8Ca0.2MnO3"``, ``"Ba0.8K0.2(Zn0.85Mn0.15)2As2"``,
        ``"Zr H2 P2 O8 H2 O"`` or ``"C 10 H 8"`` (see the module's docstring for the rules).

    Returns
    -------
    dict
        Element symbol → amount (> 0), in the order the formula first names each element.

    Raises
    ------
    CompositionError
        Empty text, an unknown element symbol, an unbalanced bracket, a stray character, or a
        formula whose amounts are all zero; the message names the problem.
    """
    if not isinstance(text, str) or not text.strip():
        raise CompositionError("the composition is empty")
    amounts: dict[str, float] = {}
    for part in re.split(r"[·*]", text):
        tokens = _tokens(part, text)
        multiplier = 1.0
        if tokens and tokens[0][0] == "number":
            multiplier = tokens.pop(0)[1]
        if not tokens:
            raise CompositionError(f"{text!r}: no element in {part.strip()!r}")
        group, end = _group(tokens, 0, text, closing=None)
        for el, n in group.items():
            amounts[el] = amounts.get(el, 0.0) + n * multiplier
    amounts = {el: n for el, n in amounts.items() if n > 0}
    if not amounts:
        raise CompositionError(f"{text!r}: every amount is zero")
    return amounts


def _tokens(part: str, text: str) -> list[tuple[str, object]]:
    tokens: list[tuple[str, object]] = []
    for match in _TOKEN.finditer(part):
        symbol, number, bracket, other = match.groups()
        if symbol:
            if symbol not in _SYMBOLS:
                raise CompositionError(f"{text!r}: {symbol!r} is not an element symbol")
            tokens.append(("element", symbol))
        elif number:
            tokens.append(("number", float(number)))
        elif bracket:
            tokens.append(("bracket", bracket))
        elif other:
            hint = " (element symbols start with a capital letter)" if other.islower() else ""
            raise CompositionError(f"{text!r}: unexpected {other!r}{hint}")
    return tokens


def _group(tokens, start: int, text: str, closing: str | None) -> tuple[dict[str, float], int]:
    """Parse tokens from ``start`` up to ``closing`` (or the end); returns amounts and the index
    after the group."""
    amounts: dict[str, float] = {}
    k = start
    while k < len(tokens):
        kind, value = tokens[k]
        if kind == "bracket" and value in _OPEN:
            inner, k = _group(tokens, k + 1, text, closing=_OPEN[value])
        elif kind == "bracket":
            if value != closing:
                raise CompositionError(f"{text!r}: unbalanced {value!r}")
            if not amounts:
                raise CompositionError(f"{text!r}: an empty bracket")
            return amounts, k + 1
        elif kind == "element":
            inner, k = {value: 1.0}, k + 1
        else:
            raise CompositionError(f"{text!r}: the number {value:g} follows no element or bracket")
        multiplier = 1.0
        if k < len(tokens) and tokens[k][0] == "number":
            multiplier, k = tokens[k][1], k + 1
        for el, n in inner.items():
            amounts[el] = amounts.get(el, 0.0) + n * multiplier
    if closing is not None:
        raise CompositionError(f"{text!r}: a bracket is not closed")
    return amounts, k


def read_composition_table(path: str | os.PathLike) -> dict[str, str]:
    """Read a composition table: a CSV file with the columns ``file`` and ``composition``.

    Returns
    -------
    dict
        File name as written in the table → formula text (not parsed here, so that one bad
        formula costs only its file; :func:`composition_for` parses it).

    Raises
    ------
    CompositionError
        The table cannot be read, lacks one of the two columns, or names a file twice with two
        different formulas.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            if "file" not in columns or "composition" not in columns:
                raise CompositionError(f"{path}: a composition table needs the columns 'file' and 'composition' "
                                       f"(found {', '.join(columns) or 'none'})")
            table: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                row = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                name, formula = row.get("file", ""), row.get("composition", "")
                if not name:
                    continue
                if name in table and table[name] != formula:
                    raise CompositionError(f"{path}, line {line}: {name} is listed twice with different compositions")
                table[name] = formula
    except OSError as exc:
        raise CompositionError(f"{path}: cannot read the composition table ({exc.strerror or exc})") from None
    return table


def _table_entry(table: dict[str, str], path: str) -> str | None:
    """The table's formula for ``path``: matched by the name as given, else by base name."""
    if path in table:
        return table[path]
    normalised = os.path.normpath(path)
    for name, formula in table.items():
        if os.path.normpath(name) == normalised:
            return formula
    base = os.path.basename(path)
    for name, formula in table.items():
        if os.path.basename(name) == base:
            return formula
    return None


def composition_for(path: str, *, table: dict[str, str] | None = None, option: str | None = None,
                    header: str | None = None) -> Composition | None:
    """The composition to use for one file, from the first source that has one.

    Precedence: the composition table (``--compositions``; a file matches by its name as given
    or by its base name), then ``--composition`` (every file), then the file's header. An empty
    entry in the table means "not known" and falls through to the next source.

    Parameters
    ----------
    path : str
        The file, as the user named it.
    table : dict, optional
        From :func:`read_composition_table`.
    option : str, optional
        The formula given for every file.
    header : str, optional
        The header's composition text.

    Returns
    -------
    Composition or None
        None when no source gives one.

    Raises
    ------
    CompositionError
        The chosen source's formula does not parse; the message names the file and the source.
    """
    found = _table_entry(table, str(path)) if table else None
    for source, text in (("table", found), ("option", option), ("header", header)):
        if text is None or not str(text).strip():
            continue
        try:
            return Composition.parse(str(text), source=source)
        except CompositionError as exc:
            raise CompositionError(f"{path}: the composition from {SOURCES[source]} cannot be read: {exc}") from None
    return None

