"""Reading measured PDFs: .gr files from PDFgetX3, xPDFsuite, PDFgetX2, or plain column text.

The layout follows diffpy.utils (``diffpy.utils.parsers.load_data``): the data block is the
first run of lines holding the same number of numbers (at least ``MIN_BLOCK_ROWS`` of them,
or up to the end of the file); its first two columns are r (Å) and G(r). The lines before it
are the header: :attr:`Curve.header_lines` as written, :attr:`Curve.metadata` their entries
under clean keys (``qmax``, ``composition``, ``mode``, ``temp``, ...; PDFgetX3, xPDFsuite,
PDFgetX2, PDFgetN and RMCProfile headers alike: :mod:`sgmine.header`), values converted to
float where they are numbers, and :attr:`Curve.header` their typed reading (Qmax, radiation,
temperature, composition).

:func:`read_gr` reads a file once and parses the data block with numpy's C text parser, so it
is faster than ``load_data`` (which reads a file twice, the header line by line) while giving
identical arrays on the files both read, and the same metadata on ``key = value`` headers
(``load_data`` garbles PDFgetN's and PDFgetX2's); ``tests/test_gr.py`` checks that on every
real file in the repository. It also reads what ``load_data`` rejects but a scientist
would call a PDF file: comma- or semicolon-separated columns, CRLF or CR line ends, a UTF-8
byte order mark, a Latin-1 header, UTF-16 text with a byte order mark. Anything else it cannot
make sense of goes to ``load_data`` before giving up. Problems come back as :class:`ReadError` naming the file.

With ``r_range`` (as ``sgmine scan`` reads), the rows around that range are found by bisection
on r over the file's characters and only they are parsed; the result is the same as a full
read cut to the range (tested on every real file and on generated ones).
"""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# header_value: also importable from here, its former home
from sgmine.header import Header, clean_header, header_value, parse_entries  # noqa: F401

#: A data block is this many consecutive numeric rows (as diffpy.utils' ``minrows``).
MIN_BLOCK_ROWS = 10
#: Files larger than this are refused (a PDF file is rarely more than a few MB).
MAX_BYTES = 512 * 2**20
#: A line longer than this is not a data row (a PDF row is r, G and a few more columns); a
#: file of one enormous line would otherwise cost seconds and gigabytes to split into numbers.
MAX_ROW_CHARS = 10_000

_SEPARATORS = re.compile(r"[\s,;]+")
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1f\x7f]")
#: A row like ``1,5000  0,2346``: numbers with decimal commas, separated by blanks.
_DECIMAL_COMMAS = re.compile(r"\s*[-+]?\d+,\d+(?:[eE][-+]?\d+)?(?:[ \t]+[-+]?\d+,\d+(?:[eE][-+]?\d+)?)+\s*")


class ReadError(ValueError):
    """A file that cannot be read as a PDF; the message names the file and the problem."""


@dataclass
class Curve:
    """A measured (or simulated) G(r) with the header metadata its file carried."""

    r: np.ndarray
    g: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    #: The lines before the data block (column labels, an RMCProfile point count, ...).
    header_lines: tuple[str, ...] = ()
    #: The file's whole r-range when ``r`` holds only the rows around a window (``r_range``).
    span: tuple[float, float] | None = None

    @property
    def r_span(self) -> tuple[float, float]:
        """The lowest and highest r of the file (not only of the rows read), Å."""
        if self.span is not None:
            return self.span
        finite = self.r[np.isfinite(self.r)]
        return (float(finite.min()), float(finite.max())) if finite.size else (float("nan"), float("nan"))

    @property
    def header(self) -> Header:
        """The header (:class:`sgmine.header.Header`: typed Qmax, Qdamp, radiation, temperature,
        composition) of :attr:`metadata` as it now is and :attr:`header_lines`."""
        return Header(entries=self.metadata, lines=tuple(self.header_lines))

    @property
    def qmax(self) -> float | None:
        """Qmax from the header (:attr:`sgmine.header.Header.qmax`), if the file recorded it."""
        return self.header.qmax


