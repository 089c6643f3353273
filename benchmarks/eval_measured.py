"""The accuracy protocol: how right is a model on measured PDFs, unseen structures and held-out data?

One command, the same figures for every model (the ablation log in docs/model/ablation.md
quotes them):

1. **Measured PDFs** (the truth test): the shipped examples (Ni, Si: in class; the CdSe
   nanoparticle: out of class) and every file of ``../shared/data/measured/catalog.csv``
   (``scored`` = yes: in the model's groups; ood: a real G(r) of another group; no: not
   scored, e.g. RMCProfile normalisation). Per file: truth, top-3, confidence, in-domain flag;
   then top-1/top-3 per file and per material (each material weighs 1), the share of
   out-of-class files flagged (``in_domain = false``) and of in-class files flagged (false alarms).
2. **Structure-disjoint simulated test** (``--run RUN --dataset DATASET``): the test rows of the
   run's split, scored through the ONNX model: top-1/2/3, per class recall.
3. **Real structures not trained on** (``--real``): :mod:`benchmarks.eval_real`'s AFLOW
   prototypes and PyXtal CIFs in the model's groups at four measured-like settings.
4. **Out-of-class simulated** (``--ood DATASET``): curves of other space groups, share flagged.
5. **Held-out generated structures** (``--held-out DATASET``, repeatable): every in-class row of
   a dataset no member trained on, e.g. molecular crystals of another seed: top-1/2, recall.

    python benchmarks/eval_measured.py [--model FILE] [--run RUN --dataset DS] [--real] [--ood DS] \
        [--held-out DS] [--json OUT]

Measured files are for validation only: nothing here tunes a model or a threshold.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
#: The measured examples the project ships, with their true groups (CdSe is wurtzite-like P6_3mc).
EXAMPLES = {"Ni.gr": 225, "Si.gr": 227, "CdSe-nanoparticle.gr": 186}
MATERIALS = {"Ni.gr": "Ni", "Si.gr": "Si", "CdSe-nanoparticle.gr": "CdSe nanoparticle"}


def measured_files(classes: set[int], measured_dir: Path) -> list[dict]:
    """Every measured file with its truth: ``path, material, space_group, scored`` (yes/ood/no)."""
    files = [
        {"path": ROOT / "examples" / "data" / name, "material": MATERIALS[name], "space_group": group,
         "scored": "yes" if group in classes else "ood"}
        for name, group in EXAMPLES.items()
    ]
    catalog = measured_dir / "catalog.csv"
    if catalog.is_file():
        with open(catalog, newline="") as fh:
            for row in csv.DictReader(fh):
                group = int(row["space_group"])
                scored = row["scored"] if row["scored"] == "no" else ("yes" if group in classes else "ood")
                files.append({"path": measured_dir / row["file"], "material": row["material"],
                              "space_group": group, "scored": scored})
    else:
        print(f"note: {catalog} not found; only the shipped examples are scored", file=sys.stderr)
    return files


def score_measured(model, files: list[dict]) -> dict:
    """Score each file; per-file rows and the summary figures."""
    from sgmine.scan import predict

    rows = []
    for f, p in zip(files, predict([str(f["path"]) for f in files], top_k=3, model=model)):
        top = [c.space_group for c in p.candidates]
        rows.append({
            "file": f["path"].name, "material": f["material"], "true": f["space_group"], "scored": f["scored"],
            "status": p.status, "top3": top, "probabilities": [round(c.probability, 3) for c in p.candidates],
            "confidence": p.confidence, "in_domain": p.in_domain,
            "top1": bool(top and top[0] == f["space_group"]), "top3_hit": f["space_group"] in top,
            "message": p.message,
        })
    inclass = [r for r in rows if r["scored"] == "yes"]
    ood = [r for r in rows if r["scored"] == "ood"]
    materials: dict[str, list[bool]] = {}
    for r in inclass:
        materials.setdefault(r["material"], []).append(r["top1"])
    return {
        "files": rows,
        "in_class": {
            "n": len(inclass),
            "top1": _mean(r["top1"] for r in inclass),
            "top3": _mean(r["top3_hit"] for r in inclass),
            "per_material_top1": _mean(np.mean(v) for v in materials.values()),
            "materials": len(materials),
            "false_alarms": _mean(r["in_domain"] is False for r in inclass),
        },
        "out_of_class": {"n": len(ood), "flagged": _mean(r["in_domain"] is False for r in ood)},
    }


def _mean(values) -> float:
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else float("nan")


def score_rows(model, x: np.ndarray, y: np.ndarray, *, keep_hits: bool = False) -> dict:
    """Top-1/2/3/6, per-class recall and the share flagged of curves ``x`` with groups ``y``;
    with ``keep_hits``, also ``top1_hits``: one character per row, ``1`` right at top-1, ``0``
    wrong (what ``compare_evals.py`` pairs)."""
    probs = model.predict_proba(x)
    classes = np.array(model.info.classes)
    order = np.argsort(-probs, axis=1)
    ranked = classes[order]
    hits = ranked == y[:, None]
    recall = {int(c): float(hits[y == c, 0].mean()) for c in classes if np.any(y == c)}
    inside = model.info.in_domain_many(probs)
    extra = {"top1_hits": "".join("1" if h else "0" for h in hits[:, 0])} if keep_hits else {}
    return {
        **extra,
        "n": int(len(y)),
        "top1": float(hits[:, 0].mean()), "top2": float(hits[:, :2].any(1).mean()),
        "top3": float(hits[:, :3].any(1).mean()), "top6": float(hits[:, :6].any(1).mean()), "recall": recall,
        "flagged": float((~inside).mean()) if inside is not None else None,
    }


def score_test_split(model, run: Path, dataset: Path) -> dict:
    """Top-1/2/3/6 and per-class recall on the test rows of ``run``'s structure-disjoint split."""
    from training.datafiles import read_dataset
    from training.run import RunDir

    data = read_dataset(dataset)
    split = RunDir(run).split(len(data))
    figures = score_rows(model, data.x[split.test], data.y[split.test])
    figures["structures"] = int(len(np.unique(data.groups[split.test]))) if data.groups is not None else None
    return figures


