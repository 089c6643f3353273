"""Leave-compound-out evaluation of ``sgmine identify`` with compositions (issue #33, item 7).

What a new material looks like: a real structure whose whole chemical system is removed from
the library (from the screen and from the compounds that chemistry candidates come from), its
PDF simulated as a measurement would give it, identified from its composition.

    python benchmarks/eval_identify_lco.py [--n 300] [--min-groups 40] [--max-atoms 16] [--seed 0]
                                           [--top 10] [--json FILE]
    python benchmarks/eval_identify_lco.py --textbook [--json FILE]
    python benchmarks/eval_identify_lco.py --n 300 --resume ~/.cache/sgmine/eval/lco300.jsonl  # resumable

``--textbook``: instead of a random draw, the real structures of :data:`TEXTBOOK` (common
measured samples: perovskites, wurtzites, corundum, spinel, fluorite, rock salts, LaB6, ...),
each with its whole chemical system removed as above: the library then has to find them the
way it would a new compound of a familiar type.

Structures: Materials Project entries of the shipped compound library (``mp-*``, at most
``--max-atoms`` atoms in the primitive cell), drawn at random (``--seed``) round-robin over space
groups so that at least ``--min-groups`` groups are represented. Each gets a measured-like PDF
(:func:`measured_like`): x-ray or (30 %) neutron, Qmax 18–35 Å⁻¹, Qdamp 0.02–0.06 Å⁻¹, Uiso
0.003–0.012 Å², delta2 0–3 Å², a quarter as 30–100 Å spherical particles, Gaussian noise of
1–3 % of the curve's largest value, r = 0.5–30 Å in 0.01 Å, the header giving Qmax, Qdamp and
the radiation as PDFgetX3 would. The composition is passed as a user would
(``--composition``: the entry's reduced formula).

Prints one line per structure (truth, the answer, its Rw, the ranking's top-1, whether the right
group rests on a fitting structure, seconds) and the totals: ranking top-1 and top-3, right group
fitting (Rw ≤ 0.25), the CNN's top-1 on the same files, median and max seconds per file.
Nothing here tunes anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Real structures of common PDF samples in the compound library (ids), for ``--textbook``.
TEXTBOOK = (
    "mp-5986", "mp-4342", "mp-20459",  # BaTiO3, KNbO3, PbTiO3 (P4mm)
    "mp-2133", "mp-672", "mp-7631",  # ZnO, CdS, SiC (P6_3mc)
    "mp-2680", "mp-19390",  # LaB6, WO3 (Pm-3m)
    "cspml_90:Al2O3.cif", "mp-19770",  # Al2O3, Fe2O3 (R-3c)
    "cspml_90:GaAs.cif", "mp-1190", "mp-20351",  # GaAs, ZnSe, InP (F-43m)
    "xraylarch_amcsd:amcsd_cif0_11686.cif", "mp-1138", "mp-23193", "mp-1883",  # CeO2, LiF, KCl, SnTe (Fm-3m)
    "mp-3536", "mp-361", "mp-390",  # MgAl2O4 (Fd-3m), Cu2O (Pn-3m), anatase TiO2 (I4_1/amd)
    "mp-2858", "mp-704645",  # ZrO2 (P2_1/c), CuO (C2/c)
    "mp-541837", "mp-22526", "mp-2815", "mp-91",  # Bi2Se3, LiCoO2 (R-3m), MoS2 (P6_3/mmc), W (Im-3m)
    "mp-4651", "cspml_90:Ba(FeAs)2.cif", "mp-2652", "mp-25279",  # SrTiO3 (I4/mcm), BaFe2As2 (I4/mmm), Y2O3 (Ia-3), V2O5 (Pmmn)
)


def pick_structures(library, *, n: int, min_groups: int, max_atoms: int, seed: int) -> list[int]:
    """Indices of ``n`` MP entries drawn round-robin over space groups (a random order of groups,
    a random member each time), at most ``max_atoms`` atoms, one per chemical system."""
    from sgmine_diffpy.structlib import entry_elements

    rng = np.random.default_rng(seed)
    by_group: dict[int, list[int]] = {}
    for i in range(len(library)):
        atoms = int(library.offsets[i + 1] - library.offsets[i])
        if str(library.ids[i]).startswith("mp-") and atoms <= max_atoms:
            by_group.setdefault(int(library.space_groups[i]), []).append(i)
    groups = list(by_group)
    rng.shuffle(groups)
    for members in by_group.values():
        rng.shuffle(members)
    chosen, systems = [], set()
    while len(chosen) < n and any(by_group.values()):
        for group in groups:
            members = by_group[group]
            while members:
                i = members.pop()
                system = frozenset(entry_elements(library, i))
                if system not in systems:
                    systems.add(system)
                    chosen.append(i)
                    break
            if len(chosen) == n:
                break
    if len({int(library.space_groups[i]) for i in chosen}) < min_groups:
        print(f"note: only {len({int(library.space_groups[i]) for i in chosen})} space groups among the picks", file=sys.stderr)
    return chosen


def measured_like(structure, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """A measured-like G(r) of ``structure`` and its header (see the module text)."""
    from sgmine.simulate import PDFParams, simulate

    radiation = "neutron" if rng.random() < 0.3 else "xray"
    params = PDFParams(qmax=float(rng.uniform(18, 35)), qdamp=float(rng.uniform(0.02, 0.06)),
                       uiso=float(rng.uniform(0.003, 0.012)), delta2=float(rng.uniform(0, 3)), radiation=radiation,
                       spdiameter=float(rng.uniform(30, 100)) if rng.random() < 0.25 else 0.0)
    r = np.round(np.arange(0.5, 30.0 + 1e-9, 0.01), 4)
    g = simulate(structure, r, params)
    g = g + rng.normal(0.0, rng.uniform(0.01, 0.03) * float(np.abs(g).max()), len(g))
    header = {"qmax": round(params.qmax, 2), "qdamp": round(params.qdamp, 4), "mode": radiation}
    return r, g, {**header, "_spdiameter": params.spdiameter}


def code_version() -> str:
    """The git commit of this checkout (with ``+changes`` when its plugin or runtime differ from
    it), or ``unknown``: a resumed run must use the code that started it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sgmine", "plugins", "benchmarks"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def read_resume(path: Path, settings: dict) -> dict[str, dict]:
    """The records already in ``path`` by structure id (none when it does not exist, which it
    then starts with ``settings``); exits when it was started with other settings or code."""
    if not path.exists() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"settings": settings}) + "\n", encoding="utf-8")
        return {}
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or lines[0].get("settings") != settings:
        sys.exit(f"{path}: started with other settings or code ({lines[0].get('settings') if lines else 'none'}); "
                 f"this run's: {settings}. Give another --resume file.")
    return {rec["id"]: rec for rec in lines[1:]}


