"""Evaluate ``sgmine identify`` on measured PDFs: is the best refined structure's space group
right, is the combined ranking right at top-1 and better than the CNN alone, and how long do
screening and the whole identification take per file?

    python benchmarks/eval_identify.py [--library default] [--top 10] [--json docs/identify/eval_identify.json]
                                       [--no-compositions]

Compositions: each file's, as a user passes them with ``--compositions`` (the ``compositions.csv``
beside the measured catalog, and ``../shared/data/experimental/compositions.csv`` for the
shipped examples); ``--no-compositions`` measures identify without them (headers' own
compositions still count, as for a user who gives none).

Files: the shipped examples (Ni, Si in class; the CdSe nanoparticle, P6_3mc, out of class) and
every file of ``../shared/data/measured/catalog.csv``, labelled as
``benchmarks/eval_measured.py`` does (in class: the true group is one of the model's classes;
ood: another group; no: not scored, e.g. RMCProfile normalisation). The catalog's radiation
column stands in for ``--radiation`` (what the user would say): it is used only where the
file's header does not say. Nothing here tunes anything; the ranking rule is
:func:`sgmine_diffpy.ranking.combined_ranking` as shipped.

Prints one line per file (truth; the best refined structure, i.e. the plausible fit of lowest
Rw, its group and Rw; the combined ranking's and the CNN's top-1; screening and total seconds;
``+`` right, ``-`` wrong), then the top-1 counts per set (in class, out of class, not scored),
what the ranking would give with the fitting groups ordered by Rw alone (``within="rw"``) on
the same fits, and the timings, and writes the
per-file details (every refined structure, the CNN's probabilities, the ranking) to ``--json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_measured import measured_files  # noqa: E402

DEFAULT_JSON = ROOT / "docs" / "identify" / "eval_identify.json"


def catalog_radiation(measured_dir: Path) -> dict[str, str]:
    """File name → ``xray``/``neutron`` from the catalog's radiation column."""
    catalog = measured_dir / "catalog.csv"
    if not catalog.is_file():
        return {}
    with open(catalog, newline="") as fh:
        return {row["file"]: "neutron" if "neutron" in row["radiation"].lower() else "xray" for row in csv.DictReader(fh)}


def composition_table(measured_dir: Path) -> dict[str, str]:
    """File name → formula from the measured catalog's and the examples' ``compositions.csv``."""
    from sgmine.composition import read_composition_table

    table: dict[str, str] = {}
    for path in (measured_dir.parent / "experimental" / "compositions.csv", measured_dir / "compositions.csv"):
        if path.is_file():
            table.update(read_composition_table(path))
    return table


def file_record(f: dict, rows, s) -> dict:
    from sgmine_diffpy.ranking import combined_ranking
    from sgmine_diffpy.rows import GOOD_FIT_RW, plausible

    truth = f["space_group"]
    fitted = [r for r in rows if r.ok and r.rw is not None]
    best = min([r for r in fitted if plausible(r)] or fitted, key=lambda r: r.rw, default=None)  # lowest refined Rw
    comb = s.ranking[0][0] if s.ranking else None
    by_rw = combined_ranking(rows, s.cnn, within="rw")  # the fitting groups by Rw alone: a diagnostic
    cnn = s.cnn[0][0] if s.cnn else None
    return {
        "file": f["path"].name, "material": f["material"], "scored": f["scored"], "true": truth,
        "radiation": s.radiation, "qmax": s.qmax, "status": s.status, "message": s.message,
        "best": None if best is None else {"structure_id": best.structure_id, "formula": best.formula,
                                           "space_group": best.space_group, "symbol": best.symbol, "rw": best.rw},
        "best_right": best is not None and best.space_group == truth,
        "answer": None if s.best is None else {"structure_id": s.best.structure_id, "formula": s.best.formula,
                                                "space_group": s.best.space_group, "rw": s.best.rw},
        "composition": s.composition, "composition_source": s.composition_source,
        "right_group_fits": any(plausible(r) and r.rw <= GOOD_FIT_RW and r.space_group == truth for r in fitted),
        "combined_top1": comb, "combined_right": comb == truth,
        "combined_top3_right": truth in [g for g, *_ in s.ranking[:3]],
        "combined_within_rw_top1": by_rw[0][0] if by_rw else None,
        "combined_top3": [g for g, *_ in s.ranking[:3]],
        "cnn_top1": cnn, "cnn_right": cnn == truth,
        "cnn": [[g, sym, round(p, 4)] for g, sym, p in s.cnn],
        "ranking": [[g, sym, None if rw is None else round(rw, 4), round(p, 4)] for g, sym, rw, p in s.ranking[:10]],
        "refined": [{"rank": r.rank, "structure_id": r.structure_id, "formula": r.formula, "space_group": r.space_group,
                     "symbol": r.symbol, "rw_screen": r.rw_screen, "rw": r.rw, "plausible": plausible(r), "status": r.status,
                     "message": r.message}
                    for r in rows],
        "screen_s": round(s.screen_s, 2), "total_s": round(s.total_s, 2),
    }


