"""The run directory ``sgmine-train fit --out RUN`` writes, and every later step reads.

One module owns its layout::

    RUN/
      model.keras         best weights, without optimizer          (fit)
      history.json        per-epoch history, classes, config, data (fit)
      config.json         the run's settings, for --resume         (fit)
      split.npz           row indices of train/validation/test     (fit)
      checkpoints/        last epoch's model, best weights, state  (fit)
      baseline.json       logistic regression on the same split    (evaluate, baseline)
      calibration.json    temperature, in-domain threshold         (calibrate)
      report/             report.json, report.md, PNG plots        (evaluate, calibrate)

:class:`Split` (the row indices), :func:`split_indices` and :func:`make_split` (how ``fit`` draws them) live here too,
so that evaluation, the baseline, calibration, export and quantisation all see the same rows.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # imports only for annotations
    from training.datafiles import Dataset

#: Suffixes of the Keras model files :func:`load_keras_model` reads.
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


class ModelFileError(ValueError):
    """A file that is not a Keras model this package can load."""


@dataclass
class Split:
    """Row indices of the three parts of a dataset."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def save(self, path: Path, n_rows: int) -> None:
        """Write the indices to ``path`` (``.npz``), with the dataset's row count."""
        np.savez(path, train=self.train, validation=self.validation, test=self.test, n_rows=n_rows)

    @classmethod
    def load(cls, path: Path, n_rows: int) -> "Split":
        """Read a split saved by :meth:`save`; raise ``ValueError`` if it was made for another size."""
        with np.load(path) as data:
            if int(data["n_rows"]) != n_rows:
                raise ValueError(f"{path} was made for a dataset of {int(data['n_rows'])} rows, this one has {n_rows}")
            return cls(data["train"], data["validation"], data["test"])


class SplitSettings(Protocol):
    """What a split is drawn from (:class:`training.fit.FitConfig` has it)."""

    test_size: float
    validation_split: float
    seed: int


def split_indices(
    y: np.ndarray,
    groups: np.ndarray | None = None,
    test_size: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``: stratified by ``y``, and by structure when ``groups`` is given.

    Deterministic for a given ``seed``. With groups, rows sharing a group id all land on one
    side (scikit-learn's ``StratifiedGroupKFold`` with ``round(1/test_size)`` folds, first fold
    as test). Without groups, ``train_test_split(stratify=y)``; classes too small to stratify
    fall back to a plain random split with a warning.
    """
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    y = np.asarray(y)
    n = len(y)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    if n < 2:
        raise ValueError(f"need at least 2 rows to split, got {n}")
    rows = np.arange(n)
    if groups is not None:
        groups = np.asarray(groups)
        n_groups = len(np.unique(groups))
        n_splits = max(2, int(round(1.0 / test_size)))
        if n_groups < n_splits:
            raise ValueError(f"cannot split {n_groups} structures into {n_splits} folds; need more structures")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class")
            folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            train, test = next(folds.split(rows, y, groups))
        return np.sort(train), np.sort(test)
    _, counts = np.unique(y, return_counts=True)
    n_test = int(np.ceil(test_size * n))
    stratify = y if counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts) else None
    if stratify is None:
        warnings.warn("some classes are too small to stratify the split; splitting at random", stacklevel=2)
    train, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def make_split(data: "Dataset", config: SplitSettings) -> Split:
    """Train/validation/test rows for ``data``: test first, then validation out of the rest.

    Parameters
    ----------
    data
        The dataset (its labels, and structure groups when known, stratify the split).
    config
        Gives ``test_size``, ``validation_split`` and ``seed`` (a :class:`training.fit.FitConfig`).
    """
    rest, test = split_indices(data.y, data.groups, config.test_size, config.seed)
    groups = data.groups[rest] if data.groups is not None else None
    fit_part, val_part = split_indices(data.y[rest], groups, config.validation_split, config.seed)
    return Split(train=rest[fit_part], validation=rest[val_part], test=test)


def load_keras_model(path: str | Path, compile: bool = False):
    """Load a ``.keras`` or ``.h5`` model in Keras' safe mode (uncompiled unless ``compile``).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ModelFileError
        When it is not a Keras file or Keras cannot read it.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix not in KERAS_SUFFIXES:
        raise ModelFileError(f"{path}: expected a Keras .keras or .h5 file")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # Keras raises many types for unreadable files
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise ModelFileError(f"cannot load Keras model {path}: {first}") from exc


@dataclass(frozen=True)
class RunDir:
    """A training run directory: where each file is, and how to read it.

    Parameters
    ----------
    path
        The directory (``sgmine-train fit --out``).
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # ------------------------------------------------------------------ where things are

    @property
    def model_file(self) -> Path:
        return self.path / "model.keras"

    @property
    def history_file(self) -> Path:
        return self.path / "history.json"

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def split_file(self) -> Path:
        return self.path / "split.npz"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def baseline_file(self) -> Path:
        return self.path / "baseline.json"

    @property
    def calibration_file(self) -> Path:
        return self.path / "calibration.json"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def report_file(self) -> Path:
        return self.report / "report.json"

    # ------------------------------------------------------------------ what they hold

    def has_split(self) -> bool:
        """Whether ``fit`` has saved the split."""
        return self.split_file.is_file()

    def split(self, n_rows: int) -> Split:
        """The run's split; ``ValueError`` if it was made for a dataset of another size."""
        return Split.load(self.split_file, n_rows)

    def save_split(self, split: Split, n_rows: int) -> None:
        """Record ``split`` of a dataset of ``n_rows`` rows."""
        split.save(self.split_file, n_rows)

    def history(self) -> dict[str, Any]:
        """``history.json``: per-epoch history, classes, config, data (``{}`` when absent)."""
        return _json_or_empty(self.history_file)

    def calibration(self) -> dict[str, Any]:
        """``calibration.json`` of ``sgmine-train calibrate`` (``{}`` when absent)."""
        return _json_or_empty(self.calibration_file)

    def classes(self) -> tuple[int, ...] | None:
        """The run's class order (from ``history.json``), or None when it does not say."""
        classes = self.history().get("classes")
        return tuple(int(c) for c in classes) if classes else None

    def check_classes(self, classes: tuple[int, ...]) -> tuple[int, ...]:
        """The run's classes; ``ValueError`` unless they are ``classes`` (a dataset's), in order."""
        own = self.classes()
        if own != tuple(classes):
            raise ValueError(
                f"{self.path} was trained on classes {list(own) if own else None}, the dataset has {list(classes)}"
            )
        return own

    def load_keras(self, compile: bool = False):
        """The trained model (``model.keras``), see :func:`load_keras_model`."""
        return load_keras_model(self.model_file, compile=compile)


def _json_or_empty(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
