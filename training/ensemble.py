"""An ensemble of trained runs as one run: the members' probabilities averaged in one Keras model.

``sgmine-train ensemble RUN1 RUN2 ... --out RUN``

Members must be trained on the same data with the same split (``fit --init-seed`` gives them
different initialisations on one split), so that the ensemble's test rows are unseen by every
member. The new run directory holds ``model.keras`` (input → each member → average), a copy of
the split and a ``history.json`` naming the members; the later steps (evaluate, calibrate,
export) treat it like any run. Averaging the members' softmax outputs is the plain ensemble of
Lakshminarayanan et al. (2017): usually a little more accurate than each member and better at
saying "not sure" on inputs unlike the training data, where the members disagree.

``--outside RUN45 --outside-weight W`` adds a network over more classes (e.g. ``sg45``'s 45
groups, which include the eight) as a share ``W`` of the output: its probabilities of the
ensemble's classes are mixed in, and what it gives to its other classes joins the remainder,
"none of these". A crystal of a group the members never saw as a class then gets the outside
network's vote for that group as doubt. The outside run must not have trained on the ensemble's
validation or test structures (checked on the split groups of both runs' datasets; build its
data with ``benchmarks/ablation_subset.py --outside-held-out-of``), or the flag's threshold and
test figures would be set on curves it has seen.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from sgmine.files import atomic_save, atomic_write
from training.run import RunDir


class EnsembleError(ValueError):
    """Runs that cannot be averaged (other classes, grid or split)."""


def _check_members(runs: list[RunDir]) -> tuple[tuple[int, ...], dict]:
    """The common class order and the first member's history; EnsembleError when members differ."""
    if len(runs) < 2:
        raise EnsembleError("an ensemble needs at least two runs")
    histories = [run.history() for run in runs]
    classes = [tuple(h.get("classes") or ()) for h in histories]
    if len(set(classes)) != 1 or not classes[0]:
        raise EnsembleError(f"the runs have different classes: {[list(c) for c in classes]}")
    splits = []
    for run in runs:
        with np.load(run.split_file) as s:
            splits.append({k: s[k] for k in ("train", "validation", "test", "n_rows")})
    for run, split in zip(runs[1:], splits[1:]):
        if any(not np.array_equal(split[k], splits[0][k]) for k in split):
            raise EnsembleError(f"{run.path} was trained on another split than {runs[0].path}; "
                                "train members with the same --seed (and different --init-seed)")
    return classes[0], histories[0]


def build_ensemble(members: list, *, outside=None, columns: list[int] | None = None, outside_weight: float = 0.0):
    """A Keras model whose output is the mean of the ``members``' outputs (same input shape).

    With ``outside`` (a network over more classes), the output is ``(1 - outside_weight)`` times
    that mean plus ``outside_weight`` times the outside network's ``columns`` (its outputs of
    the members' classes, in their order); the rest of its probability is left to the remainder.
    """
    import keras

    inputs = keras.Input(shape=tuple(members[0].inputs[0].shape[1:]), name="pdf")
    outputs = [member(inputs) for member in members]
    for i, member in enumerate(members):
        member.name = f"member_{i}"
    if outside is None:
        return keras.Model(inputs, keras.layers.Average(name="probabilities")(outputs), name="sgmine_ensemble")
    if not 0 < outside_weight < 1:
        raise EnsembleError(f"the outside weight must be between 0 and 1, got {outside_weight}")
    outside.name = "outside"
    mean = keras.layers.Average(name="members_mean")(outputs)
    pick = keras.layers.Dense(len(columns), use_bias=False, trainable=False, name="outside_classes")
    picked = pick(outside(inputs))
    selection = np.zeros((outside.outputs[0].shape[-1], len(columns)), np.float32)
    selection[columns, np.arange(len(columns))] = 1.0
    pick.set_weights([selection])
    mixed = keras.layers.Add(name="probabilities")([
        keras.layers.Rescaling(1.0 - outside_weight, name="members_share")(mean),
        keras.layers.Rescaling(outside_weight, name="outside_share")(picked),
    ])
    return keras.Model(inputs, mixed, name="sgmine_ensemble")


