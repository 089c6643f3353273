"""Evaluate ``sgmine identify`` on measured PDFs: is the best refined structure's space group
right, does the combined ranking beat the CNN alone, and how long do screening and the whole
identification take per file?

    python benchmarks/eval_identify.py [--library default] [--top 10] [--catalog ../shared/data/measured/catalog.csv]

Files: examples/data/Ni.gr (Fm-3m) and Si.gr (Fd-3m), and every file of the catalog (its
``space_group`` column is the truth; ``scored`` = yes marks the in-class files). Prints one line
per file and the top-1 rates of the best refined structure, the combined ranking and the CNN.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [(ROOT / "examples/data/Ni.gr", 225, "yes"), (ROOT / "examples/data/Si.gr", 227, "yes")]


def main(argv=None) -> int:
    from sgmine.scan import load_model
    from sgmine_diffpy.cli import _say
    from sgmine_diffpy.identify import identify_file, open_library

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", default="default")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--catalog", type=Path, default=ROOT.parent / "shared/data/measured/catalog.csv")
    parser.add_argument("--only", default="", help="substring: evaluate only the files whose name contains it")
    args = parser.parse_args(argv)
    files = list(EXAMPLES)
    if args.catalog.is_file():
        for row in csv.DictReader(args.catalog.open()):
            files.append((args.catalog.parent / row["file"], int(row["space_group"]), row["scored"]))
    files = [f for f in files if args.only in f[0].name]
    library = open_library(args.library, say=_say)
    model = load_model(None)
    tally = {}
    print("file\tscored\ttrue\tbest_structure\tbest_sg\tbest_rw\tcombined_top1\tcnn_top1\tscreen_s\ttotal_s")
    for path, truth, scored in files:
        rows, s = identify_file(str(path), library, top=args.top, model=model)
        best_sg = s.best.space_group if s.best else None
        comb = s.ranking[0][0] if s.ranking else None
        cnn = s.cnn[0][0] if s.cnn else None
        print(f"{path.name}\t{scored}\t{truth}\t{s.best.structure_id + ' ' + s.best.formula if s.best else s.message}\t{best_sg}\t"
              f"{'' if not s.best else f'{s.best.rw:.3f}'}\t{comb}\t{cnn}\t{s.screen_s:.1f}\t{s.total_s:.1f}", flush=True)
        for group in ("all", "in-class" if scored == "yes" else "other"):
            t = tally.setdefault(group, [0, 0, 0, 0])
            t[0] += 1
            t[1] += best_sg == truth
            t[2] += comb == truth
            t[3] += cnn == truth
    for group, (n, b, c, k) in tally.items():
        print(f"{group}: {n} files; top-1 right: best refined {b}/{n}, combined {c}/{n}, CNN {k}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
