"""Two models on the same PDFs: paired counts and exact McNemar tests from two evaluation JSONs.

    python benchmarks/compare_evals.py docs/model/ablation/NEW.json docs/model/ablation/OLD.json

Reads the ``--json`` files of ``benchmarks/eval_measured.py --real``. For the real-structure
PDFs both scored (matched by source, structure and setting) it prints, for top-1 and top-2, how
many only the first model gets right, how many only the second, and the two-sided exact McNemar
p-value of that split; the same for top-1 on every ``--held-out`` dataset both scored row by
row (``top1_hits``, same rows); then every measured file where the two differ (in-class files:
top-1 right or wrong; out-of-class files: flagged or not). Two ``--json`` files of a probe
(``probe_elements.py``, ``probe_compounds.py``, ``probe_particles.py``: a ``rows`` list with
``top1``) are paired row by row the same way (:func:`paired_probe`). A structure gives several rows of a
held-out dataset, so those rows are not independent and the p-value overstates the evidence.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of the discordant pairs at 1/2
    (``scipy.stats.binomtest``); 1 when there are none."""
    from scipy.stats import binomtest

    n = only_first + only_second
    return 1.0 if n == 0 else float(binomtest(only_first, n, 0.5).pvalue)


def paired_real(first: dict, second: dict) -> dict[str, dict[str, float]]:
    """Discordant counts and p-values on the real-structure PDFs both reports scored."""
    def key(row: dict) -> tuple[str, str, str]:
        return row["source"], row["name"], row["setting"]

    if not (first.get("real") or {}).get("rows") or not (second.get("real") or {}).get("rows"):
        return {}  # a report without --real
    a = {key(r): r for r in first["real"]["rows"]}
    b = {key(r): r for r in second["real"]["rows"]}
    common = sorted(set(a) & set(b))
    out = {}
    for metric in ("top1", "top2"):
        only_a = sum(bool(a[k][metric]) and not b[k][metric] for k in common)
        only_b = sum(bool(b[k][metric]) and not a[k][metric] for k in common)
        out[metric] = {"n": len(common), "only_first": only_a, "only_second": only_b,
                       "p": mcnemar_exact(only_a, only_b)}
    return out


def measured_differences(first: dict, second: dict) -> list[str]:
    """One line per measured file the two models treat differently."""
    b = {f["file"]: f for f in second["measured"]["files"]}
    lines = []
    for f in first["measured"]["files"]:
        g = b.get(f["file"])
        if g is None or f.get("status") != "ok" or g.get("status") != "ok":
            continue
        if f["scored"] == "yes" and f["top1"] != g["top1"]:
            lines.append(f"{f['file']}: first {f['top3'][0]} ({f['probabilities'][0]:.2f}), "
                         f"second {g['top3'][0]} ({g['probabilities'][0]:.2f}); true {f['true']}")
        elif f["scored"] == "ood" and f["in_domain"] != g["in_domain"]:
            lines.append(f"{f['file']}: flagged by the {'first' if not f['in_domain'] else 'second'} only")
    return lines


def paired_held_out(first: dict, second: dict) -> dict[str, dict[str, float]]:
    """Top-1 discordant counts and p-values on each held-out dataset both reports scored row by
    row; a dataset whose rows differ in number is left out."""
    a, b = first.get("held_out") or {}, second.get("held_out") or {}
    out = {}
    for name in sorted(set(a) & set(b)):
        ha, hb = a[name].get("top1_hits"), b[name].get("top1_hits")
        if not ha or not hb or len(ha) != len(hb):
            continue
        only_a = sum(x == "1" and y == "0" for x, y in zip(ha, hb))
        only_b = sum(x == "0" and y == "1" for x, y in zip(ha, hb))
        out[name] = {"n": len(ha), "only_first": only_a, "only_second": only_b, "p": mcnemar_exact(only_a, only_b)}
    return out


def paired_probe(first: dict, second: dict) -> dict[str, float]:
    """Top-1 discordant counts and p-value of two reports of the same probe, row by row; empty when
    they are not probe reports or their rows differ (another probe, another version of it)."""
    a, b = first.get("rows"), second.get("rows")
    if not isinstance(a, list) or not isinstance(b, list) or not a or len(a) != len(b):
        return {}
    fields = [k for k in a[0] if k not in ("predicted", "probability", "top1", "in_domain")]
    if any(x.get(k) != y.get(k) for x, y in zip(a, b) for k in fields):
        return {}
    only_a = sum(bool(x["top1"]) and not y["top1"] for x, y in zip(a, b))
    only_b = sum(bool(y["top1"]) and not x["top1"] for x, y in zip(a, b))
    return {"n": len(a), "only_first": only_a, "only_second": only_b, "p": mcnemar_exact(only_a, only_b)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    first, second = (json.loads(p.read_text()) for p in (args.first, args.second))
    if "measured" not in first or "measured" not in second:
        r = paired_probe(first, second)
        if not r:
            print("error: neither two eval_measured.py reports nor two reports of the same probe", file=sys.stderr)
            return 1
        print(f"first: {first.get('model_version')}, second: {second.get('model_version')}")
        print(f"probe top1: {r['n']} PDFs, right only with the first {r['only_first']}, only with the second "
              f"{r['only_second']}, exact McNemar p = {r['p']:.3f}")
        return 0
    print(f"first: {first.get('version')}, second: {second.get('version')}")
    for metric, r in paired_real(first, second).items():
        print(f"real structures {metric}: {r['n']} PDFs, right only with the first {r['only_first']}, "
              f"only with the second {r['only_second']}, exact McNemar p = {r['p']:.3f}")
    for name, r in paired_held_out(first, second).items():
        print(f"held-out {name} top1: {r['n']} PDFs, right only with the first {r['only_first']}, "
              f"only with the second {r['only_second']}, exact McNemar p = {r['p']:.2g} (rows of one structure are not independent)")
    for line in measured_differences(first, second) or ["measured files: no difference"]:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
