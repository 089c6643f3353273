"""Reading and writing training datasets in the reference format (plus our extras).

A dataset is a directory holding

- ``x.csv``: N rows x 209 floats, no header; each row is ``sgmine.grid.resample(r, g, Grid()).values``;
- ``y.csv``: N space-group numbers, one per row, no header;
- ``size_sg.csv``: ``group,count``, one row per space group present (ascending group);
- ``manifest.csv`` (ours, optional): one row per PDF with ``structure_id`` and the simulation
  parameters, so augmented variants of one structure can be kept on one side of a split;
- ``dataset.npz`` (ours, optional): the same arrays for fast loading;
- ``dataset.json`` (ours, optional): grid, counts, seed, command, description.

A directory with only the reference ``x.csv``/``y.csv``/``size_sg.csv`` reads fine: it simply
has no structure ids (``Dataset.groups is None``). The reference ``size_sg.csv`` has no header
(``group,count`` rows); both that and ours are read.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sgmine.files import atomic_write
from sgmine.grid import Grid

MANIFEST_COLUMNS = (
    "row",
    "structure_id",
    "source",
    "formula",
    "space_group",
    "qmax",
    "qdamp",
    "uiso",
    "delta2",
    "strain",
    "rmax",
    "radiation",
    "noise",
    "particle_diameter",
    "qmin",
    "step",
    "baseline",
    "substituted",
    "negative_scatterer",
    "variant",
    "split_group",
)


class DatasetError(ValueError):
    """A dataset file that is missing, malformed or inconsistent; the message names the file."""


@dataclass
class Dataset:
    """Curves on the model grid with their space groups.

    ``x`` is float32 ``(N, npoints)``; ``y`` int ``(N,)`` space-group numbers; ``groups`` the
    structure id of each row (``None`` when the dataset does not say); ``classes`` the sorted
    space groups of the dataset (the model's output order); ``info`` the ``dataset.json``
    contents (empty when absent).
    """

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None
    classes: tuple[int, ...]
    info: dict[str, Any] = field(default_factory=dict)
    manifest: list[dict[str, str]] | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def class_counts(self) -> dict[int, int]:
        """Number of rows per class, in class order (zero for a class with no rows)."""
        values, counts = np.unique(self.y, return_counts=True)
        found = dict(zip(values.tolist(), counts.tolist()))
        return {c: int(found.get(c, 0)) for c in self.classes}

    @property
    def grid(self) -> Grid:
        """The grid the curves were put on (from ``dataset.json``; the default grid otherwise)."""
        return Grid.from_dict(self.info.get("grid"), npoints=int(self.x.shape[1]))

    @property
    def description(self) -> str:
        """Free text describing the data (used as the model's ``training_data`` metadata)."""
        text = self.info.get("description")
        if text:
            return str(text)
        return f"{len(self)} PDFs over space groups {', '.join(map(str, self.classes))}"


# --------------------------------------------------------------------------- writing


def _csv_text(rows: list[list[Any]], header: list[str] | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _validate_xy(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2:
        raise DatasetError(f"{where}: x must be 2-D (N, npoints), got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(f"{where}: y must have one label per row of x ({x.shape[0]}), got shape {y.shape}")
    if not np.all(np.isfinite(x)):
        raise DatasetError(f"{where}: x contains NaN or infinite values")
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise DatasetError(f"{where}: y must hold integer space-group numbers")
    y = y.astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 230):
        raise DatasetError(f"{where}: space groups must be 1–230, found {int(y.min())}–{int(y.max())}")
    return x, y


def write_dataset(
    out_dir: str | Path,
    x: np.ndarray,
    y: np.ndarray,
    manifest: list[dict[str, Any]] | None,
    info: dict[str, Any],
) -> Path:
    """Write a dataset directory (x.csv, y.csv, size_sg.csv, manifest.csv, dataset.npz, dataset.json).

    Each file is written atomically (temporary file, then rename). ``manifest``, when given,
    has one dict per row with the keys of :data:`MANIFEST_COLUMNS` (``row`` is filled in if
    missing). ``info`` is stored as ``dataset.json``; its ``grid`` entry (if any) gives the
    grid points stored in the ``.npz``. Returns the directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = _validate_xy(x, y, str(out))
    if manifest is not None and len(manifest) != len(y):
        raise DatasetError(f"{out}: manifest has {len(manifest)} rows for {len(y)} curves")

    classes, counts = np.unique(y, return_counts=True)
    grid = Grid.from_dict(info.get("grid"), npoints=int(x.shape[1]))
    if grid.npoints != x.shape[1]:
        raise DatasetError(f"{out}: info grid has {grid.npoints} points but x has {x.shape[1]} columns")

    # x.csv with float32 round-trip precision (repr of float32 is at most 9 significant digits).
    x_text = "\n".join(",".join(f"{v:.9g}" for v in row) for row in x.tolist())
    atomic_write(out / "x.csv", (x_text + "\n" if len(x) else "").encode())
    atomic_write(out / "y.csv", "".join(f"{int(v)}\n" for v in y).encode())
    size_rows = [[int(c), int(n)] for c, n in zip(classes, counts)]
    atomic_write(out / "size_sg.csv", _csv_text(size_rows, ["group", "count"]).encode())

    structure_ids = split_groups = np.array([""] * len(y), dtype=str)
    if manifest is not None:
        rows = []
        for i, entry in enumerate(manifest):
            entry = {"row": i, **entry}
            unknown = set(entry) - set(MANIFEST_COLUMNS)
            if unknown:
                raise DatasetError(f"{out}: manifest row {i} has unknown keys {sorted(unknown)}")
            if "space_group" in entry and entry["space_group"] not in (None, "") and int(entry["space_group"]) != int(y[i]):
                raise DatasetError(
                    f"{out}: manifest row {i} says space group {entry['space_group']} but y says {int(y[i])}"
                )
            rows.append(["" if entry.get(k) is None else entry.get(k, "") for k in MANIFEST_COLUMNS])
        atomic_write(out / "manifest.csv", _csv_text(rows, list(MANIFEST_COLUMNS)).encode())
        structure_ids = np.array([str(m.get("structure_id", "")) for m in manifest], dtype=str)
        split_groups = np.array([str(m.get("split_group") or m.get("structure_id", "")) for m in manifest], dtype=str)

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        x=x.astype(np.float32),
        y=y.astype(np.int32),
        structure_id=structure_ids,
        split_group=split_groups,
        classes=classes.astype(np.int32),
        r=grid.r.astype(np.float64),
    )
    atomic_write(out / "dataset.npz", buf.getvalue())

    meta = dict(info)
    meta.setdefault("grid", grid.as_dict())
    meta.setdefault("counts", {str(int(c)): int(n) for c, n in zip(classes, counts)})
    meta.setdefault("n_rows", int(len(y)))
    atomic_write(out / "dataset.json", (json.dumps(meta, indent=2, default=str) + "\n").encode())
    return out


# --------------------------------------------------------------------------- reading


def _read_x_csv(path: Path) -> np.ndarray:
    try:
        x = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{path}: cannot read as comma-separated numbers without header ({exc})") from exc
    return x


def _read_y_csv(path: Path) -> np.ndarray:
    try:
        y = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise DatasetError(f"{path}: cannot read as one space-group number per row ({exc})") from exc
    if y.ndim != 1:
        raise DatasetError(f"{path}: expected one column, got shape {y.shape}")
    return y


def _read_size_sg(path: Path) -> dict[int, int]:
    """Read ``size_sg.csv``: ``group,count`` rows, with or without the header line."""
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and any(c.strip() for c in r)]
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]  # header
    sizes: dict[int, int] = {}
    for i, row in enumerate(rows):
        if len(row) < 2 or not (_is_number(row[0]) and _is_number(row[1])):
            raise DatasetError(f"{path}: row {i + 1} is not 'group,count': {row}")
        sizes[int(float(row[0]))] = int(float(row[1]))
    return sizes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "structure_id" not in reader.fieldnames:
            raise DatasetError(f"{path}: manifest needs a header with a 'structure_id' column")
        return list(reader)


def _read_info(folder: Path) -> dict[str, Any]:
    path = folder / "dataset.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def _read_npz(path: Path, info: dict[str, Any]) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read as a dataset .npz ({exc})") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(f"{path}: missing array {key!r}")
    x, y = _validate_xy(arrays["x"], arrays["y"], str(path))
    groups = None
    sid = arrays.get("split_group", arrays.get("structure_id"))  # what a structure-disjoint split keeps together
    if sid is not None and sid.shape == y.shape and sid.size and all(str(s) for s in sid):
        groups = sid.astype(str)
    classes = arrays.get("classes")
    classes = tuple(int(c) for c in (classes if classes is not None else np.unique(y)))
    _check_labels_in_classes(y, classes, path)
    return Dataset(x=x, y=y, groups=groups, classes=classes, info=info)


def _check_labels_in_classes(y: np.ndarray, classes: tuple[int, ...], where: Path) -> None:
    extra = sorted(set(np.unique(y).tolist()) - set(classes))
    if extra:
        raise DatasetError(f"{where}: labels {extra} are not among the classes {list(classes)}")


def read_dataset(path: str | Path) -> Dataset:
    """Read a dataset directory or a ``dataset.npz`` file.

    A directory with ``dataset.npz`` is read from it (fast); otherwise from ``x.csv``, ``y.csv``
    and, when present, ``size_sg.csv`` (its groups become the classes, and its counts must match
    ``y.csv``) and ``manifest.csv`` (structure ids for grouped splits).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset {path} does not exist")
    if path.is_file():
        if path.suffix != ".npz":
            raise DatasetError(f"{path}: give a dataset directory or a .npz file")
        return _read_npz(path, _read_info(path.parent))

    info = _read_info(path)
    if (path / "dataset.npz").is_file():
        data = _read_npz(path / "dataset.npz", info)
        if (path / "manifest.csv").is_file():
            data.manifest = _read_manifest(path / "manifest.csv")
        return data

    x_path, y_path = path / "x.csv", path / "y.csv"
    for p in (x_path, y_path):
        if not p.is_file():
            raise DatasetError(f"dataset {path} has no {p.name} (nor dataset.npz)")
    x, y = _validate_xy(_read_x_csv(x_path), _read_y_csv(y_path), str(path))

    classes = tuple(int(c) for c in np.unique(y))
    size_path = path / "size_sg.csv"
    if size_path.is_file():
        sizes = _read_size_sg(size_path)
        classes = tuple(sorted(sizes))
        _check_labels_in_classes(y, classes, size_path)
        values, counts = np.unique(y, return_counts=True)
        found = dict(zip(values.tolist(), counts.tolist()))
        wrong = {g: (n, found.get(g, 0)) for g, n in sizes.items() if found.get(g, 0) != n}
        if wrong:
            detail = ", ".join(f"group {g}: {a} listed, {b} in y.csv" for g, (a, b) in sorted(wrong.items()))
            raise DatasetError(f"{size_path}: counts do not match {y_path.name} ({detail})")

    groups, manifest = None, None
    manifest_path = path / "manifest.csv"
    if manifest_path.is_file():
        manifest = _read_manifest(manifest_path)
        if len(manifest) != len(y):
            raise DatasetError(f"{manifest_path}: {len(manifest)} rows for {len(y)} curves in {y_path.name}")
        # as write_dataset's split_group: the row's split group, else its structure id
        groups = np.array([m.get("split_group") or m.get("structure_id", "") for m in manifest], dtype=str)
        if not all(groups):
            groups = None
    return Dataset(x=x, y=y, groups=groups, classes=classes, info=info, manifest=manifest)
