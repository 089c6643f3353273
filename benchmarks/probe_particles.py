"""Textbook compounds as nanoparticles: down to which diameter does a model get their group?

A nanoparticle's PDF fades out by its diameter (G(r) times the spherical-particle envelope,
``PDFParams.spdiameter``), so a 12 Å particle has no signal beyond 12 Å of the model's 30. The
probe simulates every compound of ``probe_compounds.COMPOUNDS`` in bulk and as spheres of
40, 25, 18 and 12 Å, at two atomic displacements (Uiso 0.005 and 0.012 Å², X-ray, Qmax 25,
Qdamp 0.04), and scores each through the runtime.

    python benchmarks/probe_particles.py [--model FILE] [--json OUT.json]

Prints per compound the answer at each diameter, then the share right per diameter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from probe_compounds import COMPOUNDS, compound  # noqa: E402
from probe_elements import answer, probe_arguments, write_report  # noqa: E402

#: Particle diameters in Å (0: bulk).
DIAMETERS = (0.0, 40.0, 25.0, 18.0, 12.0)
#: Isotropic displacements, Å².
UISOS = (0.005, 0.012)


def main(argv: list[str] | None = None) -> int:
    args = probe_arguments(__doc__, argv)

    from sgmine.scan import load_model, predict
    from sgmine.simulate import PDFParams, pair_table, pdf

    model = load_model(args.model)
    print(f"model: {model.path} ({model.info.model_version}); diameters {', '.join(f'{d:g}' for d in DIAMETERS)} Å "
          f"(0: bulk) at Uiso {' and '.join(f'{u:g}' for u in UISOS)}")
    rows = []
    r = np.arange(0.5, model.grid.rmax + 1.0, 0.01)
    for name in COMPOUNDS:
        structure, group = compound(name)
        if group not in model.info.classes:
            continue
        table = pair_table(structure, rmax=float(r[-1]), radiation="xray")
        settings = [(diameter, uiso) for diameter in DIAMETERS for uiso in UISOS]
        curves = [(r, pdf(table, r, PDFParams(qmax=25.0, qdamp=0.04, uiso=uiso, delta2=0.0, radiation="xray",
                                              spdiameter=diameter))) for diameter, uiso in settings]
        mine = [{"compound": name, "space_group": group, "diameter": diameter, "uiso": uiso, **answer(p, group)}
                for (diameter, uiso), p in zip(settings, predict(curves, top_k=2, model=model))]
        rows += mine
        print(f"  {name:<14} {group:>3}  "
              + " ".join(f"{'ok' if x['top1'] else str(x['predicted'] or '-'):>3}" for x in mine))
    per_diameter = {f"{d:g}": float(np.mean([x["top1"] for x in rows if x["diameter"] == d])) for d in DIAMETERS}
    overall = float(np.mean([x["top1"] for x in rows]))
    print("right per diameter: " + ", ".join(f"{d} Å {v:.2f}" for d, v in per_diameter.items())
          + f"; all {overall:.3f} of {len(rows)} PDFs")
    if args.json:
        write_report(args.json, model, overall, rows, per_diameter=per_diameter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
