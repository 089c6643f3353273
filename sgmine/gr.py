"""Reading measured PDFs: .gr files from PDFgetX3, xPDFsuite, PDFgetX2, or plain column text.

Files are read with diffpy.utils (``diffpy.utils.parsers.load_data``): the data block is the
first block of numeric rows, its first two columns are r (Å) and G(r); ``key = value`` lines
before it are kept as header metadata (``qmax``, ``composition``, ``mode``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class ReadError(ValueError):
    """A file that cannot be read as a PDF; the message names the file and the problem."""


@dataclass
class Curve:
    """A measured (or simulated) G(r) with the header metadata its file carried."""

    r: np.ndarray
    g: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def qmax(self) -> float | None:
        """Qmax from the header (``qmax`` in any case), if the file recorded it."""
        value = header_value(self.metadata, "qmax")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None


def header_value(metadata: dict[str, Any], name: str) -> Any:
    """Look up a header entry by name, ignoring case and leading ``#``/spaces in the keys."""
    wanted = name.lower()
    for key, value in metadata.items():
        if str(key).lstrip("#").strip().lower() == wanted:
            return value
    return None


def _clean_header(raw: dict[str, Any]) -> dict[str, Any]:
    """Header keys without comment marks (``# qmax`` → ``qmax``); first occurrence wins."""
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).lstrip("#").strip()
        if name and name not in cleaned:
            cleaned[name] = value
    return cleaned


def read_gr(path: str | Path) -> Curve:
    """Read a PDF file into a :class:`Curve` (r and G as float64 arrays, header metadata).

    Raises :class:`ReadError` with a message naming the file for anything that is not a
    readable two-or-more-column numeric file.
    """
    from diffpy.utils.parsers import load_data

    path = Path(path)
    if path.is_dir():
        raise ReadError(f"{path}: is a directory, not a file")
    if not path.exists():
        raise ReadError(f"{path}: no such file")
    try:
        header = load_data(path, headers=True)
        data = load_data(path, minrows=2, ndmin=2)
    except UnicodeDecodeError as exc:
        raise ReadError(f"{path}: not a text file (undecodable byte at position {exc.start})") from exc
    except PermissionError as exc:
        raise ReadError(f"{path}: permission denied") from exc
    except (OSError, ValueError) as exc:
        raise ReadError(f"{path}: cannot read data ({_one_line(exc)})") from exc
    data = np.asarray(data, dtype=np.float64)
    if data.size == 0:
        raise ReadError(f"{path}: no block of numeric data found")
    if data.shape[1] < 2:
        raise ReadError(f"{path}: data has {data.shape[1]} column; need r and G(r) (at least 2 columns)")
    return Curve(r=data[:, 0].copy(), g=data[:, 1].copy(), metadata=_clean_header(header), source=str(path))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
