"""The conventional baseline the reference asks for: logistic regression on the same split.

Multinomial logistic regression (scikit-learn) on the 209 grid values, standardised, with
class weights inversely proportional to class size (as the CNN's), trained on the CNN's
training + validation rows and scored on the same test rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from sgmine.files import atomic_write
from training.datafiles import Dataset, read_dataset
from training.metrics import score_report


def fit_baseline(x: np.ndarray, y: np.ndarray, seed: int = 0, max_iter: int = 1000):
    """Fit standardisation + multinomial logistic regression; return the scikit-learn pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=max_iter, class_weight="balanced", random_state=seed),
    )
    model.fit(np.asarray(x, dtype=np.float64), np.asarray(y))
    return model


def run_baseline(data: Dataset, run_dir: Path | None, seed: int = 0, test_size: float = 0.2) -> dict[str, Any]:
    """Fit the baseline on the training rows and return its test metrics (see :func:`training.metrics.score_report`).

    The split comes from ``run_dir/split.npz`` when a CNN run is given, so both models see the
    same test set; otherwise it is made here with the same function and seed as ``fit``.
    """
    from training.fit import FitConfig
    from training.run import RunDir, make_split

    if run_dir is not None and RunDir(run_dir).has_split():
        split = RunDir(run_dir).split(len(data))
    else:
        split = make_split(data, FitConfig(seed=seed, test_size=test_size))
    train = np.concatenate([split.train, split.validation])
    start = time.perf_counter()
    model = fit_baseline(data.x[train], data.y[train], seed=seed)
    seconds = time.perf_counter() - start
    proba = np.zeros((len(split.test), len(data.classes)))
    fitted = [int(c) for c in model.classes_]
    proba[:, [data.classes.index(c) for c in fitted]] = model.predict_proba(data.x[split.test])
    result = score_report(data.y[split.test], proba, data.classes)
    result["model"] = "StandardScaler + LogisticRegression(class_weight='balanced')"
    result["train_rows"] = int(len(train))
    result["fit_seconds"] = seconds
    return result


def baseline_command(
    data: Path = typer.Argument(..., help="Dataset directory or .npz (the one the CNN was trained on)."),
    run: Path = typer.Option(None, "--run", help="CNN run directory: reuse its split (split.npz)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write baseline.json here (default: the run directory)."),
    seed: int = typer.Option(0, help="Split seed when no --run is given."),
    test_size: float = typer.Option(0.2, help="Test fraction when no --run is given."),
) -> None:
    """Fit logistic regression on the CNN's training rows and report test accuracy beside the CNN's."""
    try:
        dataset = read_dataset(data)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    result = run_baseline(dataset, run, seed=seed, test_size=test_size)
    folder = out or run or Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "baseline.json", json.dumps(result, indent=2))
    typer.echo(
        f"logistic regression on {result['n_test']} test curves: top-1 {result['top1_accuracy']:.3f}, "
        f"top-2 {result['top2_accuracy']:.3f}, top-3 {result['top3_accuracy']:.3f} "
        f"(fit {result['fit_seconds']:.1f} s); wrote {folder / 'baseline.json'}"
    )