def read_gr(path: str | os.PathLike, r_range: tuple[float, float] | None = None) -> Curve:
    """Read a PDF file into a :class:`Curve` (r and G as float64 arrays, header metadata).

    Rows after the data block that do not fit it (for example a last line cut short while the
    file is still being written) are ignored with a warning in ``Curve.warnings``. Raises
    :class:`ReadError` with a message naming the file for anything that is not a readable
    numeric file of at least two columns.

    With ``r_range=(rmin, rmax)`` only the rows from two below ``rmin`` to two above ``rmax``
    are parsed (found by bisection on r), which is all that resampling onto a grid over that
    range uses; a file whose r is not increasing is parsed whole.
    """
    path = Path(path)
    raw = _read_bytes(path)
    text, warnings = _decode(raw, path)
    if r_range is not None:
        curve = _read_window(text, path, r_range)
        if curve is not None:
            curve.warnings = warnings
            return curve
    lines = text.splitlines()
    found = _find_block(lines)
    if found is None:
        longest = max(map(len, lines), default=0)
        hint = f" (a line of {longest} characters is not a data row)" if longest > MAX_ROW_CHARS else ""
        raise ReadError(f"{path}: no block of numeric data found{hint}")
    start, ncols = found
    if _DECIMAL_COMMAS.fullmatch(lines[start]):
        raise ReadError(
            f"{path}: numbers are written with decimal commas ({lines[start].strip()[:40]!r}); "
            "sgmine reads decimal points only"
        )
    header = parse_entries(lines[:start])
    try:
        data, end = _parse_block(lines, start, ncols)
    except ValueError as exc:  # rows that Python's float() takes but numpy's parser does not
        return _read_with_diffpy(path, reason=str(exc))
    trailing = sum(1 for line in lines[end:] if line.strip() and not line.lstrip().startswith("#"))
    if trailing:
        warnings.append(
            f"ignored {trailing} line{'s' if trailing > 1 else ''} after the data block "
            f"(from line {end + 1}; file cut short or still being written?)"
        )
    if ncols < 2:
        raise ReadError(f"{path}: data have 1 column; need r and G(r) (at least 2 columns)")
    if len(data) < 2:
        raise ReadError(f"{path}: only {len(data)} data row; need a curve of many (r, G) rows")
    return Curve(r=data[:, 0].copy(), g=data[:, 1].copy(), metadata=header, source=str(path), warnings=warnings,
                 header_lines=tuple(lines[:start]))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, after checks that name the problem (missing, directory, loop, size...)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ReadError(f"{path}: no such file" + (" (broken symbolic link)" if path.is_symlink() else "")) from None
    except PermissionError:
        raise ReadError(f"{path}: permission denied") from None
    except OSError as exc:  # ELOOP for symlink loops, ENAMETOOLONG, ...
        raise ReadError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ReadError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ReadError(f"{path}: not a regular file (device, pipe or socket)")
    if info.st_size > MAX_BYTES:
        raise ReadError(
            f"{path}: file is {info.st_size / 2**20:.0f} MiB, larger than the {MAX_BYTES // 2**20} MiB "
            "a PDF file can reasonably be"
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(info.st_size + 1)  # one byte more shows a file that grew (asking for
            # MAX_BYTES would make Python allocate that much for every file)
    except PermissionError:
        raise ReadError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) != info.st_size:
        raise ReadError(f"{path}: file changed size while being read (still being written?)")
    if raw.startswith(GZIP_MAGIC):
        raw = _gunzip(raw, path)
    return raw


