"""sgmine.simulate against diffpy.pdffit2: agreement (Rw) and time per PDF.

For every structure in tests/data/structures plus examples/data/{Ni,Si}.cif:

* the nominal PDF (Qmax 25, Qdamp 0.04, Uiso 0.005, delta2 2.3, X-ray) from both engines on
  r = 0.01..30 Å (step 0.01), Rw over 1.5–30 Å (unit weights, pdffit2 as reference);
* ``--variants`` augmented PDFs drawn like the training set (Qmax 14–30, Qdamp 0.01–0.08,
  Uiso 0.002–0.03, delta2 0–4, strain ±3 %), pdffit2 given the strained lattice;
* pdffit2's own sensitivity to its computed range: Rw between pdffit2 run to 30 Å and run to
  40 Å, both cut to 1.5–30 Å (the termination at Qmax reaches beyond the range, so any engine's
  result at the high-r end depends a little on how far it computes);
* times: pdffit2 per PDF (a fresh PdfFit per PDF, as a dataset builder would need for a new
  Qmax or lattice), ours for the first PDF (pair table + PDF) and per augmented PDF.

    python benchmarks/bench_simulate.py [--variants 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from sgmine.simulate import PDFParams, neutral_element, pair_table, pdf, read_structure

ROOT = Path(__file__).resolve().parents[1]
R = 0.01 * np.arange(1, 3001)  # pdffit2 cannot compute at r = 0
FIT = (R >= 1.5) & (R <= 30.0)
R40 = 0.01 * np.arange(1, 4001)


def structures() -> list[Path]:
    return sorted((ROOT / "tests/data/structures").glob("*.cif")) + [
        ROOT / "examples/data/Ni.cif",
        ROOT / "examples/data/Si.cif",
    ]


def rw(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.sqrt(np.sum((reference - other) ** 2) / np.sum(reference**2)))


def pdffit2_pdf(structure, params: PDFParams, strain: float = 0.0, r: np.ndarray = R) -> np.ndarray:
    """G(r) on ``r`` (equally spaced from 0.01 Å) from a fresh pdffit2 engine (neutral element symbols, Uiso for all atoms)."""
    from diffpy.pdffit2 import PdfFit

    s = structure.copy()
    for atom in s:
        atom.element = neutral_element(atom.element)
        atom.anisotropy = False
        atom.Uisoequiv = params.uiso
    if strain:
        a, b, c, al, be, ga = s.lattice.abcABG()
        s.lattice.setLatPar(a * (1 + strain), b * (1 + strain), c * (1 + strain), al, be, ga)
    pf = PdfFit()
    pf.add_structure(s)
    pf.setvar("delta2", params.delta2)
    pf.alloc("X" if params.radiation == "xray" else "N", params.qmax, params.qdamp, r[0], r[-1], r.size)
    pf.calc()
    return np.array(pf.getpdf_fit())


def draw_variants(rng: np.random.Generator, n: int) -> list[tuple[PDFParams, float]]:
    return [
        (
            PDFParams(
                qmax=rng.uniform(14, 30),
                qdamp=rng.uniform(0.01, 0.08),
                uiso=rng.uniform(0.002, 0.03),
                delta2=rng.uniform(0, 4),
            ),
            rng.uniform(-0.03, 0.03),
        )
        for _ in range(n)
    ]


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=10, help="augmented PDFs per structure")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (the best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from diffpy.pdffit2 import redirect_stdout

    redirect_stdout(open(os.devnull, "w"))
    rng = np.random.default_rng(args.seed)
    nominal = PDFParams()
    pdf(pair_table(read_structure(ROOT / "examples/data/Ni.cif")), R, nominal)  # warm imports

    header = (
        f"{'structure':<30} {'atoms':>5} {'Rw nom':>7} {'Rw aug':>7} {'pf2 30/40':>9} {'pdffit2 ms':>10} "
        f"{'first ms':>8} {'aug ms':>7} {'x first':>7} {'x aug':>6}"
    )
    print(header)
    print("-" * len(header))
    tot_pf = tot_first = tot_aug = 0.0
    worst_nominal = worst_aug = worst_self = 0.0
    for path in structures():
        s = read_structure(path)
        ref = pdffit2_pdf(s, nominal)
        t_pf = best_time(lambda: pdffit2_pdf(s, nominal), args.repeat)
        ours = pdf(pair_table(s, rmax=30.0), R, nominal)
        t_first = best_time(lambda: pdf(pair_table(s, rmax=30.0), R, nominal), args.repeat)
        rw_nom = rw(ref[FIT], ours[FIT])

        table = pair_table(s, rmax=30.0)
        variants = draw_variants(rng, args.variants)
        t_aug = best_time(lambda: [pdf(table, R, p, strain=e) for p, e in variants], args.repeat) / len(variants)
        rw_aug = rw_self = 0.0
        for p, e in variants:
            ref_aug = pdffit2_pdf(s, p, e)[FIT]
            rw_aug = max(rw_aug, rw(ref_aug, pdf(table, R, p, strain=e)[FIT]))
            rw_self = max(rw_self, rw(ref_aug, pdffit2_pdf(s, p, e, r=R40)[: R.size][FIT]))

        worst_nominal, worst_aug, worst_self = max(worst_nominal, rw_nom), max(worst_aug, rw_aug), max(worst_self, rw_self)
        tot_pf, tot_first, tot_aug = tot_pf + t_pf, tot_first + t_first, tot_aug + t_aug
        print(
            f"{path.stem[:30]:<30} {len(s):>5} {rw_nom:>7.4f} {rw_aug:>7.4f} {rw_self:>9.4f} {1e3 * t_pf:>10.1f} "
            f"{1e3 * t_first:>8.1f} {1e3 * t_aug:>7.2f} {t_pf / t_first:>7.1f} {t_pf / t_aug:>6.0f}"
        )
    n = len(structures())
    per_structure_ours = tot_first + (args.variants - 1) * tot_aug
    print("-" * len(header))
    print(f"worst Rw vs pdffit2 (1.5–30 Å): nominal {worst_nominal:.4f} (budget 0.02), augmented {worst_aug:.4f}")
    print(f"worst Rw of pdffit2 to 30 Å vs pdffit2 to 40 Å (augmented): {worst_self:.4f}")
    print("columns: Rw aug = worst over the augmented PDFs; pf2 30/40 = pdffit2's own range sensitivity;")
    print("         x first = pdffit2 time / (pair table + first PDF); x aug = pdffit2 time / augmented PDF")
    print(
        f"mean time per PDF: pdffit2 {1e3 * tot_pf / n:.1f} ms; ours first PDF (incl. pair table) "
        f"{1e3 * tot_first / n:.1f} ms, augmented PDF {1e3 * tot_aug / n:.2f} ms"
    )
    print(
        f"speed ratio (summed over structures): first PDF {tot_pf / tot_first:.1f}x, augmented PDF "
        f"{tot_pf / tot_aug:.0f}x, {args.variants} PDFs per structure {args.variants * tot_pf / per_structure_ours:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
