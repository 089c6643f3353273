"""Scoring speed of several ONNX models side by side, on the same curves, in one process.

    python benchmarks/compare_scoring.py sgmine/data/model.onnx runs/m1/m1.onnx [--n 4096] [--repeats 3]

Prints PDFs/s of each (best of ``--repeats`` passes, models interleaved so that a busy machine
slows all of them alike) and each model's speed relative to the first.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--n", type=int, default=4096, help="curves per pass")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from sgmine.model import Model

    models = [Model(path) for path in args.models]
    best = [float("inf")] * len(models)
    for _ in range(args.repeats):
        for i, model in enumerate(models):
            x = np.random.default_rng(0).random((args.n, model.grid.npoints)).astype(np.float32)
            start = time.perf_counter()
            model.predict_proba(x)
            best[i] = min(best[i], time.perf_counter() - start)
    for model, seconds in zip(models, best):
        print(f"{model.path} ({model.info.model_version}): {args.n / seconds:.0f} PDFs/s, "
              f"{best[0] / seconds:.2f}x the first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
