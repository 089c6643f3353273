"""Evaluate a trained CNN on its test set: figures a person reads, and plots they look at.

``sgmine-train evaluate RUN DATA`` writes into ``RUN/report/``:

- ``report.json``: test loss, top-1/2/3 accuracy, per-class precision/recall/F1, confusion
  matrix, and the logistic-regression baseline on the same split;
- ``report.md``: the same as tables;
- ``training_curves.png``, ``confusion_matrix.png``, ``class_proportions.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer

from sgmine.files import atomic_write
from training.datafiles import Dataset, read_dataset
from training.metrics import score_report
from training.run import RunDir

# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Loss, accuracy, top-2 accuracy (training and validation) and learning rate per epoch."""
    plt = _pyplot()
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    panels = [("loss", "loss"), ("accuracy", "accuracy"), ("top2_accuracy", "top-2 accuracy"), ("learning_rate", "learning rate")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (key, title) in zip(axes, panels):
        if key in history:
            ax.plot(epochs, history[key], label="training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        if key == "learning_rate":
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if key != "learning_rate":
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true group down, predicted across) with counts written in."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 10 else 45, ha="center")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="fraction of true group")
    ax.set_title(title or "confusion matrix (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_class_proportions(counts: dict[int, int], path: Path) -> Path:
    """Pie chart of how many curves each space group has in the dataset."""
    from training.symbols import hm_symbol

    plt = _pyplot()
    groups = [g for g, n in counts.items() if n > 0]
    sizes = [counts[g] for g in groups]
    labels = [f"{g} {hm_symbol(g)}" for g in groups]
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.pie(sizes, labels=labels if len(groups) <= 20 else None, autopct="%1.1f%%" if len(groups) <= 20 else None,
           startangle=90, counterclock=False)
    ax.set_title(f"class proportions ({sum(sizes)} curves)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- evaluation


def evaluate_run(run_dir: Path, data: Dataset, out: Path | None = None, baseline: bool = True) -> dict[str, Any]:
    """Score ``run_dir/model.keras`` on the run's test rows of ``data``; write the report; return it."""
    from training.cnn import compile_model
    from training.fit import one_hot
    from training.symbols import hm_symbols

    run = RunDir(run_dir)
    out = Path(out) if out is not None else run.report
    out.mkdir(parents=True, exist_ok=True)
    record = run.history()
    classes = run.check_classes(data.classes)
    split = run.split(len(data))

    model = compile_model(run.load_keras())
    x_test, y_test = data.x[split.test][:, :, None], data.y[split.test]
    keras_scores = model.evaluate(x_test, one_hot(y_test, classes), verbose=0, return_dict=True)
    proba = model.predict(x_test, verbose=0)
    report = score_report(y_test, proba, classes)
    report["test_loss"] = float(keras_scores["loss"])  # cross-entropy + L2 penalties, as Keras reports it
    report["classes"] = list(classes)
    report["symbols"] = list(hm_symbols(classes))
    report["best_epoch"] = int(record["best_epoch"]) + 1
    report["epochs_run"] = int(record["epochs_run"])
    report["batch_size"] = int(record["config"]["batch_size"])
    report["split"] = record["split"]
    if record.get("members"):
        report["members"] = [Path(m).name for m in record["members"]]

    if baseline:
        from training.baseline import run_baseline

        saved = run.baseline_file
        if saved.is_file():
            report["baseline"] = json.loads(saved.read_text())
        else:
            report["baseline"] = run_baseline(data, run.path)
            atomic_write(saved, json.dumps(report["baseline"], indent=2))

    labels = [f"{c} {s}" for c, s in zip(classes, report["symbols"])]
    plot_training_curves(record["history"], out / "training_curves.png")
    plot_confusion_matrix(report["confusion_matrix"], labels, out / "confusion_matrix.png")
    plot_class_proportions(data.class_counts(), out / "class_proportions.png")
    atomic_write(out / "report.json", json.dumps(report, indent=2))
    atomic_write(out / "report.md", markdown_report(report, data.description))
    return report


def markdown_report(report: dict[str, Any], description: str) -> str:
    """The evaluation as Markdown tables (CNN beside the baseline, then per class)."""
    lines = [
        "# Evaluation",
        "",
        f"Data: {description}. Test set: {report['n_test']} curves "
        f"({'split by structure' if report['split'].get('by_structure') else 'split by row'}).",
        (f"Training: the average of the runs {', '.join(report['members'])} (their own histories are in their run "
         f"folders; the curves below are {report['members'][0]}'s)."
         if report.get("members") else
         f"Training: {report['epochs_run']} epochs, batch {report['batch_size']}, best epoch {report['best_epoch']}."),
        "",
        f"CNN test loss as Keras reports it (cross-entropy + L2 penalties): {report['test_loss']:.4f}.",
        "",
        "| model | cross-entropy | top-1 | top-2 | top-3 |",
        "|---|---|---|---|---|",
    ]
    rows = [("CNN", report)] + ([("logistic regression", report["baseline"])] if "baseline" in report else [])
    for name, r in rows:
        lines.append(
            f"| {name} | {r['cross_entropy']:.4f} | {r['top1_accuracy']:.4f} | {r['top2_accuracy']:.4f} "
            f"| {r['top3_accuracy']:.4f} |"
        )
    lines += ["", "| group | symbol | precision | recall | F1 | test curves |", "|---|---|---|---|---|---|"]
    for (group, row), symbol in zip(report["per_class"].items(), report["symbols"]):
        lines.append(
            f"| {group} | {symbol} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    lines += [
        "",
        "![training curves](training_curves.png)",
        "![confusion matrix](confusion_matrix.png)",
        "![class proportions](class_proportions.png)",
        "",
    ]
    return "\n".join(lines)


def evaluate_command(
    run: Path = typer.Argument(..., help="Run directory written by `sgmine-train fit`."),
    data: Path = typer.Argument(None, help="The dataset the run was trained on (default: the one history.json names)."),
    out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: RUN/report)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also fit the logistic-regression baseline."),
    threads: int = typer.Option(0, help="CPU threads for TensorFlow (0: default)."),
) -> None:
    """Score the trained CNN on its test set; write report.json, report.md and PNG plots."""
    from training.fit import configure_threads

    run_dir = RunDir(run)
    for needed in (run_dir.model_file, run_dir.history_file, run_dir.split_file):
        if not needed.is_file():
            typer.echo(f"error: {run} has no {needed.name}; is it a `sgmine-train fit` run directory?", err=True)
            raise typer.Exit(1)
    if data is None:
        data = run_dir.history().get("data", {}).get("path")
        if not data:
            typer.echo(f"error: {run_dir.history_file} does not name its dataset; give DATA", err=True)
            raise typer.Exit(1)
        data = Path(data)
    try:
        dataset = read_dataset(data)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    configure_threads(threads)
    try:
        report = evaluate_run(run, dataset, out, baseline=baseline)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    folder = out or run_dir.report
    text = (
        f"CNN on {report['n_test']} test curves: loss {report['test_loss']:.4f}, top-1 {report['top1_accuracy']:.3f}, "
        f"top-2 {report['top2_accuracy']:.3f}, top-3 {report['top3_accuracy']:.3f}"
    )
    if "baseline" in report:
        text += f"; logistic regression top-1 {report['baseline']['top1_accuracy']:.3f}"
    typer.echo(f"{text}\nreport: {folder / 'report.md'}")
