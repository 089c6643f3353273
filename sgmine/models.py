"""The models shipped inside the package, by name, and how ``--model`` / ``model=`` is resolved.

The registry is the package's data folder (:data:`DATA_DIR`), read when asked: every ``.onnx``
file there is a shipped model named by its file stem (``sg45.onnx`` is ``sg45``), except
``model.onnx``, the original default file, which is named :data:`DEFAULT_NAME` (``sg8``).
INT8 copies (``<stem>.int8.onnx``, :func:`sgmine.model.int8_model_path`) belong to their
float32 model and are not names of their own. A model's card is the ``.md`` file beside it
with the same stem (``MODEL_CARD.md`` for ``model.onnx``). If both ``model.onnx`` and
``sg8.onnx`` exist, ``model.onnx`` is ``sg8``.

Nothing about a model (classes, grid, version, description) is written here: it is read from
each file's metadata (:class:`sgmine.model.ModelInfo`, :func:`sgmine.model.read_model_info`).
:func:`read_metadata` reads only the metadata of an ONNX file, skipping the graph, so listing
the shipped models loads none of them. This module imports nothing of sgmine's (nor numpy or
onnxruntime): :mod:`sgmine.model` builds on it, never the other way round.

:func:`resolve_model` is the one place where a model argument becomes a file: the CLI's
``--model``, :class:`sgmine.model.Model` and ``sgmine.predict(..., model=...)`` all go through it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: Where the shipped models live (read at call time, so tests can point it elsewhere).
DATA_DIR = Path(__file__).parent / "data"
#: The model used when none is named.
DEFAULT_NAME = "sg8"
#: The default model's file name in :data:`DATA_DIR` (kept from before models had names).
DEFAULT_FILE = "model.onnx"
#: The card of :data:`DEFAULT_FILE`; any other model's card is ``<stem>.md``.
DEFAULT_CARD = "MODEL_CARD.md"
#: An INT8 copy of ``<stem>.onnx`` is ``<stem>.int8.onnx`` (:func:`sgmine.model.int8_model_path`).
INT8_SUFFIX = ".int8.onnx"


@dataclass(frozen=True)
class ShippedModel:
    """A model file in the package's data folder."""

    name: str
    path: Path
    card: Path | None
    default: bool

    @property
    def size(self) -> int:
        """File size in bytes."""
        return self.path.stat().st_size


def shipped_models() -> dict[str, ShippedModel]:
    """The shipped models by name, the default first, then by name (files are listed, not read)."""
    folder = Path(DATA_DIR)
    found: dict[str, ShippedModel] = {}
    try:
        files = sorted(folder.glob("*.onnx"), key=lambda p: (p.name != DEFAULT_FILE, p.name))
    except OSError:
        return {}
    for path in files:
        if path.name.endswith(INT8_SUFFIX) or not path.is_file():
            continue
        name = DEFAULT_NAME if path.name == DEFAULT_FILE else path.stem
        if name in found:  # sg8.onnx beside model.onnx: model.onnx is sg8
            continue
        card = path.with_name(DEFAULT_CARD if path.name == DEFAULT_FILE else path.stem + ".md")
        found[name] = ShippedModel(name, path, card if card.is_file() else None, name == DEFAULT_NAME)
    return dict(sorted(found.items(), key=lambda item: (not item[1].default, item[0])))


def default_model_path() -> Path:
    """The default shipped model's file (which may be missing from an install)."""
    shipped = shipped_models().get(DEFAULT_NAME)
    return shipped.path if shipped is not None else Path(DATA_DIR) / DEFAULT_FILE


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """The file a model argument names: None → the default model; a shipped model's name
    (exactly, e.g. ``"sg45"``) → its file in the package; anything else → that path (which
    may not exist: :func:`unknown_model_message` says so)."""
    if model is None:
        return default_model_path()
    text = os.fspath(model)
    shipped = shipped_models().get(text) if isinstance(text, str) else None
    return shipped.path if shipped is not None else Path(text)


def shipped_name(path: str | os.PathLike[str]) -> str | None:
    """The name of the shipped model whose file is ``path``, else None."""
    path = Path(path)
    for shipped in shipped_models().values():
        try:
            if path.samefile(shipped.path):
                return shipped.name
        except OSError:
            continue
    return None