#: The first bytes of a gzip file.
GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(raw: bytes, path: Path) -> bytes:
    """The text inside a gzip-compressed file (``Ni.gr.gz``), refused when it is not whole or too large."""
    import gzip
    import zlib

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            text = handle.read(MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ReadError(f"{path}: gzip-compressed file that cannot be decompressed ({exc})") from None
    if len(text) > MAX_BYTES:
        raise ReadError(f"{path}: gzip-compressed file holds more than {MAX_BYTES // 2**20} MiB")
    return text


def _decode(raw: bytes, path: Path) -> tuple[str, list[str]]:
    """Text of the file: UTF-8 (a byte order mark is dropped), UTF-16 with a byte order mark,
    else Latin-1 with a warning."""
    if not raw.strip():
        raise ReadError(f"{path}: file is empty")
    warnings: list[str] = []
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # "Unicode" as Windows Notepad saves it
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            raise ReadError(f"{path}: binary file, not text (starts like UTF-16 but is not)") from None
    elif b"\x00" in raw:
        raise ReadError(f"{path}: binary file, not text")
    else:
        text = _utf8_or_latin1(raw, warnings)
    if "\x00" in text or len(_CONTROL.findall(text, 0, 4096)) > 8:
        raise ReadError(f"{path}: binary file, not text")
    return text, warnings


def _utf8_or_latin1(raw: bytes, warnings: list[str]) -> str:
    """UTF-8 text (a byte order mark dropped), else Latin-1 with a warning added to ``warnings``."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append("file is not UTF-8; read it as Latin-1")
        return raw.decode("latin-1")


def _numbers(line: str) -> int:
    """How many numbers ``line`` holds if it holds only numbers, else 0 (also for a line
    longer than ``MAX_ROW_CHARS``)."""
    if len(line) > MAX_ROW_CHARS:
        return 0
    tokens = _SEPARATORS.split(line.strip())
    if not tokens or tokens == [""]:
        return 0
    try:
        for token in tokens:
            float(token)
    except ValueError:
        return 0
    return len(tokens)


def _find_block(lines: list[str]) -> tuple[int, int] | None:
    """Index of the first line of the data block and its column count (diffpy.utils' rule)."""
    start, ncols, rows = None, 0, 0
    for index, line in enumerate(lines):
        n = _numbers(line)
        if n == 0:
            start = None
            continue
        if start is None or n != ncols:
            start, ncols, rows = index, n, 0
        rows += 1
        if rows >= MIN_BLOCK_ROWS:
            break
    return None if start is None else (start, ncols)


def _parse_block(lines: list[str], start: int, ncols: int) -> tuple[np.ndarray, int]:
    """Parse the block from ``start`` with numpy; returns the data and the first line after it.

    Raises ``ValueError`` when numpy cannot parse lines that looked numeric.
    """
    block = lines[start:]
    sep = _separator(block[0])
    try:
        return _loadtxt(block, sep, ncols), len(lines)
    except ValueError:
        pass
    # Something after the block does not fit it: find where the block ends, parse up to there.
    end = start
    while end < len(lines) and (_numbers(lines[end]) >= ncols or lines[end].lstrip().startswith("#")):
        end += 1
    return _loadtxt(lines[start:end], sep, ncols), end


def _loadtxt(lines: list[str], sep: str | None, ncols: int) -> np.ndarray:
    """numpy's parser on data lines; extra columns on some lines are ignored, as diffpy.utils does."""
    return np.loadtxt(lines, delimiter=sep, comments="#", ndmin=2, usecols=range(ncols), dtype=np.float64)


def _first_number(line: str) -> float | None:
    try:
        return float(_SEPARATORS.split(line.strip(), maxsplit=1)[0])
    except ValueError:
        return None


#: Characters other than "\n" at which ``str.splitlines`` ends a line; a file holding any of
#: them is read by the general path, which splits the whole file into lines.
_OTHER_LINE_ENDS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
#: Characters of the file first searched for the data block (then 4x more, up to the whole file).
_HEAD_CHARS = 4096


def _head_block(text: str) -> tuple[list[str], int, int] | None:
    """``(head lines, first row of the data block, its number of columns)`` from the first
    :data:`_HEAD_CHARS` characters of ``text``, then 4x more at a time until the block is
    confirmed by :data:`MIN_BLOCK_ROWS` rows inside the head; None when the whole text has none."""
    size = _HEAD_CHARS
    while True:
        head = text[:size].split("\n")
        if size < len(text):
            head.pop()  # cut part-way through a line
        found = _find_block(head)
        if found is not None and found[0] + MIN_BLOCK_ROWS > len(head):
            found = None  # a block not yet confirmed by enough rows inside the head
        if found is not None:
            return head, found[0], found[1]
        if size >= len(text):
            return None
        size *= 4


def _read_window(text: str, path: Path, r_range: tuple[float, float]) -> Curve | None:
    """The rows of the data block from two below ``r_range[0]`` to two above ``r_range[1]``,
    found by bisection on r over character offsets, so that neither the whole file is split
    into lines nor the rows outside the window are parsed.

    Returns None whenever the general path must decide (odd line ends, no clear data block
    near the top, r not plainly increasing, an unparsable row, a last row cut short); that
    path then reads the file and reports any problem.
    """
    if any(mark in text for mark in _OTHER_LINE_ENDS):
        return None
    found = _head_block(text)
    if found is None:
        return None
    head, start, ncols = found
    if ncols < 2 or _DECIMAL_COMMAS.fullmatch(head[start]):
        return None
    block = sum(len(line) + 1 for line in head[:start])  # offset of the block's first row
    body_end = len(text.rstrip())
    last = text.rfind("\n", block, body_end) + 1 or block  # offset of the last row
    if body_end <= block or _numbers(text[last:body_end]) < ncols:  # a last row cut short: the full parse reports it
        return None
    probes: dict[int, float] = {}

    def r_at(offset: int) -> float:
        if offset not in probes:
            end = text.find("\n", offset, body_end)
            value = _first_number(text[offset : end if end >= 0 else body_end])
            if value is None:
                raise ValueError(offset)
            probes[offset] = value
        return probes[offset]

    def first_line(predicate) -> int:
        """Offset of the first row whose r satisfies ``predicate`` (``body_end`` if none)."""
        lo, hi = block, body_end
        while lo < hi:
            mid = (lo + hi) // 2
            line_start = text.rfind("\n", block, mid) + 1 or block
            line_end = text.find("\n", mid, body_end)
            if predicate(r_at(line_start)):
                hi = line_start
            else:
                lo = body_end if line_end < 0 else line_end + 1
        return lo

    try:
        r_at(block), r_at(last)
        lo = first_line(lambda r: r >= r_range[0])
        hi = first_line(lambda r: r > r_range[1])
    except ValueError:
        return None
    ordered = [probes[offset] for offset in sorted(probes)]
    if any(b <= a for a, b in zip(ordered, ordered[1:])):
        return None
    for _ in range(2):  # two rows either side, as the spline needs points beyond the range
        if lo > block:
            lo = text.rfind("\n", block, lo - 1) + 1 or block
        if hi < body_end:
            nxt = text.find("\n", hi, body_end)
            hi = body_end if nxt < 0 else nxt + 1
    sep = _separator(head[start])
    before = text[block:lo].split("\n")[:-1]  # the rows between the block's start and the window
    try:
        # they must all be data rows, or the general path ends the block before the window
        if before and len(_loadtxt(before, sep, ncols)) != len(before):
            return None
        data = _loadtxt(text[lo:hi].split("\n"), sep, ncols)
    except ValueError:
        return None
    if len(data) < 2 or np.any(np.diff(data[:, 0]) <= 0) or not np.isfinite(data[:, 0]).all():
        return None
    header = parse_entries(head[:start])
    return Curve(r=data[:, 0].copy(), g=data[:, 1].copy(), metadata=header, source=str(path),
                 header_lines=tuple(head[:start]), span=(probes[block], probes[last]))


def _separator(line: str) -> str | None:
    """numpy delimiter for a data line: ``None`` (whitespace), ``','`` or ``';'``."""
    for sep in (",", ";"):
        if sep in line:
            return sep
    return None


def _read_with_diffpy(path: Path, reason: str) -> Curve:
    """Last resort for a data block numpy could not parse: diffpy.utils' ``load_data``."""
    from diffpy.utils.parsers import load_data

    try:
        header = load_data(path, headers=True)
        data = np.asarray(load_data(path, minrows=2, ndmin=2), dtype=np.float64)
    except UnicodeDecodeError:
        raise ReadError(f"{path}: not a text file") from None
    except (OSError, ValueError) as exc:
        raise ReadError(f"{path}: cannot parse the data block ({_one_line(ValueError(reason))})") from exc
    if data.size == 0:
        raise ReadError(f"{path}: no block of numeric data found")
    if data.shape[1] < 2:
        raise ReadError(f"{path}: data have 1 column; need r and G(r) (at least 2 columns)")
    return Curve(r=data[:, 0].copy(), g=data[:, 1].copy(), metadata=clean_header(header), source=str(path))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
