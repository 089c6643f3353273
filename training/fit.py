"""Train the CNN the way the reference does: split, class weights, learning-rate steps, early stopping.

The recipe (Liu et al. 2019, spacegroupMining):

- 80/20 train/test split, stratified by space group, fixed seed. When the dataset has structure
  ids (our ``manifest.csv``), the split is by structure, so augmented variants of one structure
  never sit on both sides. 20 % of the training part is held out for validation the same way.
- One-hot labels in the dataset's class order; class weight = total rows / rows of that class.
- Adam, categorical cross-entropy, accuracy and top-2 accuracy; 100 epochs, batch 32.
- Learning rate 5e-4 for epochs 0–39, 5e-5 for 40–59, 5e-6 afterwards.
- Early stopping on validation accuracy with patience 10, restoring the best weights.
  The reference's ``min_delta=0.5`` (an accuracy gain of 50 points) stops every run after
  10 epochs; we use :data:`MIN_DELTA` instead.

A run directory (:class:`training.run.RunDir`) holds ``model.keras`` (best weights),
``history.json``, ``config.json``, ``split.npz`` (the row indices of each part, so evaluation and
the baseline use the same test set) and ``checkpoints/`` (the last epoch's full model and the
early-stopping state, for ``--resume``).
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from sgmine.files import atomic_save, atomic_write
from training.datafiles import Dataset, read_dataset
from training.run import RunDir, Split, make_split  # noqa: F401  (Split: old imports keep working)

#: Smallest gain of validation accuracy that counts as an improvement (the reference used 0.5).
MIN_DELTA = 1e-3
LR_STEPS = ((40, 5e-4), (60, 5e-5))  # (first epoch *not* using it, rate)
LR_FINAL = 5e-6


# --------------------------------------------------------------------------- recipe pieces


def learning_rate(epoch: int, lr: float | None = None) -> float:
    """The reference's step schedule: 5e-4 for epochs 0–39, 5e-5 for 40–59, 5e-6 from 60 on.

    ``lr`` (the current rate, passed by Keras' ``LearningRateScheduler``) is ignored.
    """
    for end, rate in LR_STEPS:
        if epoch < end:
            return rate
    return LR_FINAL


#: Architectures ``sgmine-train fit --architecture`` builds: name -> module with ``build_model``.
ARCHITECTURES = {"reference": "training.cnn", "compact": "training.compact", "resnet": "training.resnet"}
#: FitConfig settings of the compact network and the ResNet (the reference CNN's recipe stays fixed).
COMPACT_SETTINGS = ("dropout", "width")
#: The compact network's schedule, as fractions of the run's epochs: (end, rate) steps, then the last rate.
SHORT_STEPS = ((0.6, 1e-3), (0.85, 1e-4))
SHORT_FINAL = 1e-5
#: The schedule of a run that starts from another run's weights (``--init-from``): the compact
#: schedule's last two rates, 1e-4 for the first half of the epochs, then 1e-5.
FINE_TUNE_STEPS = ((0.5, 1e-4),)


def schedule(config: "FitConfig"):
    """The learning-rate schedule of a run: the reference's steps for the reference CNN; for the
    compact network and the ResNet, 1e-3 for the first 60 % of ``config.epochs``, 1e-4 to 85 %, then 1e-5; for a run
    that starts from trained weights (``config.init_from``), :data:`FINE_TUNE_STEPS`."""
    if config.init_from is None and config.architecture == "reference":
        return learning_rate
    steps = FINE_TUNE_STEPS if config.init_from is not None else SHORT_STEPS

    def short(epoch: int, lr: float | None = None) -> float:
        for end, rate in steps:
            if epoch < end * config.epochs:
                return rate
        return SHORT_FINAL

    return short


def build_architecture(
    name: str, num_classes: int, npoints: int, *, dropout: float | None = None, width: int | None = None
):
    """The uncompiled Keras model of architecture ``name`` (:data:`ARCHITECTURES`); ``dropout`` and
    ``width`` (compact network and ResNet only) replace its defaults, None keeps them."""
    import importlib

    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; use one of {', '.join(ARCHITECTURES)}")
    options = {key: value for key, value in (("dropout", dropout), ("width", width)) if value is not None}
    return importlib.import_module(ARCHITECTURES[name]).build_model(num_classes, npoints, **options)


#: How rows are weighted by class, as the power of total/count: the reference recipe (1), its
#: square root, or not at all.
CLASS_WEIGHTINGS = {"balanced": 1.0, "sqrt": 0.5, "none": 0.0}


def class_weights(
    counts: dict[int, int] | "np.ndarray", classes: tuple[int, ...] | None = None, *, weighting: str = "balanced"
) -> dict[int, float]:
    """Keras ``class_weight``: for class index i, total rows / rows of class i.

    ``counts`` maps space group -> number of rows (e.g. from ``size_sg.csv`` or
    :meth:`Dataset.class_counts`), in the order of ``classes`` (default: the dict's order).
    Classes with no rows get weight 0 (they never occur, so it has no effect).
    ``weighting="sqrt"`` takes the square root of each weight (milder when classes differ a
    hundredfold, as over the 45 groups); ``"none"`` gives every class weight 1.
    """
    if weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"unknown class weighting {weighting!r}; use one of {', '.join(CLASS_WEIGHTINGS)}")
    if not isinstance(counts, dict):
        labels = np.asarray(counts)
        values, n = np.unique(labels, return_counts=True)
        counts = dict(zip(values.tolist(), n.tolist()))
    order = tuple(classes) if classes is not None else tuple(counts)
    total = float(sum(counts.get(c, 0) for c in order))
    if total <= 0:
        raise ValueError("class weights need at least one labelled row")
    power = CLASS_WEIGHTINGS[weighting]
    return {i: ((total / counts[c]) ** power if counts.get(c, 0) > 0 else 0.0) for i, c in enumerate(order)}


def one_hot(y: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """One-hot rows (float32) of space groups ``y`` against ``classes``; unknown groups raise."""
    index = {c: i for i, c in enumerate(classes)}
    try:
        idx = np.array([index[int(v)] for v in y], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"space group {exc.args[0]} is not among the classes {list(classes)}") from None
    out = np.zeros((len(idx), len(classes)), dtype=np.float32)
    out[np.arange(len(idx)), idx] = 1.0
    return out


#: Weight of an outlier row relative to the mean weight of an in-class training row.
OUTLIER_WEIGHT = 0.5


#: What the network is taught to answer for an outlier row (``FitConfig.outlier_target``):
#: ``uniform``, the same probability for every class (outlier exposure, Hendrycks et al. 2019),
#: or ``other``, an extra "none of these" output that the saved model leaves as the remainder
#: (:func:`in_class_view`).
OUTLIER_TARGETS = ("uniform", "other")


def outlier_rows(
    outliers: Dataset, data: Dataset, train: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Out-of-class training curves for outlier exposure.

    The rows of ``outliers`` whose label is not one of ``data``'s classes (crystals of other
    space groups), plus as many half as two-phase mixtures of ``data``'s *training* rows of
    different groups (:func:`training.ood.two_phase_mixtures`). The model is trained to give
    them a uniform distribution or the "none of these" output (:data:`OUTLIER_TARGETS`), so
    that its top-1 class probability is low on inputs unlike any class.
    """
    from training.ood import two_phase_mixtures

    other = outliers.x[~np.isin(outliers.y, data.classes)]
    if len(other) == 0:
        raise ValueError("the outlier dataset has no curves outside the model's classes")
    mixtures = two_phase_mixtures(data.x[train], data.y[train], len(other) // 2, seed, data.grid)
    return np.concatenate([other, mixtures]).astype(np.float32)


def more_rows(more: Dataset, data: Dataset, split: Split) -> tuple[np.ndarray, np.ndarray, int]:
    """Extra in-class training curves that keep the split structure-disjoint.

    The rows of ``more`` (e.g. further symmetry-preserving variants of the same structures,
    built with another ``--seed``) whose label is one of ``data``'s classes and whose split
    group (composition and space group) is in neither the validation nor the test part of
    ``split``. Validation and test stay exactly ``data``'s, so a model trained with them is
    scored on the same curves as one trained without.

    Returns
    -------
    x, y, dropped
        The kept curves, their space groups, and how many rows were dropped because their
        split group is held out.

    Raises
    ------
    ValueError
        When either dataset has no split groups (the rows could not be kept apart from the
        held-out structures), when the grids differ, or when no row is left.
    """
    if data.groups is None or more.groups is None:
        raise ValueError("--more needs split groups (manifest.csv) in both datasets, to keep held-out structures out")
    if more.x.shape[1] != data.x.shape[1]:
        raise ValueError(f"--more curves have {more.x.shape[1]} points, the dataset's {data.x.shape[1]}")
    held_out = np.concatenate([data.groups[split.validation], data.groups[split.test]])
    in_class = np.isin(more.y, data.classes)
    kept = in_class & ~np.isin(more.groups, held_out)
    if not kept.any():
        raise ValueError("no --more row is in the model's classes and outside the validation and test structures")
    return more.x[kept].astype(np.float32), more.y[kept], int((in_class & ~kept).sum())


@dataclass(kw_only=True)
class FitConfig:
    """Settings of one training run (stored in ``history.json``); built with keywords only."""

    epochs: int = 100
    batch_size: int = 32
    validation_split: float = 0.2
    test_size: float = 0.2
    seed: int = 0
    patience: int = 10
    min_delta: float = MIN_DELTA
    verbose: int = 2
    steps_per_execution: int = 1
    architecture: str = "reference"
    #: seed of the weight initialisation and shuffling when it should differ from the split's
    #: (members of an ensemble share one split); None: ``seed``
    init_seed: int | None = None
    #: one of :data:`CLASS_WEIGHTINGS`
    class_weighting: str = "balanced"
    #: dropout rate of the compact network's or the ResNet's dense layers; None: its default (0.5, as the reference)
    dropout: float | None = None
    #: filter and dense-unit multiplier of the compact network or the ResNet; None: its default (1)
    width: int | None = None
    #: one of :data:`OUTLIER_TARGETS`: what outlier rows are trained towards
    outlier_target: str = "uniform"
    #: run directory whose best weights this run starts from (a fine-tune on more data): it must
    #: have this run's architecture, width, dropout, outlier target, classes and split
    #: (:func:`check_init_from`); or an exported ``.onnx`` file (a shipped model) whose network,
    #: or member ``init_member`` of its ensemble, this run's network is rebuilt from
    #: (:mod:`training.onnx_keras`); the schedule is then :data:`FINE_TUNE_STEPS`
    init_from: str | None = None
    #: which member of the ``init_from`` ONNX ensemble to start from (0-based); None for a file of one network
    init_member: int | None = None
    #: exported ``.onnx`` file (e.g. the shipped ensemble) whose members' averaged probabilities every
    #: training row is also trained towards (knowledge distillation, :mod:`training.distil`); None: labels only
    teacher: str | None = None
    #: the teacher's share of each training target (:func:`training.distil.mix_targets`)
    teacher_weight: float = 0.5

    @property
    def warm_start_file(self) -> bool:
        """Whether the run starts from an exported ONNX file rather than a run directory."""
        return self.init_from is not None and Path(self.init_from).suffix == ".onnx"

    @property
    def none_of_these_output(self) -> bool:
        """Whether the network has the extra "none of these" output (``outlier_target="other"``)."""
        return self.outlier_target == "other"

    def __post_init__(self) -> None:
        if self.outlier_target not in OUTLIER_TARGETS:
            raise ValueError(f"unknown outlier target {self.outlier_target!r}; use one of {', '.join(OUTLIER_TARGETS)}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"unknown class weighting {self.class_weighting!r}; use one of {', '.join(CLASS_WEIGHTINGS)}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; use one of {', '.join(ARCHITECTURES)}")
        for name in COMPACT_SETTINGS:
            if getattr(self, name) is not None and self.architecture == "reference":
                raise ValueError(f"the reference CNN keeps its own {name} (its recipe stays reproducible); "
                                 f"--{name} is for --architecture compact or resnet")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.width is not None and self.width < 1:
            raise ValueError(f"width must be at least 1, got {self.width}")
        if self.init_member is not None and not self.warm_start_file:
            raise ValueError("--member picks a network of an --init-from ONNX file; give one")
        if self.init_member is not None and self.init_member < 0:
            raise ValueError(f"--member must be 0 or more, got {self.init_member}")
        if self.teacher is not None and Path(self.teacher).suffix != ".onnx":
            raise ValueError(f"--teacher takes an exported .onnx file, got {self.teacher}")
        if not 0 <= self.teacher_weight <= 1:
            raise ValueError(f"the teacher's weight must be in [0, 1], got {self.teacher_weight}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.steps_per_execution < 1:
            raise ValueError(f"steps per execution must be at least 1, got {self.steps_per_execution}")
        for name in ("validation_split", "test_size"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")


# --------------------------------------------------------------------------- Keras plumbing


def _backend() -> str:
    import keras

    return keras.backend.backend()


def configure_threads(threads: int | None) -> None:
    """Limit TensorFlow's CPU threads (call before TensorFlow runs anything; other backends: no-op)."""
    if not threads or _backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:  # already initialised in this process
        pass


def distribution_scope():
    """Where to build the model: all GPUs with ``MirroredStrategy`` when there are several, else the
    default device (one GPU or the CPU).

    With a Keras backend other than TensorFlow (``KERAS_BACKEND=jax`` on a GPU node without
    TensorFlow) the model is built and trained on that backend's default device.
    """
    if _backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy().scope()
    return tf.distribute.get_strategy().scope()


def _callbacks(model, run_dir: Path, config: FitConfig, state: dict[str, Any] | None, history: dict[str, list[float]]):
    """Callbacks: LR schedule, early stopping (resumable), per-epoch checkpoint and history."""
    import keras

    rates = schedule(config)

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """Keras early stopping whose counters can be carried over from an interrupted run."""

        def __init__(self, initial: dict[str, Any] | None, best_weights, **kwargs) -> None:
            super().__init__(**kwargs)
            self._initial = initial or {}
            self.initial_weights = best_weights

        def on_train_begin(self, logs=None) -> None:
            super().on_train_begin(logs)
            if self._initial:
                self.wait = int(self._initial["wait"])
                self.best = self._initial["best"]
                self.best_epoch = int(self._initial["best_epoch"])
                self.best_weights = self.initial_weights

        def state(self) -> dict[str, Any]:
            best = None if self.best is None else float(self.best)
            return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}

    best_weights = None
    best_file = RunDir(run_dir).checkpoints / "best.weights.h5"
    if state and state.get("early_stopping") and best_file.is_file():
        best = keras.models.clone_model(model)
        best.load_weights(best_file)
        best_weights = best.get_weights()
    stopper = ResumableEarlyStopping(
        state.get("early_stopping") if state else None,
        best_weights,
        monitor="val_accuracy",
        mode="max",
        patience=config.patience,
        min_delta=config.min_delta,
        restore_best_weights=True,
        verbose=1 if config.verbose else 0,
    )

    class Checkpoint(keras.callbacks.Callback):
        """After every epoch: save the full model (with optimizer) and the training state."""

        def __init__(self, history: dict[str, list[float]]) -> None:
            super().__init__()
            self.history = history
            self.epoch_start = 0.0

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            logs = dict(logs or {})
            logs["learning_rate"] = rates(epoch)
            logs["seconds"] = time.perf_counter() - self.epoch_start
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
            folder = RunDir(run_dir).checkpoints
            folder.mkdir(exist_ok=True)
            if stopper.best_epoch == epoch:
                atomic_save(lambda p: self.model.save_weights(str(p)), folder / "best.weights.h5")
            atomic_save(lambda p: self.model.save(str(p)), folder / "last.keras")
            snapshot = {"epoch": epoch, "history": self.history, "early_stopping": stopper.state()}
            atomic_write(folder / "state.json", json.dumps(snapshot))

    return [keras.callbacks.LearningRateScheduler(rates), stopper, Checkpoint(history)], stopper


def in_class_view(model, n_classes: int):
    """``model`` (softmax over ``n_classes`` + 1 outputs, the last "none of these") seen through
    its first ``n_classes`` outputs: a fixed selection (a bias-free Dense of the identity, not
    trained) named ``in_class_probabilities``. The outputs sum to 1 minus the probability of
    none of these, which the runtime treats as the remainder (:func:`sgmine.model.apply_temperature`)."""
    import keras

    n_out = int(model.outputs[0].shape[-1])
    if n_out != n_classes + 1:
        raise ValueError(f"expected {n_classes} + 1 outputs, the model has {n_out}")
    select = keras.layers.Dense(n_classes, use_bias=False, trainable=False, name="in_class_probabilities")
    outputs = select(model.outputs[0])
    select.set_weights([np.eye(n_out, n_classes, dtype=np.float32)])
    return keras.Model(model.inputs, outputs, name=model.name)


def leaves_remainder(model) -> bool:
    """Whether ``model`` (or a member of an ensemble) shows only the class outputs of a network
    with a "none of these" output (:func:`in_class_view`), or mixes in some outputs of a network
    over more classes (``sgmine-train ensemble --outside``), so its outputs may sum to less than 1."""
    layers = list(getattr(model, "layers", []))
    return any(layer.name in ("in_class_probabilities", "outside_classes") or leaves_remainder(layer)
               for layer in layers)


def _without_optimizer(model):
    """The trained network alone (an uncompiled copy): a third of the file, nothing to resume."""
    import keras

    clean = keras.models.clone_model(model)
    clean.set_weights(model.get_weights())
    return clean


# --------------------------------------------------------------------------- training


@dataclass
class FitResult:
    """What a training run produced."""

    run_dir: Path
    model_path: Path
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    seconds: float


def fit(
    data: Dataset,
    run_dir: str | Path,
    config: FitConfig = FitConfig(),
    resume: bool = False,
    source: str | Path | None = None,
    outliers: Dataset | None = None,
    more: Dataset | None = None,
) -> FitResult:
    """Train the CNN on ``data``, writing the run directory; return where the model went.

    With ``resume=True``, continue from ``run_dir/checkpoints`` (same data, same split).
    ``source`` (where ``data`` was read from) is recorded so later steps can find it.
    ``outliers`` (a dataset of other space groups) adds outlier exposure: see :func:`outlier_rows`;
    they join the training part only, with weight :data:`OUTLIER_WEIGHT` times the mean in-class
    weight, so validation and test stay in-class. Their targets are uniform, or with
    ``config.outlier_target="other"`` an extra output trained as "none of these"; the saved
    ``model.keras`` then shows only the class outputs (:func:`in_class_view`). ``more`` (a
    dataset of the same classes, e.g. more variants of the same structures) adds training rows
    whose structures are not held out (:func:`more_rows`); validation and test are unchanged.
    ``config.teacher`` (an exported ``.onnx`` file) mixes into every training row's target the
    mean of its members' probabilities on that curve, at ``config.teacher_weight``
    (:mod:`training.distil`); validation rows keep their labels.

    The steps: the split (new, or the interrupted run's, :func:`_start_run`), the training
    arrays (:func:`_training_rows`), the model (new, or the last checkpoint, :func:`_model`),
    Keras' fit with the callbacks of :func:`_callbacks`, then ``model.keras`` and
    ``history.json`` (:func:`_run_record`).
    """
    import keras

    run = RunDir(run_dir)
    run_dir = run.path
    if config.init_from is not None and not resume and Path(config.init_from).resolve() == run_dir.resolve():
        raise ValueError("--init-from must name another run than --out (a new run clears its own checkpoints)")
    state, split = _start_run(run, data, config, resume)

    other = config.none_of_these_output
    if other and outliers is None:
        raise ValueError("an 'other' output needs outlier rows (--outliers) to learn from")
    x = data.x[:, :, None]
    y = one_hot(data.y, data.classes)
    if other:  # the "none of these" column, never the answer for an in-class row
        y = np.concatenate([y, np.zeros((len(y), 1), np.float32)], axis=1)
    weights = class_weights(data.class_counts(), data.classes, weighting=config.class_weighting)
    x_train, y_train, w_train, counts = _training_rows(data, x, y, weights, split, outliers, config, more)
    teacher = None
    if config.teacher is not None:
        from training.distil import mix_targets, soft_targets, teacher_record

        soft = soft_targets(config.teacher, x_train)
        teacher = teacher_record(config.teacher, config.teacher_weight, soft, y_train)
        y_train = mix_targets(y_train, soft, weight=config.teacher_weight)

    keras.utils.set_random_seed(config.seed if config.init_seed is None else config.init_seed)
    model = _model(run, data, config, state, x_train=x_train)

    history: dict[str, list[float]] = {k: list(v) for k, v in (state or {}).get("history", {}).items()}
    initial_epoch = int(state["epoch"]) + 1 if state else 0
    callbacks, stopper = _callbacks(model, run_dir, config, state, history)

    start = time.perf_counter()
    if initial_epoch < config.epochs and not (state and state["early_stopping"]["wait"] >= config.patience):
        model.fit(
            x_train,
            y_train,
            validation_data=(x[split.validation], y[split.validation]),
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            batch_size=config.batch_size,
            sample_weight=w_train,  # the class weights, row by row (and the outliers')
            callbacks=callbacks,
            shuffle=True,
            verbose=config.verbose,
        )
    elif stopper.initial_weights is not None:  # the interrupted run had already stopped
        model.set_weights(stopper.initial_weights)
    seconds = time.perf_counter() - start

    model_path = run.model_file
    saved = in_class_view(model, len(data.classes)) if other else model
    atomic_save(lambda p: _without_optimizer(saved).save(str(p)), model_path)
    epochs_run = len(history.get("loss", []))
    best_epoch = int(stopper.best_epoch)
    record = _run_record(
        data, config, split, history=history, best_epoch=best_epoch, epochs_run=epochs_run, weights=weights,
        counts=counts, more=more, source=source, seconds=seconds, teacher=teacher,
    )
    atomic_write(run.history_file, json.dumps(record, indent=2))
    return FitResult(run_dir, model_path, history, best_epoch, epochs_run, seconds)


def _start_run(run: RunDir, data: Dataset, config: FitConfig, resume: bool) -> tuple[dict[str, Any] | None, Split]:
    """``(state, split)`` of the run: a new split saved to the run directory (and stale
    checkpoints removed), or with ``resume`` the interrupted run's checkpoint state and split,
    refused when its classes are not ``data``'s. Writes ``config.json`` either way. A new run
    that starts from another's weights (``config.init_from``) is checked against them
    (:func:`check_init_from`) before anything is written."""
    ckpt = run.checkpoints
    state = None
    if resume:
        if not (ckpt / "state.json").is_file() or not (ckpt / "last.keras").is_file():
            raise FileNotFoundError(f"nothing to resume in {run.path}: no checkpoints/state.json and last.keras")
        state = json.loads((ckpt / "state.json").read_text())
        split = run.split(len(data))
        previous = json.loads(run.config_file.read_text())
        if previous.get("classes") != list(data.classes):
            raise ValueError(f"{run.path} was trained on classes {previous.get('classes')}, this dataset has {list(data.classes)}")
    else:
        split = make_split(data, config)
        if config.warm_start_file:
            from training.onnx_keras import check_warm_start

            check_warm_start(config.init_from, data, member=config.init_member)
        elif config.init_from is not None:
            check_init_from(RunDir(config.init_from), data, config, split)
        if config.teacher is not None:
            from training.distil import check_teacher

            check_teacher(config.teacher, data)
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_split(split, len(data))
        for stale in ("state.json", "last.keras", "best.weights.h5"):
            (ckpt / stale).unlink(missing_ok=True)
    config_record = {**asdict(config), "classes": list(data.classes), "n_rows": len(data)}
    atomic_write(run.config_file, json.dumps(config_record, indent=2))
    return state, split


def _training_rows(data: Dataset, x: np.ndarray, y: np.ndarray, weights: dict[int, float], split: Split,
                   outliers: Dataset | None, config: FitConfig,
                   more: Dataset | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """``(x, y, sample weights, counts)`` of the training part: its rows with their class
    weights, the extra in-class rows of ``more`` (:func:`more_rows`) likewise, then the outlier
    rows (:func:`outlier_rows`) with the targets of ``config.outlier_target`` and
    :data:`OUTLIER_WEIGHT` times the mean class weight. ``counts`` has the number of
    ``outliers``, ``more`` rows and ``more_dropped`` rows."""
    x_train, y_train = x[split.train], y[split.train]
    counts = {"outliers": 0, "more": 0, "more_dropped": 0}
    if more is not None:
        x_more, y_more, counts["more_dropped"] = more_rows(more, data, split)
        counts["more"] = len(y_more)
        target = one_hot(y_more, data.classes)
        if config.none_of_these_output:  # its column, never the answer for an in-class row
            target = np.concatenate([target, np.zeros((len(target), 1), np.float32)], axis=1)
        x_train = np.concatenate([x_train, x_more[:, :, None]])
        y_train = np.concatenate([y_train, target])
    w_train = np.array([weights[i] for i in y_train.argmax(axis=1)], dtype=np.float32)
    n_outliers = 0
    if outliers is not None:
        extra = outlier_rows(outliers, data, split.train, config.seed)
        n_outliers = len(extra)
        x_train = np.concatenate([x_train, extra[:, :, None]])
        n = len(data.classes)
        if config.none_of_these_output:
            target = np.zeros((n_outliers, n + 1), np.float32)
            target[:, n] = 1.0
        else:
            target = np.full((n_outliers, n), 1 / n, np.float32)
        y_train = np.concatenate([y_train, target])
        w_train = np.concatenate([w_train, np.full(n_outliers, OUTLIER_WEIGHT * w_train.mean(), np.float32)])
    counts["outliers"] = n_outliers
    return x_train, y_train, w_train, counts


def _model(run: RunDir, data: Dataset, config: FitConfig, state: dict[str, Any] | None, *,
           x_train: np.ndarray | None = None):
    """The model to train, built where :func:`distribution_scope` says: the last checkpoint when
    resuming (``state``), else a new compiled network of ``config.architecture``, with the weights
    of ``config.init_from`` when given (an ONNX file's member gets the BatchNormalization
    statistics of the training curves ``x_train``, default all of ``data``: see
    :func:`training.onnx_keras.warm_start`)."""
    import keras

    from training.cnn import compile_model

    with distribution_scope():
        if state is not None:
            return keras.saving.load_model(run.checkpoints / "last.keras", safe_mode=True)
        model = compile_model(
            build_architecture(config.architecture, len(data.classes) + config.none_of_these_output,
                               data.x.shape[1], dropout=config.dropout, width=config.width),
            learning_rate=schedule(config)(0), steps_per_execution=config.steps_per_execution,
        )
        if config.warm_start_file:
            from training.onnx_keras import warm_start

            warm_start(model, config.init_from, data.x[:, :, None] if x_train is None else x_train,
                       member=config.init_member)
        elif config.init_from is not None:
            with warnings.catch_warnings():  # the earlier run's optimizer state is not wanted: a fresh Adam
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(RunDir(config.init_from).checkpoints / "best.weights.h5")
        return model


#: Settings a run started from another run's weights must share with it.
INIT_FROM_SETTINGS = ("architecture", "width", "dropout", "outlier_target")


def check_init_from(source: RunDir, data: Dataset, config: FitConfig, split: Split) -> None:
    """Refuse to start from ``source``'s weights unless they fit this run: its best weights exist,
    its network is the same (:data:`INIT_FROM_SETTINGS`, classes) and so is its split, so that
    no validation or test curve of this run was ever trained on."""
    weights = source.checkpoints / "best.weights.h5"
    if not weights.is_file():
        raise FileNotFoundError(f"--init-from {source.path}: no checkpoints/best.weights.h5 to start from")
    previous = json.loads(source.config_file.read_text())
    if previous.get("classes") != list(data.classes):
        raise ValueError(f"--init-from {source.path}: trained on classes {previous.get('classes')}, "
                         f"this dataset has {list(data.classes)}")
    for name in INIT_FROM_SETTINGS:
        if previous.get(name) != getattr(config, name):
            raise ValueError(f"--init-from {source.path}: its {name} is {previous.get(name)!r}, this run's "
                             f"{getattr(config, name)!r}; a run starts only from the same network")
    theirs = source.split(len(data))
    if any(not np.array_equal(getattr(theirs, part), getattr(split, part)) for part in ("train", "validation", "test")):
        raise ValueError(f"--init-from {source.path}: its split of this dataset differs from this run's "
                         "(another --seed or dataset): its weights have seen this run's validation or test curves")


def _run_record(data: Dataset, config: FitConfig, split: Split, *, history: dict[str, list[float]], best_epoch: int,
                epochs_run: int, weights: dict[int, float], counts: dict[str, int], more: Dataset | None,
                source: str | Path | None, seconds: float, teacher: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``history.json``: the epochs, the settings, the split's sizes, the data,
    the teacher (:func:`training.distil.teacher_record`), the deviations from the reference recipe
    and the environment."""
    import keras

    from training.onnx_keras import warm_start_record

    return {
        "history": history,
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "stopped_early": epochs_run < config.epochs,
        "classes": list(data.classes),
        "class_weights": {str(c): weights[i] for i, c in enumerate(data.classes)},
        "config": asdict(config),
        "outlier_exposure": {"rows": counts["outliers"], "weight": OUTLIER_WEIGHT, "target": config.outlier_target}
        if counts["outliers"] else None,
        "more": {"rows": counts["more"], "dropped_held_out": counts["more_dropped"], "description": more.description}
        if more is not None else None,
        "split": {"train": len(split.train), "validation": len(split.validation), "test": len(split.test),
                  "by_structure": data.groups is not None},
        "data": {"path": str(Path(source).resolve()) if source else None, "description": data.description, "n_rows": len(data), "counts": {str(k): v for k, v in data.class_counts().items()},
                 "grid": data.grid.as_dict()},
        "architecture": config.architecture,
        **({"warm_start": warm_start_record(config.init_from, config.init_member)} if config.warm_start_file else {}),
        **({"teacher": teacher} if teacher is not None else {}),
        "deviations": [
            f"early stopping min_delta={config.min_delta} on val_accuracy (the reference's min_delta=0.5 "
            "on 'val_acc' would stop every run after 10 epochs)",
            "validation set is a stratified (by-structure when known) 20% of the training part, "
            "not Keras' validation_split (which takes the last rows unshuffled)",
        ],
        "seconds_this_session": seconds,
        "environment": {"python": platform.python_version(), "keras": keras.__version__,
                        "backend": _backend(), "devices": _devices()},
    }


def _joined(parts: list[Dataset]) -> Dataset:
    """One dataset of the rows of ``parts`` (several ``--outliers`` or ``--more`` sets): labels
    kept, split groups kept when every part has them, descriptions joined."""
    if len(parts) == 1:
        return parts[0]
    y = np.concatenate([p.y for p in parts])
    groups = np.concatenate([p.groups for p in parts]) if all(p.groups is not None for p in parts) else None
    return Dataset(x=np.concatenate([p.x for p in parts]), y=y, groups=groups,
                   classes=tuple(int(c) for c in np.unique(y)),
                   info={"description": "; ".join(p.description for p in parts)})


def _devices() -> list[str]:
    """Names of the devices the backend trains on."""
    if _backend() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices()]
    if _backend() == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    return [_backend()]


# --------------------------------------------------------------------------- command


def fit_command(
    data: Path = typer.Argument(..., help="Dataset directory (x.csv, y.csv, size_sg.csv[, manifest.csv]) or .npz."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory for model.keras, history.json, checkpoints."),
    epochs: int = typer.Option(100, help="Maximum number of epochs."),
    batch_size: int = typer.Option(32, "--batch-size", help="Mini-batch size."),
    validation_split: float = typer.Option(0.2, help="Fraction of the training part held out for validation."),
    test_size: float = typer.Option(0.2, help="Fraction of the data held out as test set."),
    seed: int = typer.Option(0, help="Seed of the split and of the weight initialisation."),
    init_seed: Optional[int] = typer.Option(
        None, "--init-seed", help="Another seed for the weight initialisation and shuffling only (same split as --seed)."
    ),
    patience: int = typer.Option(10, help="Early-stopping patience (epochs without validation-accuracy gain)."),
    min_delta: float = typer.Option(MIN_DELTA, help="Smallest validation-accuracy gain that counts."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    outliers: list[Path] = typer.Option(
        [], "--outliers", help="Dataset of other space groups for outlier exposure (see --outlier-target). Repeatable."
    ),
    more: list[Path] = typer.Option(
        [], "--more", help="Dataset of more in-class curves (e.g. more symmetry-preserving variants, another "
        "--seed, or synthetic crystals) added to the training part; rows of structures in the validation or test "
        "part are dropped. Repeatable."
    ),
    outlier_target: str = typer.Option(
        "uniform", "--outlier-target", help="uniform: outlier rows are taught equal probabilities for every class; "
        "other: an extra 'none of these' output, left as the remainder (class probabilities sum to less than 1)."
    ),
    threads: int = typer.Option(0, help="CPU threads for TensorFlow (0: TensorFlow's default)."),
    steps_per_execution: int = typer.Option(
        1, "--steps-per-execution", help="Mini-batches per compiled call (same updates; faster on a GPU)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines."),
    class_weighting: str = typer.Option(
        "balanced", "--class-weights", help="balanced: total/count per class (the reference recipe); sqrt: its square "
        "root; none: equal weights."
    ),
    architecture: str = typer.Option(
        "reference", "--architecture", help="reference: the CNN of Liu et al. (training/cnn.py) and its recipe; "
        "compact: the staged CNN of training/compact.py, with a schedule scaled to --epochs; resnet: the 1D ResNet "
        "with global pooling of training/resnet.py, on the compact schedule."
    ),
    dropout: float | None = typer.Option(
        None, "--dropout", help="Dropout rate before the dense layers of the compact network or the ResNet (default 0.5, as the reference)."
    ),
    width: int | None = typer.Option(
        None, "--width", help="Multiplier of the filters and dense units of the compact network or the ResNet (default 1)."
    ),
    init_from: Optional[Path] = typer.Option(
        None, "--init-from", help="Start from the best weights of this earlier run (same network, classes and split), "
        "or from an exported MODEL.onnx (e.g. the shipped sgmine/data/model.onnx; same network and classes), "
        "and train on, e.g. with more data, at 1e-4 for the first half of --epochs and 1e-5 after."
    ),
    member: Optional[int] = typer.Option(
        None, "--member", help="Which network of an --init-from ONNX ensemble to start from (0-based)."
    ),
    teacher: Optional[Path] = typer.Option(
        None, "--teacher", help="Distil an exported MODEL.onnx (e.g. the shipped ensemble): every training row is "
        "trained towards --teacher-weight x the mean of its members' probabilities + the rest x its label "
        "(training/distil.py); validation keeps the labels. The teacher's probabilities are cached in "
        "$SGMINE_CACHE/teacher/."
    ),
    teacher_weight: float = typer.Option(
        0.5, "--teacher-weight", help="The teacher's share of each training target, 0-1 (with --teacher)."
    ),
) -> None:
    """Train the space-group CNN on DATA and write the run to --out."""
    try:
        config = FitConfig(
            epochs=epochs, batch_size=batch_size, validation_split=validation_split, test_size=test_size, seed=seed,
            patience=patience, min_delta=min_delta, verbose=0 if quiet else 2,
            steps_per_execution=steps_per_execution, architecture=architecture, init_seed=init_seed,
            class_weighting=class_weighting, dropout=dropout, width=width, outlier_target=outlier_target,
            init_from=None if init_from is None else str(init_from), init_member=member,
            teacher=None if teacher is None else str(teacher), teacher_weight=teacher_weight,
        )
        dataset = read_dataset(data)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    configure_threads(threads)
    typer.echo(
        f"{len(dataset)} curves, {len(dataset.classes)} classes {list(dataset.classes)}; "
        f"split {'by structure' if dataset.groups is not None else 'by row'}"
    )
    try:
        outlier_data = _joined([read_dataset(p) for p in outliers]) if outliers else None
        more_data = _joined([read_dataset(p) for p in more]) if more else None
        result = fit(dataset, out, config, resume=resume, source=data, outliers=outlier_data, more=more_data)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    val = result.history.get("val_accuracy", [float("nan")])
    typer.echo(
        f"{result.epochs_run} epochs in {result.seconds:.0f} s; best epoch {result.best_epoch + 1} "
        f"(validation accuracy {max(val):.3f}); model: {result.model_path}"
    )
