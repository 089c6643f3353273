"""Write the rows of a dataset whose manifest matches ``COLUMN=VALUE`` (or ``COLUMN!=VALUE``) as a new dataset.

    python benchmarks/ablation_subset.py datasets/v5 datasets/v5_originals variant=0

keeps, e.g., only the original structures of a build with ``--variants`` (what the variants add
is then the difference between a model trained on each), and ``variant!=0`` only the variants
(extra training rows for ``sgmine-train fit --more``). ``--exclude-overlap DATASET`` also drops
every row whose structure id or formula appears in DATASET's manifest, so that a subset used for
training stays disjoint from a held-out evaluation set built from the same tables:

    python benchmarks/ablation_subset.py datasets/sg45 datasets/outliers_sg45 variant=0 \
        --exclude-overlap datasets/ood_heldout5

``--test-of RUN DATASET`` keeps only the rows whose split group is in the test part of RUN's
split of DATASET: the held-out rows of a ``--more`` dataset (fit drops those from training), to
score with ``eval_measured.py --held-out``:

    python benchmarks/ablation_subset.py datasets/neutron_neg datasets/neutron_neg_test \
        --test-of runs/m4 datasets/v5

The new folder holds ``dataset.npz``, ``dataset.json`` and ``manifest.csv`` (no x.csv:
``sgmine-train fit`` reads the .npz).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np


def _condition(text: str) -> tuple[str, str, bool]:
    """``(column, value, equal)`` of ``COLUMN=VALUE`` (equal) or ``COLUMN!=VALUE`` (not equal)."""
    if "!=" in text:
        column, value = text.split("!=", 1)
        return column, value, False
    if "=" not in text:
        raise SystemExit(f"condition {text!r}: expected COLUMN=VALUE or COLUMN!=VALUE")
    column, value = text.split("=", 1)
    return column, value, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("where", nargs="*", help="COLUMN=VALUE or COLUMN!=VALUE conditions on manifest.csv (all must hold)")
    parser.add_argument("--exclude-overlap", type=Path, action="append", default=[], metavar="DATASET",
                        help="drop rows whose structure_id or formula is in DATASET's manifest (repeatable)")
    parser.add_argument("--test-of", type=Path, nargs=2, metavar=("RUN", "DATASET"),
                        help="keep only rows whose split group is in the test part of RUN's split of DATASET")
    args = parser.parse_args(argv)
    if not args.where and not args.test_of:
        parser.error("give a condition or --test-of")

    from training.datafiles import read_dataset

    data = read_dataset(args.source)
    with open(args.source / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    conditions = [_condition(c) for c in args.where]
    keep = np.array([all((row.get(k) == v) == equal for k, v, equal in conditions) for row in manifest])
    for other in args.exclude_overlap:
        with open(other / "manifest.csv", newline="") as fh:
            held = list(csv.DictReader(fh))
        ids, formulas = {r["structure_id"] for r in held}, {r["formula"] for r in held}
        overlap = np.array([row["structure_id"] in ids or row["formula"] in formulas for row in manifest])
        print(f"{int((keep & overlap).sum())} matching rows overlap {other}; dropped")
        keep &= ~overlap
    all_groups = np.array([row.get("split_group") or row["structure_id"] for row in manifest])
    if args.test_of:
        from training.run import RunDir

        run, base = args.test_of
        based = read_dataset(base)
        if based.groups is None:
            raise SystemExit(f"{base}: no manifest, so no split groups to match")
        test_groups = np.unique(based.groups[RunDir(run).split(len(based)).test])
        keep &= np.isin(all_groups, test_groups)
    selection = [*args.where] + ([f"in the test part of {args.test_of[0]}'s split of {args.test_of[1]}"] if args.test_of else [])
    if not keep.any():
        print(f"no rows match {selection}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    groups = all_groups[keep]
    np.savez_compressed(
        args.out / "dataset.npz", x=data.x[keep], y=data.y[keep], split_group=groups,
        structure_id=np.array([row["structure_id"] for row in manifest])[keep],
        classes=np.array(data.classes, dtype=np.int32), r=data.grid.r,
    )
    info = dict(data.info)
    excluded = "".join(f"; no structure or formula of {p}" for p in args.exclude_overlap)
    info["description"] = f"{info.get('description', args.source)}; rows where {' and '.join(selection)}{excluded}"
    info["n_rows"] = int(keep.sum())
    (args.out / "dataset.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(manifest[0]))
        writer.writeheader()
        writer.writerows(row for row, k in zip(manifest, keep) if k)
    print(f"wrote {int(keep.sum())} of {len(keep)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
