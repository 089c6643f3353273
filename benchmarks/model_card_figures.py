"""Render the figures of `benchmarks/eval_measured.py --json` as the model card's results section.

    python benchmarks/model_card_figures.py docs/model/ablation/m1.json [--card sgmine/data/MODEL_CARD.md]

Prints the Markdown; with ``--card``, replaces the text between the card's
``<!-- figures:begin -->`` and ``<!-- figures:end -->`` markers (written atomically), so the card's
numbers always come from one evaluation run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def _f(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(report: dict) -> str:
    """The results section: summary table, then one row per measured file."""
    m = report["measured"]
    i, o = m["in_class"], m["out_of_class"]
    lines = [
        f"Evaluated with `python benchmarks/eval_measured.py` on model `{report['version']}`.",
        "",
        "| check | figure |",
        "|---|---|",
        f"| measured in-class files ({i['n']} files, {i['materials']} materials) | top-1 **{_f(i['top1'])}**, "
        f"top-3 {_f(i['top3'])}, per material top-1 {_f(i['per_material_top1'])} |",
        f"| measured in-class files flagged `in_domain = false` (false alarms) | {_f(i['false_alarms'])} |",
        f"| measured out-of-class files (real G(r) of other groups, {o['n']} files) flagged | **{_f(o['flagged'])}** |",
    ]
    t = report.get("test")
    if t:
        lines.append(f"| structure-disjoint simulated test ({t['n']} PDFs, {t['structures']} composition/group sets) | "
                     f"top-1 **{_f(t['top1'], 3)}**, top-2 {_f(t['top2'], 3)}, top-3 {_f(t['top3'], 3)}"
                     + (f", top-6 {_f(t['top6'], 3)}" if t.get("top6") is not None and len(t["recall"]) > 8 else "") + " |")
        lines.append("| per-class recall on that test | " + ", ".join(f"{c}: {_f(v)}" for c, v in t["recall"].items()) + " |")
        if t.get("flagged") is not None:
            lines.append(f"| in-class simulated test curves flagged | {_f(t['flagged'], 3)} |")
    if report.get("ood_simulated"):
        s = report["ood_simulated"]
        lines.append(f"| simulated crystals of other groups ({s['n']} PDFs, held out) flagged | {_f(s['flagged'], 3)} |")
    r = report.get("real")
    if r:
        ov = r["overall"]
        lines.append(f"| real structures not trained on (AFLOW prototypes + PyXtal CIFs, {r['structures']} structures "
                     f"× 4 settings) | top-1 **{_f(ov['top1'], 3)}**, top-2 {_f(ov['top2'], 3)} |")
    lines += ["", "Per measured file:", "", "| file | true | top-3 (probability) | in domain | |", "|---|---|---|---|---|"]
    for row in m["files"]:
        if row["scored"] == "no":
            continue
        top = ", ".join(f"{g} ({p:.2f})" for g, p in zip(row["top3"], row["probabilities"]))
        verdict = ("right" if row["top1"] else "wrong") if row["scored"] == "yes" else (
            "out of class, flagged" if row["in_domain"] is False else "out of class, not flagged")
        lines.append(f"| {row['file']} | {row['true']} | {top} | {row['in_domain']} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--card", type=Path, help="model card to update between the figure markers")
    args = parser.parse_args(argv)
    text = render(json.loads(args.report.read_text()))
    if args.card is None:
        print(text, end="")
        return 0
    card = args.card.read_text()
    if BEGIN not in card or END not in card:
        print(f"{args.card} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = card.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = args.card.with_name(f".{args.card.name}.tmp")
    tmp.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    tmp.replace(args.card)
    print(f"updated {args.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