def score_held_out(model, dataset: Path) -> dict:
    """The figures of :func:`score_rows` on every in-class row of a dataset no model member
    trained on (another seed of a generator, e.g. molecular crystals)."""
    from training.datafiles import read_dataset

    data = read_dataset(dataset)
    keep = np.isin(data.y, list(model.info.classes))
    figures = score_rows(model, data.x[keep], data.y[keep], keep_hits=True)
    figures["dataset"] = str(dataset)
    return figures


def score_ood(model, dataset: Path) -> dict:
    """Share of curves of other space groups flagged out of domain."""
    from training.datafiles import read_dataset

    data = read_dataset(dataset)
    x = data.x[~np.isin(data.y, list(model.info.classes))]
    probs = model.predict_proba(x)
    inside = model.info.in_domain_many(probs)
    return {"n": int(len(x)), "flagged": float((~inside).mean()) if inside is not None else None}


def score_real(model_path: str | None) -> dict:
    """benchmarks/eval_real.py's figures (real structures not trained on)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import eval_real

    out = ROOT / ".eval_real.json"
    try:
        eval_real.main((["--model", model_path] if model_path else []) + ["--json", str(out)])
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def real_unseen(rows: list[dict], run: Path, dataset: Path) -> dict:
    """Real-structure figures without the structures whose composition and group (the split
    group) occur among the run's training and validation rows (AFLOW and MP tables share compounds)."""
    from training.datafiles import read_dataset
    from training.dataset import split_group
    from training.run import RunDir

    data = read_dataset(dataset)
    split = RunDir(run).split(len(data))
    seen = set(data.groups[np.concatenate([split.train, split.validation])]) if data.groups is not None else set()
    kept = [r for r in rows if split_group(r["formula"], r["space_group"]) not in seen]
    names = {(r["source"], r["name"]) for r in rows}
    kept_names = {(r["source"], r["name"]) for r in kept}
    return {"n": len(kept), "structures": len(kept_names), "excluded": len(names) - len(kept_names),
            "top1": _mean(r["top1"] for r in kept), "top2": _mean(r["top2"] for r in kept)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--measured", type=Path, default=SHARED / "measured", help="folder with catalog.csv")
    parser.add_argument("--run", type=Path, help="run directory (split.npz) for the simulated test")
    parser.add_argument("--dataset", type=Path, help="the run's dataset")
    parser.add_argument("--real", action="store_true", help="also score real structures (benchmarks/eval_real.py)")
    parser.add_argument("--ood", type=Path, help="dataset of other space groups (held out) for the flag rate")
    parser.add_argument("--held-out", type=Path, action="append", default=[],
                        help="dataset of in-class structures no member trained on (e.g. molecular crystals of "
                        "another seed): top-1/top-2 over all its rows; repeat for several")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)

    from sgmine.scan import load_model

    model = load_model(args.model)
    classes = set(model.info.classes)
    report: dict = {"model": str(model.path), "version": model.info.model_version}
    print(f"model: {model.path} ({model.info.model_version})")

    measured = score_measured(model, measured_files(classes, args.measured))
    report["measured"] = measured
    for r in measured["files"]:
        if r["scored"] == "no":
            continue
        mark = {"yes": "RIGHT" if r["top1"] else "wrong", "ood": "flagged" if r["in_domain"] is False else "NOT flagged"}[r["scored"]]
        print(f"  {r['file'][:44]:<44} true {r['true']:>3} ({r['scored']:>3}) -> {r['top3']} "
              f"{r['probabilities']} in_domain={r['in_domain']} {mark}")
    i, o = measured["in_class"], measured["out_of_class"]
    print(f"measured in-class: top-1 {i['top1']:.2f}, top-3 {i['top3']:.2f} of {i['n']} files; per material top-1 "
          f"{i['per_material_top1']:.2f} of {i['materials']}; false alarms {i['false_alarms']:.2f}")
    print(f"measured out-of-class: {o['flagged']:.2f} flagged of {o['n']} files")

    if args.run and args.dataset:
        t = score_test_split(model, args.run, args.dataset)
        report["test"] = t
        print(f"structure-disjoint simulated test: {t['n']} PDFs of {t['structures']} structure groups: top-1 {t['top1']:.3f}, "
              f"top-2 {t['top2']:.3f}, top-3 {t['top3']:.3f}, top-6 {t['top6']:.3f}; recall "
              + ", ".join(f"{c}: {v:.2f}" for c, v in t["recall"].items())
              + (f"; flagged {t['flagged']:.3f}" if t["flagged"] is not None else ""))
    for held_out in args.held_out:
        h = score_held_out(model, held_out)
        report.setdefault("held_out", {})[held_out.name] = h
        print(f"held-out dataset {held_out.name}: {h['n']} PDFs: top-1 {h['top1']:.3f}, top-2 {h['top2']:.3f}; recall "
              + ", ".join(f"{c}: {v:.2f}" for c, v in h["recall"].items())
              + (f"; flagged {h['flagged']:.3f}" if h["flagged"] is not None else ""))
    if args.ood:
        report["ood_simulated"] = score_ood(model, args.ood)
        print(f"simulated out-of-class: {report['ood_simulated']}")
    if args.real:
        report["real"] = score_real(args.model)
        if args.run and args.dataset:
            report["real_unseen"] = real_unseen(report["real"]["rows"], args.run, args.dataset)
            u = report["real_unseen"]
            print(f"real structures whose composition and group are not in the run's training rows: {u['structures']} "
                  f"structures, {u['n']} PDFs: top-1 {u['top1']:.3f}, top-2 {u['top2']:.3f} "
                  f"({u['excluded']} structures excluded as seen in training)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