def main(argv=None) -> int:
    from sgmine.scan import load_model
    from sgmine_diffpy.cli import _say
    from sgmine_diffpy.identify import identify_file, open_library
    from sgmine_diffpy.rows import GOOD_FIT_RW

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", default="default")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--measured", type=Path, default=ROOT.parent / "shared" / "data" / "measured",
                        help="folder of the measured files and their catalog.csv")
    parser.add_argument("--only", default="", help="comma-separated substrings: evaluate only the files whose name contains one")
    parser.add_argument("--scored", default="", help="comma-separated labels (yes, ood, no): evaluate only those files")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="per-file details (JSON)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--no-compositions", action="store_true",
                        help="do not pass the compositions.csv tables (as a user who gives none)")
    parser.add_argument("--no-elements", action="store_true",
                        help="ignore the elements the headers name (to measure what that filter does)")
    args = parser.parse_args(argv)
    say = None if args.quiet else _say

    model = load_model(None)
    only, scored = [w for w in args.only.split(",") if w] or [""], {w for w in args.scored.split(",") if w}
    files = [f for f in measured_files(set(model.info.classes), args.measured)
             if any(w in f["path"].name for w in only) and (not scored or f["scored"] in scored)]
    radiation = catalog_radiation(args.measured)
    compositions = None if args.no_compositions else composition_table(args.measured)

    t0 = time.perf_counter()
    library = open_library(args.library, say=_say)
    for rad in ("xray", "neutron"):  # computed once per machine, then read from the cache
        library.curves(rad, say=_say)
    curves_s = time.perf_counter() - t0

    print("file\tscored\ttrue\tbest refined structure\tbest_sg\tbest_rw\tcombined_top1\tcnn_top1\tscreen_s\ttotal_s")
    records = []
    for f in files:
        rows, s = identify_file(str(f["path"]), library, top=args.top, model=model,
                                radiation=radiation.get(f["path"].name), say=say, use_elements=not args.no_elements,
                                compositions=compositions)
        rec = file_record(f, rows, s)
        records.append(rec)
        mark = lambda ok: "+" if ok else "-"  # noqa: E731
        best = rec["best"]
        print(f"{rec['file']}\t{rec['scored']}\t{rec['true']}\t"
              f"{best['structure_id'] + ' ' + best['formula'] if best else s.message}\t"
              f"{best['space_group'] if best else ''}{mark(rec['best_right'])}\t{'' if not best else format(best['rw'], '.3f')}\t"
              f"{rec['combined_top1']}{mark(rec['combined_right'])}\t{rec['cnn_top1']}{mark(rec['cnn_right'])}\t"
              f"{rec['screen_s']:.1f}\t{rec['total_s']:.1f}", flush=True)

    summary = {}
    for name, key in (("in class", "yes"), ("out of class", "ood"), ("not scored", "no")):
        group = [r for r in records if r["scored"] == key]
        if group:
            summary[name] = {"n": len(group), **{k: sum(r[f"{k}_right"] for r in group) for k in ("best", "combined", "cnn")},
                             "combined_top3": sum(r["combined_top3_right"] for r in group),
                             "right_group_fits": sum(r["right_group_fits"] for r in group)}
    known = [r for r in records if r["scored"] in ("yes", "ood")]
    if known:
        summary["known group"] = {"n": len(known), "combined": sum(r["combined_right"] for r in known),
                                  "combined_top3": sum(r["combined_top3_right"] for r in known),
                                  "right_group_fits": sum(r["right_group_fits"] for r in known),
                                  "best": sum(r["best_right"] for r in known), "cnn": sum(r["cnn_right"] for r in known)}
    screen = [r["screen_s"] for r in records if r["status"] == "ok"]
    total = [r["total_s"] for r in records if r["status"] == "ok"]
    timing = {"curves_s": round(curves_s, 1), "screen_s_median": float(np.median(screen)) if screen else None,
              "screen_s_max": max(screen, default=None), "total_s_median": float(np.median(total)) if total else None,
              "total_s_max": max(total, default=None)}
    print()
    print(f"top-1 right (combined rule: groups with a plausible fit of Rw <= {GOOD_FIT_RW:g} first, by CNN probability; "
          "then the CNN's ranking):")
    for name, t in summary.items():
        n = t["n"]
        print(f"  {name}: {n} files; best refined structure {t['best']}/{n} ({t['best'] / n:.0%}), "
              f"combined ranking {t['combined']}/{n} ({t['combined'] / n:.0%}; top-3 {t['combined_top3']}/{n}), "
              f"CNN alone {t['cnn']}/{n} ({t['cnn'] / n:.0%}); the right group rests on a fit (Rw <= {GOOD_FIT_RW:g}) "
              f"for {t['right_group_fits']}/{n}")
    inclass = [r for r in records if r["scored"] == "yes"]
    if inclass:
        print(f"  combined ranking in class with the fitting groups by Rw alone (same fits): "
              f"{sum(r['combined_within_rw_top1'] == r['true'] for r in inclass)}/{len(inclass)}")
    print(f"time: library curves {timing['curves_s']:.1f} s (cached per machine after the first run); per file "
          f"screen median {timing['screen_s_median']:.1f} s, max {timing['screen_s_max']:.1f} s; "
          f"whole identify (screen + {args.top} refinements) median {timing['total_s_median']:.1f} s, max {timing['total_s_max']:.1f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": "python benchmarks/eval_identify.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                   "library": args.library, "library_size": len(library.structures), "top": args.top,
                   "good_fit_rw": GOOD_FIT_RW, "model": getattr(model.info, "model_version", None),
                   "summary": summary, "timing": timing, "load_average": os.getloadavg()[0], "files": records}
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=float) + "\n")
        os.replace(tmp, args.json)
        print(f"per-file details in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