def main(argv=None) -> int:
    from sgmine.scan import load_model
    from sgmine.simulate import write_gr
    from sgmine_diffpy.identify import identify_file, open_library
    from sgmine_diffpy.rows import GOOD_FIT_RW, plausible
    from sgmine_diffpy.structlib import entry_elements

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--min-groups", type=int, default=40)
    parser.add_argument("--max-atoms", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="per-structure details (JSON)")
    parser.add_argument("--textbook", action="store_true", help="the structures of TEXTBOOK instead of a random draw")
    parser.add_argument("--resume", type=Path, default=None,
                        help="a JSON-lines file each structure's record is appended to as it is done; a run "
                             "started again with the same file and settings skips those done (a long run "
                             "over several sessions)")
    args = parser.parse_args(argv)

    model = load_model(None)
    settings = {"n": args.n, "min_groups": args.min_groups, "max_atoms": args.max_atoms, "seed": args.seed,
                "top": args.top, "textbook": args.textbook, "model": f"{model.name} {model.info.model_version}",
                "code": code_version()}
    done = read_resume(args.resume, settings) if args.resume else {}
    library = open_library("default")
    compounds = library.compounds()
    if args.textbook:
        where = {str(x): k for k, x in enumerate(compounds.ids)}
        missing = [x for x in TEXTBOOK if x not in where]
        if missing:
            print(f"not in the compound library: {', '.join(missing)}", file=sys.stderr)
        picks = [where[x] for x in TEXTBOOK if x in where]
    else:
        picks = pick_structures(compounds, n=args.n, min_groups=args.min_groups, max_atoms=args.max_atoms, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    records = []
    print("id\tformula\ttrue\tanswer\trw\tranking_top1\tright_fits\tcnn_top1\tseconds", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for i in picks:
            structure = compounds.structure(i)
            r, g, header = measured_like(structure, rng)  # drawn for every pick, so a resumed run sees the same PDFs
            diameter = header.pop("_spdiameter")
            if str(compounds.ids[i]) in done:
                records.append(done[str(compounds.ids[i])])
                continue
            path = Path(folder) / f"{compounds.ids[i]}.gr"
            write_gr(path, r, g, header)
            formula = str(compounds.formulas[i])
            held = library.hold_out([entry_elements(compounds, i)])
            t0 = time.perf_counter()
            rows, s = identify_file(str(path), held, top=args.top, model=model, composition=formula)
            seconds = time.perf_counter() - t0
            truth = int(compounds.space_groups[i])
            answer = s.answer
            rec = {
                "id": str(compounds.ids[i]), "formula": formula, "true": truth, "symbol": str(compounds.symbols[i]),
                "radiation": header["mode"], "qmax": header["qmax"], "diameter": diameter,
                "answer": None if answer is None else {"structure_id": answer.structure_id, "space_group": answer.space_group,
                                                       "rw": answer.rw},
                "ranking_top1": s.ranking[0][0] if s.ranking else None,
                "ranking_top3": [gr for gr, *_ in s.ranking[:3]],
                "right_fits": any(plausible(row) and row.rw <= GOOD_FIT_RW and row.space_group == truth for row in rows),
                "cnn_top1": s.cnn[0][0] if s.cnn else None, "seconds": round(seconds, 1), "message": s.message,
            }
            records.append(rec)
            if args.resume:
                with open(args.resume, "a", encoding="utf-8") as out:
                    out.write(json.dumps(rec) + "\n")
            print(f"{rec['id']}\t{formula}\t{truth}\t{answer.space_group if answer else '-'}\t"
                  f"{'' if answer is None else format(answer.rw, '.3f')}\t{rec['ranking_top1']}{'+' if rec['ranking_top1'] == truth else '-'}\t"
                  f"{'yes' if rec['right_fits'] else 'no'}\t{rec['cnn_top1']}\t{seconds:.1f}", flush=True)
    n = len(records)
    top1 = sum(r["ranking_top1"] == r["true"] for r in records)
    top3 = sum(r["true"] in r["ranking_top3"] for r in records)
    fits = sum(r["right_fits"] for r in records)
    cnn = sum(r["cnn_top1"] == r["true"] for r in records)
    seconds = [r["seconds"] for r in records]
    groups = len({r["true"] for r in records})
    print()
    print(f"leave-compound-out: {n} structures of {groups} space groups; ranking top-1 {top1}/{n} ({top1 / max(n, 1):.0%}), "
          f"top-3 {top3}/{n}; the right group rests on a fit (Rw <= {GOOD_FIT_RW:g}) for {fits}/{n} ({fits / max(n, 1):.0%}); "
          f"CNN alone top-1 {cnn}/{n}")
    print(f"time per file: median {np.median(seconds):.1f} s, max {max(seconds):.1f} s; "
          f"machine {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": "python benchmarks/eval_identify_lco.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                   "n": n, "groups": groups, "ranking_top1": top1, "ranking_top3": top3, "right_fits": fits, "cnn_top1": cnn,
                   "seconds_median": float(np.median(seconds)), "seconds_max": max(seconds), "records": records}
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