def unknown_model_message(model: str | os.PathLike[str]) -> str:
    """One line for a model argument that is neither an existing file nor a shipped name."""
    names = ", ".join(shipped_models()) or "none in this install"
    return (f"model file {os.fspath(model)} does not exist, and it is not the name of a shipped model "
            f"({names}; see `sgmine models`)")


def format_listing(entries: list[dict[str, object]]) -> str:
    """``sgmine models``'s text: a block per model (name, version, classes, size, space groups,
    description, file, card)."""
    import textwrap

    if not entries:
        return f"no models are shipped with this install (none in {DATA_DIR})\n"
    blocks = []
    for e in entries:
        default = " (default)" if e["default"] else ""
        size = f"{e['size_bytes'] / 2**20:.1f} MiB" if e.get("size_bytes") is not None else "size unknown"
        if "error" in e:
            blocks.append(f"{e['name']}{default}  {size}\n  error: {e['error']}\n  file: {e['path']}")
            continue
        # "\0" keeps a symbol and its number on one line; wrapping breaks only between groups
        groups = ", ".join(f"{g['symbol']}\0({g['number']})" for g in e["space_groups"])  # type: ignore[index,union-attr]
        lines = [
            f"{e['name']}{default}  version {e['version']}, {e['n_classes']} space groups, {size}",
            textwrap.fill(groups, 100, initial_indent="  space groups: ", subsequent_indent="    ",
                          break_on_hyphens=False, break_long_words=False).replace("\0", " "),
            textwrap.fill(str(e["description"] or "(not recorded)"), 100, initial_indent="  description: ",
                          subsequent_indent="    "),
            f"  file: {e['path']}",
        ]
        if e["card"]:
            lines.append(f"  card: {e['card']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# --- metadata without the graph ----------------------------------------------------------
# ONNX files are a protobuf ``ModelProto``; its ``metadata_props`` (field 14) are
# ``StringStringEntryProto`` messages (key = field 1, value = field 2). Every other field,
# the graph above all, is skipped by its length without being read.
_METADATA_PROPS = 14
_MAX_VARINT_BYTES = 10


class MetadataError(ValueError):
    """A file that is not a readable ONNX protobuf."""


def _varint(read: BinaryIO) -> int | None:
    """The next varint of ``read``, None at the end of the stream (before its first byte)."""
    value = shift = 0
    for i in range(_MAX_VARINT_BYTES):
        byte = read.read(1)
        if not byte:
            if i == 0:
                return None
            raise MetadataError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    raise MetadataError("varint longer than 10 bytes")


def _entry(data: bytes) -> tuple[str, str]:
    """Key and value of one ``StringStringEntryProto``."""
    stream, parts = io.BytesIO(data), {1: "", 2: ""}
    while (tag := _varint(stream)) is not None:
        field, wire = tag >> 3, tag & 7
        if wire == 2:
            length = _varint(stream)
            chunk = stream.read(length or 0)
            if length is None or len(chunk) != length:
                raise MetadataError("truncated metadata entry")
            if field in parts:
                parts[field] = chunk.decode("utf-8")
        elif wire == 0:
            _varint(stream)
        else:
            raise MetadataError(f"unexpected wire type {wire} in a metadata entry")
    return parts[1], parts[2]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of ONNX file ``path`` (as onnxruntime's ``custom_metadata_map``),
    read without loading the graph. ``MetadataError`` when the file is not an ONNX protobuf;
    ``OSError`` when it cannot be read."""
    meta: dict[str, str] = {}
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        while (tag := _varint(stream)) is not None:
            field, wire = tag >> 3, tag & 7
            if field == 0:
                raise MetadataError("field number 0")
            if wire == 0:
                _varint(stream)
            elif wire == 1:
                stream.seek(8, os.SEEK_CUR)
            elif wire == 5:
                stream.seek(4, os.SEEK_CUR)
            elif wire == 2:
                length = _varint(stream)
                if length is None or stream.tell() + length > size:
                    raise MetadataError("truncated field")
                if field == _METADATA_PROPS:
                    key, value = _entry(stream.read(length))
                    meta[key] = value
                else:
                    stream.seek(length, os.SEEK_CUR)
            else:
                raise MetadataError(f"unexpected wire type {wire}")
            if stream.tell() > size:
                raise MetadataError("truncated field")
    return meta
