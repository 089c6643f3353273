"""Inputs that are *not* one crystal of the model's classes, for checking the in-domain flag.

Three kinds, each returned as curves already on the model grid (rows of ``x``, min-max
normalised exactly as the runtime does):

- :func:`two_phase_mixtures`: the sum of two in-class curves of *different* space groups with a
  random phase fraction (30–70 %), as a two-phase sample would give;
- :func:`amorphous_curves`: simulated PDFs of random dense packings of atoms (no long-range
  order), damped like a glass or an amorphous film (a spherical envelope of 8–20 Å);
- :func:`read_curves`: measured or simulated ``.gr`` files (e.g. the CdSe nanoparticle, space
  group P6_3mc, outside the eight classes), read and resampled by the runtime's own code.

Out-of-class crystals (other space groups) come from a dataset built with
``sgmine-train dataset --space-groups all`` on structures of other groups.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sgmine.grid import Grid, normalise, resample

#: Elements of the amorphous packings (a glass former, metals, a chalcogenide, an oxide former).
AMORPHOUS_ELEMENTS = ("Si", "Ge", "Fe", "Ni", "Cu", "Zr", "Pd", "Se", "O", "B")


def two_phase_mixtures(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0, grid: Grid = Grid()) -> np.ndarray:
    """``n`` curves ``f·a + (1−f)·b`` of rows ``a``, ``b`` of ``x`` whose labels ``y`` differ,
    ``f`` uniform in 0.3–0.7, renormalised to [0, 1]."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    if len(np.unique(y)) < 2:
        raise ValueError("mixtures need curves of at least two space groups")
    rng = np.random.default_rng(seed)
    out = np.empty((n, x.shape[1]))
    for k in range(n):
        i = int(rng.integers(len(y)))
        others = np.flatnonzero(y != y[i])
        j = int(others[rng.integers(len(others))])
        f = rng.uniform(0.3, 0.7)
        out[k] = f * x[i] + (1 - f) * x[j]
    return normalise(out, grid.normalisation).astype(np.float32)


def amorphous_curves(n: int, seed: int = 0, grid: Grid = Grid(), box: float = 14.0) -> np.ndarray:
    """``n`` PDFs of random packings: one or two elements in a cubic ``box`` (Å) at the density
    of their covalent radii, atoms no closer than 0.85 × the radius sum, large displacements
    (Uiso 0.01–0.03 Å²) and a spherical envelope of 8–20 Å (no order beyond it)."""
    from sgmine.simulate import PDFParams, pair_table, pdf

    rng = np.random.default_rng(seed)
    r = np.arange(0.5, grid.rmax + 1.0, 0.01)
    out = []
    for _ in range(n):
        elements = list(rng.choice(AMORPHOUS_ELEMENTS, size=int(rng.integers(1, 3)), replace=False))
        structure = _random_packing(elements, box, rng)
        params = PDFParams(
            qmax=float(rng.uniform(18, 30)),
            qdamp=0.04,
            uiso=float(rng.uniform(0.01, 0.03)),
            delta2=0.0,
            spdiameter=float(rng.uniform(8, 20)),
        )
        g = pdf(pair_table(structure, rmax=float(r[-1])), r, params)
        out.append(resample(r, g, grid).values)
    return np.array(out, dtype=np.float32)


def read_curves(paths: list[str | Path], grid: Grid = Grid()) -> np.ndarray:
    """The curves of PDF files, read and resampled as ``sgmine scan`` does."""
    from sgmine.gr import read_gr

    rows = []
    for path in paths:
        curve = read_gr(path)
        rows.append(resample(curve.r, curve.g, grid).values)
    return np.array(rows, dtype=np.float32).reshape(len(rows), grid.npoints)


def _random_packing(elements: list[str], box: float, rng: np.random.Generator):
    """A P1 cell of side ``box`` filled at random (rejection sampling) with ``elements``."""
    from diffpy.structure import Atom, Lattice, Structure
    from pymatgen.core import Element

    radii = {e: float(Element(e).atomic_radius or 1.3) for e in elements}
    mean_volume = np.mean([4 / 3 * np.pi * radii[e] ** 3 for e in elements]) / 0.55  # packing fraction
    target = int(box**3 / mean_volume)
    positions: list[np.ndarray] = []
    species: list[str] = []
    for _ in range(target * 30):
        if len(positions) >= target:
            break
        e = str(rng.choice(elements))
        p = rng.uniform(0, box, 3)
        if positions:
            d = np.array(positions) - p
            d -= box * np.round(d / box)
            limit = 0.85 * np.array([radii[s] + radii[e] for s in species])
            if np.any(np.sqrt((d**2).sum(axis=1)) < limit):
                continue
        positions.append(p)
        species.append(e)
    atoms = [Atom(e, xyz=p / box) for e, p in zip(species, positions)]
    return Structure(atoms, lattice=Lattice(box, box, box, 90, 90, 90))