def _split_groups(run: RunDir, parts: tuple[str, ...]) -> set[str]:
    """Split groups (composition and group) of the rows in ``parts`` of ``run``'s split
    (``"train"``, ``"validation"``, ``"test"``) of its dataset."""
    from training.datafiles import read_dataset

    path = _data_path(run)
    data = read_dataset(path)
    if data.groups is None:
        raise EnsembleError(f"{path} has no split groups (manifest.csv), so the outside run cannot be checked")
    split = run.split(len(data))
    return set(data.groups[np.concatenate([getattr(split, part) for part in parts])])


def _data_path(run: RunDir) -> Path:
    path = (run.history().get("data") or {}).get("path")
    if not path:
        raise EnsembleError(f"{run.path}/history.json does not name its dataset")
    return Path(path)


def check_outside(outside: RunDir, classes: tuple[int, ...], first: RunDir) -> list[int]:
    """The outside run's output columns of ``classes``; EnsembleError when it lacks one of them or
    trained on a structure of ``first``'s validation or test part."""
    outside_classes = list(outside.history().get("classes") or ())
    missing = [c for c in classes if c not in outside_classes]
    if missing:
        raise EnsembleError(f"{outside.path} has no output for space groups {missing}")
    seen = _split_groups(outside, ("train", "validation")) & _split_groups(first, ("validation", "test"))
    if seen:
        raise EnsembleError(f"{outside.path} trained on {len(seen)} structures of the members' validation or test part "
                            f"(e.g. {sorted(seen)[:3]}); build its data with ablation_subset.py --outside-held-out-of")
    return [outside_classes.index(c) for c in classes]


def ensemble_runs(
    runs: list[str | Path], out: str | Path, *, outside: str | Path | None = None, outside_weight: float = 0.25
) -> Path:
    """Write the run directory ``out`` holding the average of ``runs`` (mixed with the run
    ``outside`` at ``outside_weight``, see :func:`build_ensemble`); returns its model path."""
    if outside is not None and not 0 < outside_weight < 1:
        raise EnsembleError(f"the outside weight must be between 0 and 1, got {outside_weight}")
    members = [RunDir(Path(r)) for r in runs]
    classes, first = _check_members(members)
    extra = None
    if outside is not None:
        extra = RunDir(Path(outside))
        columns = check_outside(extra, classes, members[0])
    target = RunDir(Path(out))
    target.path.mkdir(parents=True, exist_ok=True)
    if extra is None:
        model = build_ensemble([m.load_keras() for m in members])
    else:
        model = build_ensemble([m.load_keras() for m in members], outside=extra.load_keras(), columns=columns,
                               outside_weight=outside_weight)
    atomic_save(lambda p: model.save(p), target.model_file)
    shutil.copyfile(members[0].split_file, target.split_file)
    history = {
        "classes": list(classes),
        "architecture": "ensemble of " + ", ".join(m.history().get("architecture", "reference") for m in members),
        "members": [str(m.path.resolve()) for m in members],
        **({} if extra is None else {"outside": {"run": str(extra.path.resolve()), "weight": outside_weight,
                                                 "classes": extra.history().get("classes")}}),
        "data": first.get("data"),
        "split": first.get("split"),
        "config": first.get("config"),
        "history": first.get("history", {}),
        "best_epoch": first.get("best_epoch"),
        "epochs_run": first.get("epochs_run"),
    }
    atomic_write(target.history_file, json.dumps(history, indent=2))
    return target.model_file


def ensemble_command(
    runs: list[Path] = typer.Argument(..., help="Run directories of the members (same data and split)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory for the ensemble."),
    outside: Optional[Path] = typer.Option(
        None, "--outside", help="A run over more classes (e.g. the 45 groups) whose probability of its other classes "
        "joins 'none of these'; it must not have trained on the members' validation or test structures."
    ),
    outside_weight: float = typer.Option(
        0.25, "--outside-weight", min=0.0, max=1.0, help="Share of the --outside run in the output (between 0 and 1)."
    ),
) -> None:
    """Average trained runs into one model (a run directory the later steps accept)."""
    try:
        path = ensemble_runs(runs, out, outside=outside, outside_weight=outside_weight)
    except (EnsembleError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    mixed = "" if outside is None else f", {outside_weight:g} of {outside}"
    typer.echo(f"wrote {path} (average of {len(runs)} runs{mixed})")
