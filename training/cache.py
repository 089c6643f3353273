"""Datasets built once per machine: their folder under the cache root, and the key that names it.

``sgmine-train dataset`` without ``--out`` builds into ``$SGMINE_CACHE/datasets/KEY``
(:func:`sgmine.cache.cache_root`; ``~/.cache/sgmine`` by default), where KEY (:func:`dataset_key`)
is a hash of

- the command's options that decide the curves (all but ``--out``, ``--workers``,
  ``--scheduler`` and ``--fresh``), the seed among them;
- the content of its input tables (every ``--cif-table`` file, every ``.cif`` below ``--cif-dir``:
  a table moved or checked out elsewhere keeps its key, an edited one gets a new one);
- the simulator's code version (:func:`code_version`): the syntax of the modules that turn a
  structure into training curves, without docstrings and comments, and the versions of the
  libraries they call.

The key and what it was made from go into ``dataset.json`` (``cache``). A rerun of the same command
on the same machine finds the complete build there and reuses it without simulating anything
(:func:`complete_build`); an interrupted one resumes from its shards (``work/``, see
:mod:`training.dataset`). A fresh checkout on the same machine finds them too; another machine
rebuilds them with the same command.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from sgmine.cache import cache_root

#: Modules whose code decides a dataset's curves (structure reading and labels, synthetic
#: crystals, variants, simulation, resampling, the files written).
SIMULATOR_MODULES = (
    "sgmine.simulate", "sgmine.pdfdefaults", "sgmine.grid", "sgmine.spline", "sgmine.sites",
    "training.dataset", "training.structures", "training.variants", "training.wyckoff", "training.molecules",
    "training.datafiles", "training.symbols",
)
#: Libraries those modules call for structures, symmetry and numerics.
SIMULATOR_LIBRARIES = ("numpy", "scipy", "spglib", "pyxtal", "pymatgen", "diffpy.structure")
#: ``sgmine-train dataset`` options that do not change the curves (where and how fast they are built).
NOT_DECISIVE = ("out", "workers", "scheduler", "fresh")
#: Options whose values are input files: they enter the key by content (:func:`input_digests`).
INPUT_OPTIONS = ("cif_dir", "cif_table")


def _without_docstrings(source: str) -> str:
    """The syntax tree of ``source`` without docstrings, as text (comments and layout are not in it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def code_version() -> str:
    """A 16-hex-digit hash of the simulator's code: :data:`SIMULATOR_MODULES` (syntax only) and the
    versions of :data:`SIMULATOR_LIBRARIES`. Editing a docstring or a comment keeps it."""
    digest = hashlib.sha256()
    for name in SIMULATOR_MODULES:
        origin = importlib.util.find_spec(name).origin
        digest.update(name.encode() + b"\0" + _without_docstrings(Path(origin).read_text()).encode() + b"\0")
    for name in SIMULATOR_LIBRARIES:
        digest.update(f"{name}={_library_version(name)}\0".encode())
    return digest.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_digests(*, cif_dir: Path | None = None, cif_table: Iterable[Path] = ()) -> dict[str, str]:
    """Content hashes of a dataset's inputs, by role: ``cif_table[i]`` for each table and
    ``cif_dir/RELATIVE`` for each ``.cif`` file below the folder (as :func:`training.structures.cif_directory`
    reads them). Missing paths are left out (the build then reports them)."""
    digests = {f"cif_table[{i}]": file_digest(p) for i, p in enumerate(cif_table) if Path(p).is_file()}
    if cif_dir is not None and Path(cif_dir).is_dir():
        root = Path(cif_dir)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".cif"):
            digests[f"cif_dir/{path.relative_to(root).as_posix()}"] = file_digest(path)
    return digests


def dataset_key(options: dict[str, Any]) -> dict[str, Any]:
    """What names a dataset build: ``key`` (16 hex digits) and what it hashes, ``options`` (the
    decisive ones, without the input paths), ``inputs`` (:func:`input_digests`) and ``code``
    (:func:`code_version`).

    Parameters
    ----------
    options
        The ``sgmine-train dataset`` options by parameter name, as the command received them.
    """
    decisive = {k: v for k, v in options.items() if k not in NOT_DECISIVE + INPUT_OPTIONS}
    inputs = input_digests(cif_dir=options.get("cif_dir"), cif_table=options.get("cif_table") or ())
    record = {"options": json.loads(json.dumps(decisive, sort_keys=True, default=str)), "inputs": inputs,
              "code": code_version()}
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    return {"key": key, **record}


def dataset_dir(key: str) -> Path:
    """The folder of the dataset build named ``key`` under the cache root."""
    return cache_root() / "datasets" / key


def complete_build(out: str | Path, key: str) -> bool:
    """Whether ``out`` holds a finished build named ``key`` (its ``dataset.json``, written last,
    carries the key, and the curves are there)."""
    out = Path(out)
    meta = out / "dataset.json"
    if not meta.is_file() or not (out / "dataset.npz").is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("cache", {}).get("key") == key
    except json.JSONDecodeError:
        return False
