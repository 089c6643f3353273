"""How does a model do on real structures it was not trained on, and on the measured PDFs?

1. Real structures outside the training data: the AFLOW prototypes that pymatgen ships
   (``pymatgen/analysis/prototypes/aflow_prototypes.json.gz``, 288 structures) and the CIFs that
   PyXtal ships (``pyxtal/database/cifs``), labelled with spglib exactly as the training data
   (:func:`training.structures.label`), those in the model's classes kept. Each is simulated with
   four measured-like settings (sgmine.simulate):

   ===========  ====  =====  =====  ======  =========  ===========
   setting      Qmax  Qdamp  Uiso   delta2  radiation  particle
   ===========  ====  =====  =====  ======  =========  ===========
   xray-25      25    0.04   0.005  2.3     x-ray      bulk
   xray-19      19    0.03   0.008  1.5     x-ray      bulk
   neutron-30   30    0.02   0.006  2.0     neutron    bulk
   nano-40      25    0.04   0.010  0.0     x-ray      40 Å sphere
   ===========  ====  =====  =====  ======  =========  ===========

   and scored through the runtime (``sgmine.predict`` on ``(r, G)`` arrays): top-1 and top-2
   accuracy per setting, overall, and per structure source.
2. The measured PDFs shipped in examples/data (Ni: Fm-3m, Si: Fd-3m, CdSe nanoparticle: P6_3mc,
   outside the classes): top candidates, confidence and in-domain flag.

    python benchmarks/eval_real.py [--model FILE] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import site
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "xray-25": dict(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3, radiation="xray"),
    "xray-19": dict(qmax=19.0, qdamp=0.03, uiso=0.008, delta2=1.5, radiation="xray"),
    "neutron-30": dict(qmax=30.0, qdamp=0.02, uiso=0.006, delta2=2.0, radiation="neutron"),
    "nano-40": dict(qmax=25.0, qdamp=0.04, uiso=0.010, delta2=0.0, radiation="xray", spdiameter=40.0),
}
MEASURED = {"Ni.gr": 225, "Si.gr": 227, "CdSe-nanoparticle.gr": 186}


def _site_file(*parts: str) -> list[str]:
    found: list[str] = []
    for base in site.getsitepackages() + [site.getusersitepackages()]:
        found += glob.glob(str(Path(base, *parts)))
    return sorted(found)


def real_structures() -> list[tuple[str, str, object]]:
    """(source, name, diffpy structure) of the AFLOW prototypes and PyXtal's CIFs."""
    from pymatgen.core import Structure as PmgStructure

    from sgmine.simulate import read_structure, to_diffpy

    out = []
    for path in _site_file("pymatgen", "analysis", "prototypes", "aflow_prototypes.json.gz"):
        for entry in json.load(gzip.open(path)):
            snl = entry["snl"]
            structure = PmgStructure.from_dict({k: snl[k] for k in ("lattice", "sites", "charge") if k in snl})
            out.append(("aflow", entry["tags"].get("aflow", "?"), to_diffpy(structure)))
    for path in _site_file("pyxtal", "database", "cifs", "*.cif"):
        try:
            out.append(("pyxtal", Path(path).stem, read_structure(path)))
        except Exception as exc:  # noqa: BLE001 - a CIF the reader rejects is reported and skipped
            print(f"skipped {path}: {exc}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--max-atoms", type=int, default=400)
    args = parser.parse_args(argv)

    from sgmine.scan import load_model, predict
    from sgmine.simulate import PDFParams, pair_table, pdf
    from training.structures import StructureError, label

    model = load_model(args.model)
    classes = set(model.info.classes)
    r = np.arange(0.5, model.grid.rmax + 1.0, 0.01)

    rows = []
    for source, name, structure in real_structures():
        try:
            record = label(structure, name, source)
        except StructureError:
            continue
        if record.space_group not in classes or len(structure) > args.max_atoms:
            continue
        try:
            table = pair_table(structure, rmax=float(r[-1]))
            curves = [(r, pdf(table, r, PDFParams(**s))) for s in SETTINGS.values()]
        except Exception as exc:  # noqa: BLE001 - e.g. no neutron length for an element
            print(f"skipped {source}:{name}: {exc}", file=sys.stderr)
            continue
        for setting, p in zip(SETTINGS, predict(curves, top_k=2, model=model)):
            if not p.ok:
                continue
            top = [c.space_group for c in p.candidates]
            rows.append({"source": source, "name": name, "formula": record.formula, "space_group": record.space_group,
                         "setting": setting, "top1": top[0] == record.space_group,
                         "top2": record.space_group in top[:2], "predicted": top[0],
                         "confidence": p.confidence, "in_domain": p.in_domain})

    def summary(subset: list[dict]) -> dict:
        n = len(subset)
        return {"n": n, "top1": float(np.mean([r["top1"] for r in subset])) if n else float("nan"),
                "top2": float(np.mean([r["top2"] for r in subset])) if n else float("nan"),
                "flagged": float(np.mean([r["in_domain"] is False for r in subset])) if n else float("nan")}

    report = {"overall": summary(rows), "structures": len({(r["source"], r["name"]) for r in rows})}
    report["by_setting"] = {s: summary([r for r in rows if r["setting"] == s]) for s in SETTINGS}
    report["by_source"] = {s: summary([r for r in rows if r["source"] == s]) for s in ("aflow", "pyxtal")}
    report["by_group"] = {g: summary([r for r in rows if r["space_group"] == g]) for g in sorted(classes)}
    report["errors"] = [f"{r['source']}:{r['name']} {r['formula']} {r['space_group']}->{r['predicted']} ({r['setting']})"
                        for r in rows if not r["top1"]]

    measured = []
    for name, truth in MEASURED.items():
        (p,) = predict([ROOT / "examples" / "data" / name], top_k=3, model=model)
        measured.append({"file": name, "true": truth, "in_classes": truth in classes,
                         "candidates": [(c.space_group, c.symbol, round(c.probability, 4)) for c in p.candidates],
                         "top1_right": bool(p.candidates and p.candidates[0].space_group == truth),
                         "confidence": p.confidence, "in_domain": p.in_domain})
    report["measured"] = measured
    report["rows"] = rows

    o = report["overall"]
    print(f"model: {model.path} ({model.info.model_version})")
    print(f"real structures not trained on: {report['structures']} structures x {len(SETTINGS)} settings = {o['n']} PDFs: "
          f"top-1 {o['top1']:.3f}, top-2 {o['top2']:.3f}, flagged out-of-domain {o['flagged']:.1%}")
    for key in ("by_setting", "by_source", "by_group"):
        for name, s in report[key].items():
            print(f"  {key[3:]:>8} {name!s:>12}: n={s['n']:4d} top-1 {s['top1']:.3f} top-2 {s['top2']:.3f} flagged {s['flagged']:.1%}")
    print("measured PDFs:")
    for m in measured:
        print(f"  {m['file']:<22} true {m['true']:>3} {'' if m['in_classes'] else '(not a class)':<14} -> {m['candidates']} "
              f"confidence {m['confidence']:.3f} in_domain {m['in_domain']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
