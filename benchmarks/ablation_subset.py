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

``--outside-held-out-of RUN DATASET`` drops the rows whose split group is in the validation or
test part of RUN's split of DATASET: training rows for another model (e.g. one over the 45
groups) that must not see the structures RUN is judged on:

    python benchmarks/ablation_subset.py datasets/sg45 datasets/sg45_v5train \
        --outside-held-out-of runs/m4 datasets/v5 --exclude-overlap datasets/ood_heldout5

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


def _split_of(run: Path, base: Path):
    """RUN's split of the dataset ``base`` and that dataset's split group per row."""
    from training.datafiles import read_dataset
    from training.run import RunDir

    based = read_dataset(base)
    if based.groups is None:
        raise SystemExit(f"{base}: no manifest, so no split groups to match")
    return RunDir(run).split(len(based)), based.groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("where", nargs="*", help="COLUMN=VALUE or COLUMN!=VALUE conditions on manifest.csv (all must hold)")
    parser.add_argument("--exclude-overlap", type=Path, action="append", default=[], metavar="DATASET",
                        help="drop rows whose structure_id or formula is in DATASET's manifest (repeatable)")
    parser.add_argument("--test-of", type=Path, nargs=2, metavar=("RUN", "DATASET"),
                        help="keep only rows whose split group is in the test part of RUN's split of DATASET")
    parser.add_argument("--outside-held-out-of", type=Path, nargs=2, metavar=("RUN", "DATASET"),
                        help="drop rows whose split group is in the validation or test part of RUN's split of DATASET")
    args = parser.parse_args(argv)
    if not args.where and not args.test_of and not args.outside_held_out_of:
        parser.error("give a condition, --test-of or --outside-held-out-of")

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
    selection = list(args.where)
    if args.test_of:
        split, groups = _split_of(*args.test_of)
        keep &= np.isin(all_groups, groups[split.test])
        selection.append(f"in the test part of {args.test_of[0]}'s split of {args.test_of[1]}")
    if args.outside_held_out_of:
        split, groups = _split_of(*args.outside_held_out_of)
        held_out = np.concatenate([groups[split.validation], groups[split.test]])
        inside = keep & np.isin(all_groups, held_out)
        print(f"{int(inside.sum())} matching rows are held out by {args.outside_held_out_of[0]}; dropped")
        keep &= ~inside
        selection.append(f"outside the validation and test parts of {args.outside_held_out_of[0]}'s split of "
                         f"{args.outside_held_out_of[1]}")
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
