"""File headers of measured PDFs: one reader for every command (``scan``, ``plot``, ``refine``,
``identify``).

The lines before a file's data block (:attr:`sgmine.gr.Curve.header_lines`) are read as the
program that wrote them writes them:

- **PDFgetX3 / xPDFsuite** (and rapdfgetx): one ``key = value`` a line, INI-style ``[section]``
  lines, ``#`` comments.
- **PDFgetX2**: several ``key=value`` words on a line, after a section title and before a
  parenthesised note (``## S(q)  qmin=0.01    qmax=26.0``, ``datatype=1    (0:SPEC, 1:CHI)``),
  and the element table ``#L symbol valence fractions z ...``.
- **PDFgetN**: the same ``key=value`` words in ``##### Run Information     runCorrection=T``
  blocks (``temp=15     runTitle=LSCO (x=0.00)``), and the element table
  ``Element relAtomNum atomMass ...``.
- **RMCProfile** (and Gudrun): a line with the number of points and a title line
  (:func:`sgmine.rmcprofile.is_rmcprofile`).

:func:`parse_entries` gives the header's entries under clean keys (the word before ``=``, never
a section title: ``runCorrection``, not ``Run Information     runCorrection``), values as float
where they are numbers, the first occurrence of a key kept. :class:`Header` adds typed
accessors (:attr:`~Header.qmax`, :attr:`~Header.qdamp`, :attr:`~Header.radiation`,
:attr:`~Header.temperature`, :attr:`~Header.composition`, :attr:`~Header.program`). The
composition is the header's text (a ``composition`` entry, or an element table written as
``Sr1 Ti1 O3``) and where it came from; :mod:`sgmine.composition` parses it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sgmine.rmcprofile import is_rmcprofile

#: Names under which headers record the same quantity; looking one up finds the others
#: (PDFgetN writes ``temp``, PDFgetX2 ``temperature``).
SYNONYMS = (("temperature", "temp"),)
#: Header entries that name the radiation (xPDFsuite and PDFgetX3 ``mode``, PDFgui ``stype``).
RADIATION_KEYS = ("mode", "stype", "radiation")

#: Header text (lower case) that marks each reduction program, checked in this order.
PROGRAM_MARKS = (
    ("xPDFsuite", ("xpdfsuite",)),
    ("PDFgetN", ("pdfgetn", "atomcohercs", "##### vanadium", "##### run information")),
    ("PDFgetX2", ("get_xpdf", "pdfgetx2", "title=x-ray pdf", "## x-ray")),
)
#: The radiation each program's files are measured with (where the header has no ``mode``).
PROGRAM_RADIATION = {"PDFgetN": "neutron", "PDFgetX2": "xray", "PDFgetX3": "xray", "xPDFsuite": "xray"}

#: Element tables: the line that starts one, the program, and the column holding the amount.
ELEMENT_TABLES = (("Element", "relAtomNum", "PDFgetN"), ("#L symbol", "fractions", "PDFgetX2"))

_KEY = re.compile(r"(?:^|(?<=[\s#]))([A-Za-z_][\w.]*)$")
_WORD = re.compile(r"[A-Za-z_][\w.]*=\S*")
_FIELDS = re.compile(r"\s{2,}|\t")
_NOTE = re.compile(r"\s{2,}\(.*\)$")
_SYMBOL = re.compile(r"[A-Z][a-z]?")


@dataclass(frozen=True)
class HeaderComposition:
    """The sample's composition as a header records it.

    Attributes
    ----------
    text : str
        The formula text (``Ir0.80Rh0.20Te2``; an element table as ``Sr1 Ti1 O3``, or as the
        element symbols ``C H O N`` where it gives no amounts); not parsed here
        (:func:`sgmine.composition.parse_formula` does).
    source : str
        Where it came from: ``"composition entry"``, ``"PDFgetN element table"`` or
        ``"PDFgetX2 element table"``.
    """

    text: str
    source: str


def clean_key(key: Any) -> str:
    """A header key without comment marks and surrounding blanks (``# qmax`` → ``qmax``)."""
    return str(key).lstrip("#").strip()


def clean_header(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Header keys without comment marks (``# qmax`` → ``qmax``); the first occurrence wins."""
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        name = clean_key(key)
        if name and name not in cleaned:
            cleaned[name] = value
    return cleaned


def header_value(metadata: Mapping[str, Any], name: str) -> Any:
    """Look up a header entry by name, ignoring case and leading ``#``/spaces in the keys.

    Parameters
    ----------
    metadata : mapping
        Header entries (:attr:`sgmine.gr.Curve.metadata`).
    name : str
        The entry's name; a name of :data:`SYNONYMS` also finds its synonyms
        (``temperature`` finds PDFgetN's ``temp``).

    Returns
    -------
    object
        The value, or None when the header has no such entry.
    """
    wanted = name.strip().lower()
    names = next((group for group in SYNONYMS if wanted in group), (wanted,))
    found = {clean_key(key).lower(): value for key, value in reversed(list(metadata.items()))}
    for candidate in (wanted, *names):
        if candidate in found:
            return found[candidate]
    return None


def parse_entries(lines: Sequence[str]) -> dict[str, Any]:
    """The ``key = value`` entries of header ``lines`` (see the module text), under clean keys.

    Parameters
    ----------
    lines : sequence of str
        The lines before the data block.

    Returns
    -------
    dict
        Key → value (float where the value is a number, else the text without a trailing
        parenthesised note); the first occurrence of a key wins, empty values are left out. An
        RMCProfile header gives ``points`` and ``title``.
    """
    if is_rmcprofile(lines):
        count, title = (line.strip() for line in lines if line.strip())
        return {"points": float(count), "title": title}
    entries: dict[str, Any] = {}
    for line in lines:
        for key, value in _line_entries(line):
            entries.setdefault(key, value)
    return entries


def _line_entries(line: str) -> list[tuple[str, Any]]:
    """``(key, value)`` pairs of one header line."""
    text = line.strip()
    if "=" not in text:
        return []
    fields = [text] if text.count("=") == 1 else _FIELDS.split(text)
    pairs = []
    for part in fields:
        words = part.split()
        pieces = words if part.count("=") > 1 and all(_WORD.fullmatch(w) for w in words) else [part]
        for piece in pieces:
            pair = _entry(piece)
            if pair is not None:
                pairs.append(pair)
    return pairs


def _entry(text: str) -> tuple[str, Any] | None:
    """``key=value`` of one field: the key is the word just before the first ``=``."""
    left, sep, right = text.partition("=")
    key = _KEY.search(left.rstrip())
    value = _NOTE.sub("", right.strip())
    if not sep or key is None or not value:
        return None
    try:
        return key.group(1), float(value)
    except ValueError:
        return key.group(1), value


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Header:
    """A file's header: its entries and the lines they came from, with typed accessors.

    Parameters
    ----------
    entries : mapping
        Key → value (:func:`parse_entries`, or :attr:`sgmine.gr.Curve.metadata` as a command
        has set it).
    lines : sequence of str
        The header lines (for the element tables and the program's marks).
    """

    entries: Mapping[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()

    @classmethod
    def parse(cls, lines: Sequence[str]) -> Header:
        """The header of ``lines`` (the lines before a file's data block)."""
        lines = tuple(lines)
        return cls(entries=parse_entries(lines), lines=lines)

    def get(self, name: str) -> Any:
        """The entry ``name`` (any case; synonyms too: :func:`header_value`), or None."""
        return header_value(self.entries, name)

    @property
    def program(self) -> str | None:
        """The program that wrote the header: ``"xPDFsuite"``, ``"PDFgetX3"``, ``"PDFgetX2"``,
        ``"PDFgetN"``, ``"RMCProfile"``, or None when it does not show."""
        if is_rmcprofile(self.lines):
            return "RMCProfile"
        text = "\n".join(self.lines).lower()
        for name, marks in PROGRAM_MARKS:
            if any(mark in text for mark in marks):
                return name
        if "pdfgetx" in str(self.get("version") or "").lower() or self.get("outputtype") is not None:
            return "PDFgetX3"
        return None

    @property
    def qmax(self) -> float | None:
        """Qmax (Å⁻¹) of the transform, where the header gives a positive one."""
        value = _number(self.get("qmax"))
        return value if value is not None and value > 0 else None

    @property
    def qdamp(self) -> float | None:
        """Qdamp (Å⁻¹), where the header gives one (PDFgui), else None."""
        value = _number(self.get("qdamp"))
        return value if value is not None and value >= 0 else None

    @property
    def temperature(self) -> float | None:
        """The sample temperature (K) as the header records it (``temperature``, ``temp``)."""
        return _number(self.get("temperature"))

    @property
    def radiation(self) -> str | None:
        """``"neutron"`` or ``"xray"`` where the header says which: its ``mode``, ``stype`` or
        ``radiation`` entry (a value starting with ``n`` is neutron), else the program that wrote
        it (:data:`PROGRAM_RADIATION`); None when it does not say."""
        for name in RADIATION_KEYS:
            value = str(self.get(name) or "").strip().lower()
            if value:
                return "neutron" if value.startswith("n") else "xray"
        return PROGRAM_RADIATION.get(self.program or "")

    @property
    def composition(self) -> HeaderComposition | None:
        """The first of :attr:`compositions`, or None."""
        found = self.compositions
        return found[0] if found else None

    @property
    def compositions(self) -> tuple[HeaderComposition, ...]:
        """Every composition the header records: its ``composition`` entry, then its element
        tables (PDFgetN, PDFgetX2)."""
        found = []
        text = str(self.get("composition") or "").strip()
        if text:
            found.append(HeaderComposition(text, "composition entry"))
        table = element_table(self.lines)
        if table is not None:
            found.append(table)
        return tuple(found)


def element_table(lines: Sequence[str]) -> HeaderComposition | None:
    """The element table of a PDFgetN (``Element relAtomNum ...``) or PDFgetX2 (``#L symbol
    valence fractions ...``) header as a formula text: the elements with a positive amount and
    their amounts (``Sr1 Ti1 O3``), or the element symbols where no amount is positive; None
    when the lines hold no such table."""
    for k, line in enumerate(lines):
        for start, column, program in ELEMENT_TABLES:
            words = line.split()
            if not line.lstrip().startswith(start) or column not in words:
                continue
            amount = words.index(column) - (words[0] == "#L")  # the rows have no "#L" cell
            rows = _table_rows(lines[k + 1:], amount)
            if rows:
                positive = [f"{symbol}{n:g}" for symbol, n in rows if n > 0]
                text = " ".join(positive or [symbol for symbol, _ in rows])
                return HeaderComposition(text, f"{program} element table")
    return None


def _table_rows(lines: Sequence[str], amount: int) -> list[tuple[str, float]]:
    """``(symbol, amount)`` of the rows of an element table, up to the first line that is not one."""
    rows = []
    for line in lines:
        cells = line.split()
        value = _number(cells[amount]) if len(cells) > amount else None
        if not cells or not _SYMBOL.fullmatch(cells[0]) or value is None:
            break
        rows.append((cells[0], value))
    return rows
