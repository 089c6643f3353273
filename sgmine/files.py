"""Writing files atomically: a reader sees the old file or the new one, never half of one.

Every file sgmine and its training pipeline write (scan tables, simulated ``.gr`` files,
datasets, run directories, models) goes through :func:`atomic_write` or, for libraries that
write to a path themselves (Keras, ONNX), :func:`atomic_save`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def readable_mode() -> int:
    """The mode a new file gets under the current umask (``mkstemp`` makes private 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _final_mode(path: Path) -> int:
    """Keep the mode of the file being replaced; a new file gets the umask's."""
    return path.stat().st_mode & 0o777 if path.exists() else readable_mode()


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The data go to a temporary file in the same directory, are flushed to disk, and then
    replace ``path`` in one rename. Text is written as UTF-8, newlines unchanged.

    Parameters
    ----------
    path
        The file to write (its directory must exist).
    data
        Text or bytes.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        if isinstance(data, bytes):
            handle = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(save: Callable[[Path], object], path: str | os.PathLike) -> None:
    """Let ``save`` write a temporary file beside ``path``, then rename it to ``path``.

    For writers that only take a path (``keras.Model.save``, ``onnx.save``). The temporary name
    ends with ``path``'s name, so writers that check the suffix (``.keras``, ``.weights.h5``)
    accept it. If ``save`` raises (a failed check, say), the temporary file is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    save
        Called with the temporary path; writes the file there.
    path
        The file to write (its directory must exist).
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        save(tmp)
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
