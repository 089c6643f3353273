"""One-element crystals over the whole range of lattice sizes: does a model know fcc, hcp and
diamond whatever the element?

The PDF of a one-element crystal depends only on its lattice, so this probe sweeps the
nearest-neighbour distance of each element prototype in the model's classes
(:data:`training.structures.PROTOTYPES`: fcc, hcp with c/a 1.633, diamond) from 1.5 Å (C–C in
diamond) to 4.4 Å in steps of 0.1 Å (the runtime refuses a first peak beyond 4.5 Å as not a G(r):
``sgmine.plausibility.FIRST_PEAK_RANGE``), simulates each at ``eval_real.py``'s four
measured-like settings and scores it through the runtime. Real elements at the distances of the
sweep: diamond C 1.54, Si 2.35, Ge 2.45; fcc Ni 2.49, Cu 2.56, Al 2.86, Ag and Au 2.89, Pb 3.50,
Ce 3.65, Yb 3.88, Ca 3.95, Sr 4.30; hcp Mg 3.2, Y 3.6.

    python benchmarks/probe_elements.py [--model FILE] [--json OUT.json]

Prints top-1 per prototype and distance band, and the distances at which a prototype is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_real import SETTINGS  # noqa: E402

DISTANCES = np.round(np.arange(1.5, 4.41, 0.1), 2)
BANDS = ((1.5, 2.3), (2.3, 3.3), (3.3, 4.41))
HCP_C_OVER_A = 1.633


def prototype(kind: str, distance: float):
    """A one-element diffpy Structure of prototype ``kind`` at nearest-neighbour ``distance`` Å
    (hcp at the ideal c/a)."""
    from training.structures import PROTOTYPES, element_crystal

    return element_crystal(kind, distance, c_over_a=None if PROTOTYPES[kind][3] is None else HCP_C_OVER_A)


def main(argv: list[str] | None = None) -> int:
    args = probe_arguments(__doc__, argv)

    from sgmine.scan import load_model, predict
    from sgmine.simulate import PDFParams, pair_table, pdf
    from training.structures import ELEMENT_PROTOTYPES, PROTOTYPES

    model = load_model(args.model)
    classes = set(model.info.classes)
    kinds = [k for k in ELEMENT_PROTOTYPES if PROTOTYPES[k][0] in classes]
    r = np.arange(0.5, model.grid.rmax + 1.0, 0.01)
    rows = []
    for kind in kinds:
        group = PROTOTYPES[kind][0]
        for d in DISTANCES:
            table = pair_table(prototype(kind, float(d)), rmax=float(r[-1]))
            curves = [(r, pdf(table, r, PDFParams(**s))) for s in SETTINGS.values()]
            for setting, p in zip(SETTINGS, predict(curves, top_k=2, model=model)):
                rows.append({"kind": kind, "space_group": group, "distance": float(d), "setting": setting,
                             **answer(p, group)})

    print(f"model: {model.path} ({model.info.model_version}); {len(DISTANCES)} distances x {len(SETTINGS)} settings per prototype")
    summary: dict[str, dict] = {}
    for kind in kinds:
        mine = [x for x in rows if x["kind"] == kind]
        bands = {}
        for lo, hi in BANDS:
            band = [x["top1"] for x in mine if lo <= x["distance"] < hi]
            bands[f"{lo:g}-{min(hi, DISTANCES[-1]):g}"] = float(np.mean(band))
        overall = float(np.mean([x["top1"] for x in mine]))
        summary[kind] = {"top1": overall, "bands": bands}
        print(f"  {kind:<8} top-1 {overall:.3f}  " + "  ".join(f"{b} Å: {v:.2f}" for b, v in bands.items()))
        missed = sorted({x["distance"] for x in mine if not x["top1"]})
        if missed:
            wrong = {}
            for x in mine:
                if not x["top1"]:
                    wrong[x["predicted"]] = wrong.get(x["predicted"], 0) + 1
            print(f"           missed at {', '.join(f'{d:g}' for d in missed)} Å (answers: "
                  + ", ".join(f"{g}: {n}" for g, n in sorted(wrong.items(), key=lambda kv: -kv[1])) + ")")
    overall = float(np.mean([x["top1"] for x in rows]))
    print(f"all prototypes: top-1 {overall:.3f} of {len(rows)} PDFs")
    if args.json:
        write_report(args.json, model, overall, rows, prototypes=summary)
    return 0


def probe_arguments(doc: str, argv: list[str] | None) -> argparse.Namespace:
    """The options every probe takes: ``--model`` (a file or shipped name) and ``--json``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default=None, help="ONNX model or shipped name (default: the shipped default)")
    parser.add_argument("--json", type=Path, default=None, help="write every row and the summary here")
    return parser.parse_args(argv)


def answer(prediction, group: int) -> dict:
    """A probe row's fields from one runtime prediction (``sgmine.scan.predict``) of a curve of
    space group ``group``: the top answer, its probability, whether it is right, in domain."""
    best = prediction.candidates[0] if prediction.candidates else None
    return {"predicted": best.space_group if best else None, "probability": best.probability if best else None,
            "top1": bool(best and best.space_group == group), "in_domain": prediction.in_domain}


def write_report(path: Path, model, top1: float, rows: list[dict], **summaries) -> None:
    """Write a probe's figures to ``path`` as JSON: the model and its version, the overall top-1,
    the ``summaries`` (by prototype, by compound) and every scored row."""
    report = {"model": str(model.path), "model_version": model.info.model_version, "top1": top1,
              **summaries, "rows": rows}
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
