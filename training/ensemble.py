"""An ensemble of trained runs as one run: the members' probabilities averaged in one Keras model.

``sgmine-train ensemble RUN1 RUN2 ... --out RUN``

Members must be trained on the same data with the same split (``fit --init-seed`` gives them
different initialisations on one split), so that the ensemble's test rows are unseen by every
member. The new run directory holds ``model.keras`` (input → each member → average), a copy of
the split and a ``history.json`` naming the members; the later steps (evaluate, calibrate,
export) treat it like any run. Averaging the members' softmax outputs is the plain ensemble of
Lakshminarayanan et al. (2017): usually a little more accurate than each member and better at
saying "not sure" on inputs unlike the training data, where the members disagree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def build_ensemble(members: list):
    """A Keras model whose output is the mean of the ``members``' outputs (same input shape)."""
    import keras

    inputs = keras.Input(shape=tuple(members[0].inputs[0].shape[1:]), name="pdf")
    outputs = [member(inputs) for member in members]
    for i, member in enumerate(members):
        member.name = f"member_{i}"
    mean = keras.layers.Average(name="probabilities")(outputs)
    return keras.Model(inputs, mean, name="sgmine_ensemble")


def ensemble_runs(runs: list[str | Path], out: str | Path) -> Path:
    """Write the run directory ``out`` holding the average of ``runs``; returns its model path."""
    members = [RunDir(Path(r)) for r in runs]
    classes, first = _check_members(members)
    target = RunDir(Path(out))
    target.path.mkdir(parents=True, exist_ok=True)
    model = build_ensemble([m.load_keras() for m in members])
    atomic_save(lambda p: model.save(p), target.model_file)
    shutil.copyfile(members[0].split_file, target.split_file)
    history = {
        "classes": list(classes),
        "architecture": "ensemble of " + ", ".join(m.history().get("architecture", "reference") for m in members),
        "members": [str(m.path.resolve()) for m in members],
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
) -> None:
    """Average trained runs into one model (a run directory the later steps accept)."""
    try:
        path = ensemble_runs(runs, out)
    except (EnsembleError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {path} (average of {len(runs)} runs)")
