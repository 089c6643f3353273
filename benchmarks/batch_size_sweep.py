"""What does the batch size do to training? Short runs of the CNN at several batch sizes.

The reference asks this question; this script answers it with measurements on a dataset:
for each batch size it trains the CNN with the usual recipe (same split, class weights,
learning-rate steps, early stopping) for at most ``--epochs`` epochs and prints

- seconds per epoch (wall clock, this machine),
- epochs run and the best epoch (early stopping),
- best validation accuracy, and top-1/top-2 accuracy and loss on the test set.

Usage::

    python benchmarks/batch_size_sweep.py DATA --epochs 20 --batch-sizes 16,32,64,128,256 \
        --out /tmp/sweep [--threads 2]

Writes ``sweep.json`` and ``sweep.png`` (accuracy and time against batch size) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset directory or .npz")
    parser.add_argument("--epochs", type=int, default=20, help="maximum epochs per run (default 20)")
    parser.add_argument("--batch-sizes", default="16,32,64,128,256", help="comma-separated batch sizes")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sgmine-batch-sweep"), help="run folders and results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow CPU threads (0: default)")
    parser.add_argument("--steps-per-execution", type=int, default=1, help="mini-batches per compiled call (GPU)")
    args = parser.parse_args(argv)

    from training.datafiles import read_dataset
    from training.fit import FitConfig, configure_threads, fit
    from training.metrics import score_report
    from training.run import RunDir

    configure_threads(args.threads)
    import keras

    data = read_dataset(args.data)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(f"{len(data)} curves, {len(data.classes)} classes; up to {args.epochs} epochs per batch size", flush=True)
    rows = []
    for batch in sizes:
        run = args.out / f"batch-{batch}"
        config = FitConfig(epochs=args.epochs, batch_size=batch, seed=args.seed, verbose=0,
                           steps_per_execution=args.steps_per_execution)
        start = time.perf_counter()
        result = fit(data, run, config)
        wall = time.perf_counter() - start
        split = RunDir(run).split(len(data))
        model = RunDir(run).load_keras(compile=True)
        proba = model.predict(data.x[split.test][:, :, None], batch_size=256, verbose=0)
        scores = score_report(data.y[split.test], proba, data.classes)
        h = result.history
        row = {
            "batch_size": batch,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch + 1,
            "seconds_per_epoch": float(np.median(h["seconds"])),
            "seconds_total": wall,
            "best_val_accuracy": float(max(h["val_accuracy"])),
            "final_train_loss": float(h["loss"][-1]),
            "test_cross_entropy": scores["cross_entropy"],
            "test_top1": scores["top1_accuracy"],
            "test_top2": scores["top2_accuracy"],
        }
        rows.append(row)
        print(_format_row(row), flush=True)
        keras.backend.clear_session()

    print()
    print(_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps({"data": str(args.data), "n_rows": len(data), "epochs": args.epochs,
                                                     "rows": rows}, indent=2))
    _plot(rows, args.out / "sweep.png")
    print(f"\nwrote {args.out / 'sweep.json'} and {args.out / 'sweep.png'}")
    return 0


def _format_row(row: dict) -> str:
    return (
        f"batch {row['batch_size']:>4}: {row['epochs_run']:>3} epochs (best {row['best_epoch']:>3}), "
        f"{row['seconds_per_epoch']:6.2f} s/epoch, val acc {row['best_val_accuracy']:.3f}, "
        f"test top-1 {row['test_top1']:.3f}, top-2 {row['test_top2']:.3f}"
    )


def _table(rows: list[dict]) -> str:
    head = "| batch | epochs (best) | s/epoch | total s | best val acc | test top-1 | test top-2 | test CE | train loss |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['epochs_run']} ({r['best_epoch']}) | {r['seconds_per_epoch']:.2f} | "
            f"{r['seconds_total']:.0f} | {r['best_val_accuracy']:.3f} | {r['test_top1']:.3f} | {r['test_top2']:.3f} | "
            f"{r['test_cross_entropy']:.3f} | {r['final_train_loss']:.3f} |"
        )
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = [r["batch_size"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(b, [r["test_top1"] for r in rows], "o-", label="test top-1")
    ax1.plot(b, [r["test_top2"] for r in rows], "s-", label="test top-2")
    ax1.plot(b, [r["best_val_accuracy"] for r in rows], "^--", label="best validation")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("accuracy")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(b, [r["seconds_per_epoch"] for r in rows], "o-")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("batch size")
    ax2.set_ylabel("seconds per epoch")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
