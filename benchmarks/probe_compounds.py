"""Textbook compounds that PDF users measure: does a model get their space group?

Issue #14 lists failures on an independent measured set: fcc metals called I4/mmm (Ag, Pb),
NaCl → C2/c, MnO (neutron) → P6_3/mmc, CeO2 → Fd-3m, LaMnO3 → P-1/P2_1/c, Mg2Sn → Fd-3m. This
probe builds those and other common PDF samples of the eight groups from their space group,
lattice parameters and Wyckoff coordinates (rounded literature values, :data:`COMPOUNDS`; on
2026-12-02 TiC, TiN, LiF and Li2O joined, whose Ti or Li scatter neutrons with a negative
length, as Mn does in MnO), simulates each at ``eval_real.py``'s four measured-like settings
plus the x-ray and neutron ones with the data cut at rmax 20 Å, and scores them through the
runtime. Real-structure sets (``eval_real.py``) are bigger; this one is small enough to read
line by line.

    python benchmarks/probe_compounds.py [--model FILE] [--json OUT.json]

Prints per compound the settings it is missed at, with the answer and its probability.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_real import SETTINGS  # noqa: E402
from probe_elements import answer, probe_arguments, write_report  # noqa: E402

#: name: (Hermann–Mauguin symbol, (a, b, c, alpha, beta, gamma), species, fractional coordinates).
#: Fd-3m in pymatgen's default setting (origin choice 1: diamond Si on 8a at 0, 0, 0).
COMPOUNDS: dict[str, tuple[str, tuple[float, ...], list[str], list[list[float]]]] = {
    "NaCl": ("Fm-3m", (5.640,) * 3 + (90,) * 3, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "MgO": ("Fm-3m", (4.212,) * 3 + (90,) * 3, ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "MnO": ("Fm-3m", (4.445,) * 3 + (90,) * 3, ["Mn", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "NiO": ("Fm-3m", (4.177,) * 3 + (90,) * 3, ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    # rock salts and an antifluorite with a negative neutron scattering length (Ti, Li): under
    # neutrons their unlike pairs are negative peaks
    "TiC": ("Fm-3m", (4.328,) * 3 + (90,) * 3, ["Ti", "C"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "TiN": ("Fm-3m", (4.240,) * 3 + (90,) * 3, ["Ti", "N"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "LiF": ("Fm-3m", (4.027,) * 3 + (90,) * 3, ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "Li2O": ("Fm-3m", (4.610,) * 3 + (90,) * 3, ["O", "Li"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    "CeO2": ("Fm-3m", (5.411,) * 3 + (90,) * 3, ["Ce", "O"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    "CaF2": ("Fm-3m", (5.463,) * 3 + (90,) * 3, ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    "Mg2Sn": ("Fm-3m", (6.765,) * 3 + (90,) * 3, ["Sn", "Mg"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    "Ni": ("Fm-3m", (3.524,) * 3 + (90,) * 3, ["Ni"], [[0, 0, 0]]),
    "Au": ("Fm-3m", (4.078,) * 3 + (90,) * 3, ["Au"], [[0, 0, 0]]),
    "Pb": ("Fm-3m", (4.950,) * 3 + (90,) * 3, ["Pb"], [[0, 0, 0]]),
    "Si": ("Fd-3m", (5.431,) * 3 + (90,) * 3, ["Si"], [[0, 0, 0]]),
    "Ge": ("Fd-3m", (5.658,) * 3 + (90,) * 3, ["Ge"], [[0, 0, 0]]),
    "Fe3O4": ("Fd-3m", (8.396,) * 3 + (90,) * 3, ["Fe", "Fe", "O"], [[0, 0, 0], [0.625] * 3, [0.3799] * 3]),
    "MgAl2O4": ("Fd-3m", (8.080,) * 3 + (90,) * 3, ["Mg", "Al", "O"], [[0, 0, 0], [0.625] * 3, [0.3874] * 3]),
    "graphite": ("P6_3/mmc", (2.464, 2.464, 6.711, 90, 90, 120), ["C", "C"], [[0, 0, 0.25], [1 / 3, 2 / 3, 0.25]]),
    "Ti": ("P6_3/mmc", (2.951, 2.951, 4.686, 90, 90, 120), ["Ti"], [[1 / 3, 2 / 3, 0.25]]),
    "Zn": ("P6_3/mmc", (2.665, 2.665, 4.947, 90, 90, 120), ["Zn"], [[1 / 3, 2 / 3, 0.25]]),
    "La2CuO4 (HTT)": ("I4/mmm", (3.78, 3.78, 13.2, 90, 90, 90), ["La", "Cu", "O", "O"],
                      [[0, 0, 0.361], [0, 0, 0], [0, 0.5, 0], [0, 0, 0.182]]),
    "Sr2RuO4": ("I4/mmm", (3.87, 3.87, 12.74, 90, 90, 90), ["Sr", "Ru", "O", "O"],
                [[0, 0, 0.353], [0, 0, 0], [0, 0.5, 0], [0, 0, 0.162]]),
    "LaMnO3": ("Pnma", (5.742, 7.668, 5.532, 90, 90, 90), ["La", "Mn", "O", "O"],
               [[0.549, 0.25, 0.01], [0, 0, 0.5], [-0.01, 0.25, -0.07], [0.309, 0.039, 0.224]]),
    "GdFeO3": ("Pnma", (5.61, 7.67, 5.35, 90, 90, 90), ["Gd", "Fe", "O", "O"],
               [[0.0618, 0.25, 0.9836], [0, 0, 0.5], [0.4729, 0.25, 0.1032], [0.2942, 0.0512, 0.6920]]),
}
#: eval_real's settings, plus its x-ray and neutron ones with the data ending at 20 Å.
PROBE_SETTINGS = {**{k: (v, None) for k, v in SETTINGS.items()},
                  "xray-25-r20": (SETTINGS["xray-25"], 20.0), "neutron-30-r20": (SETTINGS["neutron-30"], 20.0)}


def compound(name: str):
    """``(diffpy Structure, spglib space group)`` of :data:`COMPOUNDS` entry ``name``."""
    from pymatgen.core import Lattice, Structure

    from sgmine.simulate import to_diffpy
    from training.structures import label

    symbol, cell, species, coords = COMPOUNDS[name]
    structure = to_diffpy(Structure.from_spacegroup(symbol, Lattice.from_parameters(*cell), species, coords))
    return structure, label(structure, name, "probe").space_group


def main(argv: list[str] | None = None) -> int:
    args = probe_arguments(__doc__, argv)

    from sgmine.scan import load_model, predict
    from sgmine.simulate import PDFParams, pair_table, pdf

    model = load_model(args.model)
    print(f"model: {model.path} ({model.info.model_version}); {len(PROBE_SETTINGS)} settings per compound")
    rows = []
    for name in COMPOUNDS:
        structure, group = compound(name)
        if group not in model.info.classes:
            continue
        mine = []
        for setting, (params, rmax) in PROBE_SETTINGS.items():
            r = np.arange(0.5, (rmax or model.grid.rmax + 1.0), 0.01)
            table = pair_table(structure, rmax=float(r[-1]), radiation=params["radiation"])
            top = predict([(r, pdf(table, r, PDFParams(**params)))], top_k=2, model=model)[0]
            mine.append({"compound": name, "space_group": group, "setting": setting, **answer(top, group)})
        rows += mine
        missed = [f"{x['setting']} → {x['predicted']} ({x['probability']:.2f}{'' if x['in_domain'] else ', flagged'})"
                  for x in mine if not x["top1"]]
        print(f"  {name:<14} {group:>3}  {sum(x['top1'] for x in mine)}/{len(mine)}" + (f"  missed: {'; '.join(missed)}" if missed else ""))
    overall = float(np.mean([x["top1"] for x in rows]))
    per_compound = {n: float(np.mean([x["top1"] for x in rows if x["compound"] == n])) for n in dict.fromkeys(x["compound"] for x in rows)}
    right = sum(v == 1.0 for v in per_compound.values())
    print(f"all: top-1 {overall:.3f} of {len(rows)} PDFs; right at every setting: {right} of {len(per_compound)} compounds")
    if args.json:
        write_report(args.json, model, overall, rows, per_compound=per_compound)
    return 0


if __name__ == "__main__":
    sys.exit(main())
