"""Regenerate the corpus of curves that are not a G(r) the model can judge (files committed).

Each file's expected outcome is in EXPECTED.csv: ``error`` (an error row whose message holds
``text``) or ``ok`` with ``in_domain`` false (the doubt holding ``text``) or empty (scored,
nothing against it; ``text`` then is in the warnings). Run: ``python tests/data/not_gr/make_corpus.py``.
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "bad"))
from make_corpus import fcc_gr  # noqa: E402  (the realistic G(r) of the format corpus)

R = np.round(np.arange(0.0, 30.0001, 0.02), 4)
Q = np.round(np.arange(0.5, 25.0, 0.02), 4)
PDFGETX3 = ("[DEFAULT]\nversion = 2.1.1\ndataformat = QA\ninputfile = Ni.chi\noutputtype = {}\nmode = xray\n"
            "composition = Ni\nqmaxinst = 25.0\nqmin = 0.5\nqmax = 25.0\n\n#### start data\n#S 1\n#L {}\n")


def rows(x, y):
    return "".join(f"{a:.4f} {b:.6g}\n" for a, b in zip(x, y))


def intensity(q):
    """An I(Q)-like curve: Bragg peaks of fcc Ni on a falling background, all positive."""
    peaks = [(3.09, 10), (3.57, 5), (5.05, 4), (5.92, 4), (6.18, 2), (7.14, 1), (7.78, 2)]
    return sum(h * np.exp(-((q - p) ** 2) / 0.002) for p, h in peaks) + 50 * np.exp(-q / 3) + 5


def main():
    rng = np.random.default_rng(13)
    iq = intensity(Q)
    sq = 1 + 0.5 * np.sin(3 * Q) * np.exp(-Q / 8)
    write = lambda name, text: (HERE / name).write_text(text, encoding="utf-8")  # noqa: E731
    write("Ni.chi", "# pyFAI integrated pattern\n# q_nm^-1 I\n" + rows(Q, iq))
    write("ni.iq", rows(Q, iq))
    write("ni.fq", rows(Q, Q * (sq - 1)))
    write("outputtype_iq.gr", PDFGETX3.format("iq", "Q($\\AA^{-1}$)  I(Q)") + rows(Q, iq))
    write("outputtype_sq.gr", PDFGETX3.format("sq", "Q($\\AA^{-1}$)  S(Q)") + rows(Q, sq))
    write("pdfgetn_sq_labels.gr", "##### start data\n#O0 rg_int sig_rg_int low_int sig_low_int rmax\n"
          "#S 1 - PDF from PDFgetN\n#L Q S(Q) dQ dS(Q)\n" + rows(Q, sq))
    write("iq_without_header.gr", rows(Q, iq))
    write("sq_without_header.gr", rows(Q, sq))
    write("white_noise.gr", rows(R, rng.normal(size=R.size)))
    write("sine_fast.gr", rows(R, np.sin(2.0 * R)))
    write("sine_slow.gr", rows(R, np.sin(1.2 * R)))
    write("straight_line.gr", rows(R, 0.5 * R - 3))
    write("falling_line.gr", rows(R, 22 - R))
    write("gaussian.gr", rows(R, np.exp(-((R - 2.5) ** 2) / 0.02)))
    write("lorentzian.gr", rows(R, 1 / (1 + ((R - 2.5) / 0.1) ** 2)))
    write("triple_peak.gr", rows(R, sum(np.exp(-((R - x) ** 2) / 0.02) for x in (1.5, 2.5, 4.0))))
    rm = np.round(np.arange(0.0, 10.05, 0.1), 4)
    write("morph_sine.gr", "# Function created by diffpy.morph\n# Labels: [x] [fx]\n" + rows(rm, np.sin(rm)))
    write("toy_7_rows.gr", rows(np.arange(1.0, 8.0), [0.0, 1.0, 0.5, 2.0, -1.0, 0.3, 0.2]))
    short = R <= 12.0
    write("ends_at_12A.gr", rows(R[short], fcc_gr(R[short])))
    rn = np.round(np.arange(0.0, 4.0, 0.002), 4)
    write("r_in_nm.gr", "#L r(nm) G(r)\n" + rows(rn, fcc_gr(rn * 10)))
    low = np.round(np.arange(0.01, 0.5001, 0.01), 4)
    write("ends_below_1.5A.gr", rows(low, -low))
    far = np.round(np.arange(35.0, 60.0, 0.05), 4)
    write("starts_beyond_30A.gr", rows(far, fcc_gr(far)))
    # RMCProfile format: number of points, a title, then Keen's G(r) = (Σcb)² (g − 1)
    rr = np.round(np.arange(0.02, 30.0001, 0.02), 4)
    rho0, cb2 = 4 / 3.52**3, 0.1056  # Ni: (b = 10.3 fm)² in barns
    keen = cb2 * fcc_gr(rr) / (4 * np.pi * rho0 * rr)
    write("rmcprofile_format.gr", f"{rr.size:>12d}\nrmc G(r) Ni synthetic\n" + rows(rr, keen))


if __name__ == "__main__":
    main()
