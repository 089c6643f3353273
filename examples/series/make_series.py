"""Make the example series: simulated G(r) of fcc Ni (examples/cifs/Ni.cif) stretched along c.

A cubic crystal distorted tetragonally (c/a > 1 at constant volume) loses its cubic symmetry:
fcc Fm-3m becomes body-centred tetragonal I4/mmm. The files are named by c/a and carry it in
their headers (``c_over_a``), so ``sgmine plot --order header:c_over_a`` orders them by it.
Needs the ``simulate`` extra. Run from the repository root::

    python examples/series/make_series.py
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from sgmine.simulate import PDFParams, read_structure, simulate, write_gr

HERE = Path(__file__).resolve().parent
RATIOS = (1.000, 1.005, 1.010, 1.015, 1.020, 1.025, 1.030, 1.040, 1.050, 1.060)


def main() -> None:
    ni = read_structure(HERE.parent / "cifs" / "Ni.cif")
    params = PDFParams(qmax=25.0, qdamp=0.04, uiso=0.005, delta2=2.3)
    r = np.round(np.arange(0.0, 30.0 + 1e-9, 0.02), 6)
    for ratio in RATIOS:
        strained = copy.deepcopy(ni)
        a = strained.lattice.a
        strained.lattice.setLatPar(a=a / ratio ** (1 / 3), b=a / ratio ** (1 / 3), c=a * ratio ** (2 / 3))
        g = simulate(strained, r, params)
        header = {"structure": "Ni.cif, stretched along c at constant volume", "c_over_a": ratio,
                  **params.as_header(), "rstep": 0.02}
        write_gr(HERE / f"Ni_ca{ratio:.3f}.gr", r, g, header)


if __name__ == "__main__":
    main()
