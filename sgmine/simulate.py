"""Simulated G(r) of periodic crystals, with the conventions of PDFgui / diffpy.pdffit2.

The PDF of a crystal with atoms ``i`` (occupancy ``o_i``, scattering weight ``b_i``) is

    G(r) = 1/(N r) Σ_ij o_i o_j b_i b_j / <b>² · N(r; r_ij, σ_ij) − 4π ρ0 r

summed over all ordered pairs of an atom in the unit cell and every other atom of the crystal,
``N = Σ o_i`` and ``ρ0 = N / V``. Each pair is a Gaussian whose width is the atoms' mean-square
displacement along the bond, ``σp² = n·(U_i + U_j)·n`` (``2·Uiso`` when ``uiso`` overrides the
structure's ADPs), sharpened for correlated motion as pdffit2 does:
``σ² = σp² (1 − δ1/r − δ2/r² + qbroad² r²)`` (pairs where that factor is ≤ 0 are left out,
as in pdffit2). The curve is then multiplied by the Q-resolution envelope
``exp(−(Qdamp r)²/2)`` (and an optional spherical-particle envelope), and terminated at Qmax:
its sine transform is cut to ``qmin ≤ Q ≤ qmax``. Weights are atomic numbers for X-rays (what
pdffit2 uses, f(Q=0) of the neutral atom) and coherent scattering lengths for neutrons, both from
the ``periodictable`` package; ions ("Fe2+", "O2-") are taken as their neutral atoms.

The work is split so that augmented variants are cheap:

* :func:`pair_table` (once per structure) finds every pair distance up to ``rmax`` plus a margin
  and stores it compressed: per element pair, a fine histogram of distances (bins of
  :data:`PAIR_BIN` Å keeping each bin's mean and variance of distance), with their occupancy products (and, when
  the structure carries ADPs, the pair's mean-square displacement). Scattering weights are
  applied later, so one table serves X-rays and neutrons alike ("radiation switching is a cheap
  reweighting"; the ``radiation`` argument only checks that the weights exist).
* :func:`pdf` (per variant) scales the distances for strain, computes each entry's Gaussian
  width, spreads the entries over a few Gaussian widths (variance-preserving split between
  neighbouring widths), broadens them in Fourier space, applies the envelopes and cuts at Qmax
  with a sine transform. Its cost grows with the number of histogram entries, not with the
  number of pairs.

Agreement with pdffit2 and the speed ratio are measured by ``benchmarks/bench_simulate.py``
and asserted in ``tests/test_simulate.py``, for inorganic and molecular crystals (with their H
atoms) alike. Where the two differ most, pdffit2 is the one off: for sharp peaks (Uiso ≈ 0.001 Å²,
as for the stiff bonds inside molecules) its FFT termination drifts from the exact sine
transform (benzene: Rw 0.043 against a brute-force curve; this module 0.002). This module needs numpy and scipy, plus
diffpy.structure and periodictable (the ``simulate`` extra), imported when first needed.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sgmine import __version__, pdfdefaults

#: Width of the distance bins of a :class:`PairTable`, in Å (each bin keeps the mean and the
#: variance of its distances; the variance is added to the peak width).
PAIR_BIN = 0.005
#: Spacing of the internal r-grid the PDF is computed on, in Å.
STEP = 0.01
#: Largest |strain| a table is built for (its pair distances reach far enough for it).
STRAIN_LIMIT = 0.05
#: Extra distance a table covers beyond its nominal rmax, in Å (termination ripples, peak tails).
TABLE_MARGIN = 6.0
#: The PDF is computed this many termination ripples (2π/Qmax) + 2 Å beyond the requested r.
RIPPLES = 12
#: Pairs closer than this are the same site (split or shared sites), as in pdffit2.
MIN_PAIR_DISTANCE = 0.1
#: Peaks are summed out to this many standard deviations (pdffit2 uses 5).
PEAK_SIGMAS = 5.0
#: Tolerance of the split between Gaussian widths (error of the transfer function ~ TOL²/8).
WIDTH_TOLERANCE = 0.1
RADIATIONS = ("xray", "neutron")


class SimulationError(ValueError):
    """A structure or parameter set that cannot be simulated; the message says why."""


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class PDFParams:
    """The cheap-to-vary settings of a simulated PDF (names and meaning as in pdffit2).

    qmax:       Qmax of the sine transform in Å⁻¹ (0 = no termination).
    qdamp:      Q-resolution damping, envelope ``exp(−(qdamp r)²/2)``.
    uiso:       isotropic displacement parameter in Å² given to every atom; ``None`` keeps the
                structure's own (isotropic or anisotropic) ADPs.
    delta2:     quadratic correlated-motion sharpening, Å².
    radiation:  ``"xray"`` (atomic-number weights) or ``"neutron"`` (scattering lengths).
    qmin:       low-Q cut of the sine transform in Å⁻¹ (not in pdffit2; 0 = none).
    qbroad:     peak broadening growing with r, Å⁻¹.
    delta1:     linear correlated-motion sharpening, Å.
    scale:      overall scale factor.
    spdiameter: diameter of a spherical particle in Å (pdffit2's envelope; 0 = bulk crystal).
    """

    qmax: float = pdfdefaults.QMAX
    qdamp: float = pdfdefaults.QDAMP
    uiso: float | None = pdfdefaults.UISO
    delta2: float = pdfdefaults.DELTA2
    radiation: str = pdfdefaults.RADIATION
    qmin: float = 0.0
    qbroad: float = 0.0
    delta1: float = 0.0
    scale: float = 1.0
    spdiameter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("qmax", "qdamp", "delta2", "qmin", "qbroad", "delta1", "scale", "spdiameter"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
                raise SimulationError(f"PDFParams.{name} must be a finite number, got {value!r}")
        for name in ("qmax", "qdamp", "qmin", "qbroad", "spdiameter", "delta1", "delta2"):
            if getattr(self, name) < 0:
                raise SimulationError(f"PDFParams.{name} must be >= 0, got {getattr(self, name)}")
        if self.qmax > 0 and self.qmin >= self.qmax:
            raise SimulationError(f"PDFParams.qmin ({self.qmin}) must be below qmax ({self.qmax})")
        if self.uiso is not None and not (math.isfinite(self.uiso) and self.uiso > 0):
            raise SimulationError(f"PDFParams.uiso must be > 0 Å² (or None to keep the structure's), got {self.uiso}")
        if self.radiation not in RADIATIONS:
            raise SimulationError(f"unknown radiation {self.radiation!r}; use one of {RADIATIONS}")

    def as_header(self) -> dict[str, Any]:
        """The settings as ``.gr`` header entries (``mode`` is the PDFgetX3 name of radiation)."""
        d = asdict(self)
        d["uiso"] = "structure" if self.uiso is None else self.uiso
        d["mode"] = d.pop("radiation")
        return d


# --------------------------------------------------------------------------- structures


def _require_diffpy():
    try:
        import diffpy.structure  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "simulating PDFs needs diffpy.structure; install it with: pip install 'sgmine[simulate]'"
        ) from exc
    return diffpy.structure


def read_structure(path: str | os.PathLike) -> Any:
    """Read a crystal structure file (CIF, or any format diffpy.structure knows) into a
    ``diffpy.structure.Structure``, with symmetry expanded to the full unit cell.

    Raises :class:`SimulationError` naming the file when it is missing, unreadable or empty.
    """
    ds = _require_diffpy()
    path = Path(path)
    if not path.exists():
        raise SimulationError(f"{path}: no such file")
    if path.is_dir():
        raise SimulationError(f"{path}: is a directory, not a structure file")
    try:
        structure = ds.loadStructure(str(path))
    except Exception as exc:  # diffpy raises several kinds (StructureFormatError, ValueError, ...)
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise SimulationError(f"{path}: cannot read a crystal structure ({message})") from exc
    if len(structure) == 0:
        raise SimulationError(f"{path}: the structure has no atoms")
    return structure


def to_diffpy(obj: Any) -> Any:
    """A ``diffpy.structure.Structure`` from a diffpy Structure (returned as is), a pymatgen
    ``Structure`` (partial occupancies become one atom per species), a pyxtal crystal, or a
    path to a structure file."""
    ds = _require_diffpy()
    if isinstance(obj, ds.Structure):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return read_structure(obj)
    if hasattr(obj, "to_pymatgen") and callable(obj.to_pymatgen):  # pyxtal
        obj = obj.to_pymatgen()
    if hasattr(obj, "lattice") and hasattr(obj, "sites") and hasattr(obj.lattice, "abc"):  # pymatgen
        lat = ds.Lattice(*obj.lattice.abc, *obj.lattice.angles)
        atoms = []
        for site in obj.sites:
            for species, occupancy in site.species.items():
                symbol = getattr(species, "symbol", None) or str(species)
                atoms.append(ds.Atom(symbol, site.frac_coords, occupancy=float(occupancy)))
        return ds.Structure(atoms, lattice=lat)
    raise SimulationError(
        f"cannot use a {type(obj).__name__} as a crystal structure; give a diffpy.structure or pymatgen "
        "Structure, a pyxtal crystal or a structure file"
    )


_ELEMENT = re.compile(r"^\s*(?:\d+-)?([A-Za-z]{1,2})")


def neutral_element(symbol: str) -> str:
    """The neutral element of an atom-type symbol: ``"Fe2+"`` → ``"Fe"``, ``"O2-"`` → ``"O"``,
    ``"SI"`` → ``"Si"``. Raises :class:`SimulationError` for an unknown element."""
    import periodictable

    m = _ELEMENT.match(str(symbol))
    if m is not None:
        letters = m.group(1)
        for candidate in (letters[:1].upper() + letters[1:].lower(), letters[:1].upper()):
            try:
                periodictable.elements.symbol(candidate)
            except ValueError:
                continue
            return candidate
    raise SimulationError(f"unknown element {symbol!r}")


@lru_cache(maxsize=None)
def scattering_weight(element: str, radiation: str) -> float:
    """Weight of a neutral element: its atomic number (X-ray, as pdffit2) or its coherent
    neutron scattering length in fm (from ``periodictable``)."""
    import periodictable

    el = periodictable.elements.symbol(element)
    if radiation == "xray":
        return float(el.number)
    if radiation == "neutron":
        b = el.neutron.b_c
        if b is None:
            raise SimulationError(f"no coherent neutron scattering length is known for {element}")
        return float(np.real(b))
    raise SimulationError(f"unknown radiation {radiation!r}; use one of {RADIATIONS}")


# --------------------------------------------------------------------------- pair table


@dataclass
class PairTable:
    """Pair distances of one crystal up to :attr:`reach`, compressed for fast PDF variants.

    Entries, sorted by distance, are histogram bins per element pair: ``distance`` (mean of the
    bin), ``spread`` (variance of the distances in it, Å²), ``weight`` (sum of occupancy
    products over ordered pairs) and ``pair_type`` (index into :attr:`pair_elements`). ``msd_*``
    are the same pairs binned also by their mean-square displacement along the bond (only when
    the structure has ADPs).
    """

    elements: tuple[str, ...]
    element_occupancy: np.ndarray  # (n_elements,) Σ occupancy per element in the cell
    pair_elements: np.ndarray  # (n_pair_types, 2) element indices
    volume: float  # unit-cell volume, Å³
    rmax: float  # the largest r a PDF may be asked for
    reach: float  # pairs are complete up to this distance
    distance: np.ndarray
    spread: np.ndarray
    weight: np.ndarray
    pair_type: np.ndarray
    msd_distance: np.ndarray | None = None
    msd_spread: np.ndarray | None = None
    msd_weight: np.ndarray | None = None
    msd_pair_type: np.ndarray | None = None
    msd: np.ndarray | None = None
    missing_adps: tuple[str, ...] = ()  # labels of atoms without ADPs (U = 0)
    n_pairs: int = 0
    source: str = ""
    info: dict = field(default_factory=dict)

    @property
    def n_atoms(self) -> float:
        """Σ occupancy of the unit cell."""
        return float(self.element_occupancy.sum())

    def pair_weights(self, radiation: str) -> np.ndarray:
        """``b_a b_b / <b>²`` for every pair type under ``radiation``."""
        b = np.array([scattering_weight(e, radiation) for e in self.elements])
        bavg = float(self.element_occupancy @ b) / self.n_atoms
        if bavg == 0:
            raise SimulationError(f"the average {radiation} scattering weight of {self.source or 'the structure'} is 0")
        return b[self.pair_elements[:, 0]] * b[self.pair_elements[:, 1]] / bavg**2


def _cartesian_adps(structure: Any) -> np.ndarray:
    """(n, 3, 3) Cartesian U tensors of the atoms (diffpy's U is in the normalised lattice basis)."""
    F1 = np.asarray(structure.lattice.normbase, dtype=float)
    U = np.array([np.asarray(a.U, dtype=float) for a in structure])
    return np.einsum("ji,njk,kl->nil", F1, U, F1)


def pair_table(structure: Any, rmax: float = 30.0, radiation: str = "xray") -> PairTable:
    """Find all pair distances of ``structure`` needed for PDFs up to ``rmax`` Å (the
    once-per-structure work). ``radiation`` is checked (weights must exist for all elements)
    but a table serves both radiations: :func:`pdf` applies the weights of ``params.radiation``.

    The steps: the cell, its elements and ADPs; the lattice translations within reach
    (:func:`_lattice_shifts`); every pair of an atom of the cell with another atom
    (:func:`_pairs`), binned by element pair and distance (:func:`_compress`) and, with ADPs,
    by mean-square displacement too (:func:`_add_msd_bins`).
    """
    if not (math.isfinite(rmax) and rmax > 0):
        raise SimulationError(f"rmax must be a positive number of Å, got {rmax}")
    if radiation not in RADIATIONS:
        raise SimulationError(f"unknown radiation {radiation!r}; use one of {RADIATIONS}")
    stru = to_diffpy(structure)
    source = str(getattr(stru, "title", "") or "")
    if len(stru) == 0:
        raise SimulationError(f"structure {source!r} has no atoms")
    lat = stru.lattice
    base = np.asarray(lat.base, dtype=float)  # rows: lattice vectors in Cartesian Å
    volume = float(abs(np.linalg.det(base)))
    if not volume > 1e-6:
        raise SimulationError(f"structure {source!r} has a degenerate unit cell (volume {volume:g} Å³)")

    symbols = [neutral_element(a.element) for a in stru]
    elements = tuple(sorted(set(symbols)))
    for e in elements:
        scattering_weight(e, radiation)
    el_index = np.array([elements.index(s) for s in symbols])
    occ = np.array([float(a.occupancy) for a in stru])
    element_occupancy = np.bincount(el_index, weights=occ, minlength=len(elements))
    if not element_occupancy.sum() > 0:
        raise SimulationError(f"structure {source!r} has no occupied sites")
    n_el = len(elements)
    pair_elements = np.array([(a, b) for a in range(n_el) for b in range(a, n_el)], dtype=np.int64)
    type_of = np.full((n_el, n_el), -1, dtype=np.int64)
    for k, (a, b) in enumerate(pair_elements):
        type_of[a, b] = type_of[b, a] = k

    U = _cartesian_adps(stru)
    uiso = np.trace(U, axis1=1, axis2=2) / 3
    has_adps = bool(np.any(uiso > 0))
    missing = tuple(f"{a.label or a.element}" for a, u in zip(stru, uiso) if not u > 0)

    reach = (rmax + TABLE_MARGIN) / (1.0 - STRAIN_LIMIT)
    frac = np.mod(np.array([a.xyz for a in stru], dtype=float), 1.0)
    cart = frac @ base
    shifts = _lattice_shifts(base, reach)
    nbins = int(math.ceil(reach / PAIR_BIN)) + 1
    pair_type = type_of[el_index[:, None], el_index[None, :]]  # of atoms i, j of the cell
    key, dist, w, msd, n_pairs = _pairs(cart, shifts, reach, occ, pair_type, nbins, U if has_adps else None)
    if key is None:
        raise SimulationError(f"structure {source!r} has no atom pairs within {reach:.1f} Å")

    entries = _compress(key, dist, w, size=len(pair_elements) * nbins)
    table = PairTable(
        elements=elements,
        element_occupancy=element_occupancy,
        pair_elements=pair_elements,
        volume=volume,
        rmax=float(rmax),
        reach=float(reach),
        distance=entries[0],
        spread=entries[1],
        weight=entries[2],
        pair_type=entries[3] // nbins,
        missing_adps=missing,
        n_pairs=n_pairs,
        source=source,
    )
    if msd is not None:
        _add_msd_bins(table, key, dist, w, msd, nbins)
    return table


def _lattice_shifts(base: np.ndarray, reach: float) -> np.ndarray:
    """(K, 3) Cartesian lattice translations (of the lattice vectors, rows of ``base``) that can
    bring an atom of the cell within ``reach`` Å of another atom of the cell."""
    rec_norms = np.linalg.norm(np.linalg.inv(base), axis=0)  # |a*|, |b*|, |c*| (no 2π)
    nmax = np.ceil(reach * rec_norms).astype(int) + 1
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in nmax], indexing="ij")
    shifts = np.stack([g.ravel() for g in grids], axis=1) @ base  # (K, 3)
    diameter = float(np.max(np.linalg.norm(np.array([[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]]) @ base, axis=1)))
    return shifts[np.einsum("kx,kx->k", shifts, shifts) <= (reach + diameter) ** 2]


def _pairs(cart: np.ndarray, shifts: np.ndarray, reach: float, occ: np.ndarray, pair_type: np.ndarray, nbins: int,
           U: np.ndarray | None):
    """Every pair of an atom ``i`` of the cell (Cartesian positions ``cart``) with an atom ``j >= i``
    shifted by one of ``shifts``, from :data:`MIN_PAIR_DISTANCE` to ``reach`` Å:
    ``(key, distance, weight, msd, number of pairs)``, or ``None`` in place of the arrays when
    there is none. ``key`` is ``pair_type[i, j] * nbins`` + the distance bin (:data:`PAIR_BIN`),
    ``weight`` the occupancy product counted for both orders, ``msd`` (with Cartesian ADPs ``U``,
    else None) the pair's mean-square displacement along the bond."""
    parts: list[tuple[np.ndarray, ...]] = []
    n_pairs = 0
    for i in range(len(cart)):
        js = np.arange(i, len(cart))
        vec = shifts[:, None, :] + (cart[js] - cart[i])[None, :, :]  # (K, nj, 3)
        d2 = np.einsum("kjx,kjx->kj", vec, vec)
        kk, jj = np.nonzero((d2 >= MIN_PAIR_DISTANCE**2) & (d2 <= reach * reach))
        if kk.size == 0:
            continue
        dist = np.sqrt(d2[kk, jj])
        j_atoms = js[jj]
        w = occ[i] * occ[j_atoms] * np.where(j_atoms == i, 1.0, 2.0)  # ordered pairs
        ptype = pair_type[i, j_atoms]
        key = ptype * nbins + np.minimum((dist / PAIR_BIN).astype(np.int64), nbins - 1)
        msd = None
        if U is not None:
            unit = vec[kk, jj] / dist[:, None]
            msd = np.einsum("px,pxy,py->p", unit, U[i][None, :, :] + U[j_atoms], unit)
        parts.append((key, dist, w, msd))
        n_pairs += int(w.size)
    if not parts:
        return None, None, None, None, 0
    key, dist, w, msd = (np.concatenate(x) if x[0] is not None else None for x in zip(*parts))
    return key, dist, w, msd, n_pairs


def _add_msd_bins(table: PairTable, key: np.ndarray, dist: np.ndarray, w: np.ndarray, msd: np.ndarray,
                  nbins: int) -> None:
    """Fill ``table.msd_*``: the pairs (with their ``key`` of pair type and distance bin) binned
    also by log msd in steps of 0.5 %, so that the pairs of one entry share a width."""
    good = msd > 0
    mbin = np.round(np.log(msd[good]) / math.log(1.005)).astype(np.int64)
    mbin -= mbin.min()
    nm = int(mbin.max()) + 1
    d_m, spread_m, w_m, key_m, msd_m = _compress(key[good] * nm + mbin, dist[good], w[good], msd[good])
    table.msd_distance, table.msd_spread, table.msd_weight = d_m, spread_m, w_m
    table.msd_pair_type = key_m // nm // nbins
    table.msd = msd_m



def _compress(key: np.ndarray, dist: np.ndarray, w: np.ndarray, extra: np.ndarray | None = None, size: int = 0):
    """Sum pairs with one ``key``: (mean distance, distance variance, Σ weight, key[, mean extra]),
    sorted by mean distance. ``size`` > 0: keys are below it (dense counting, faster)."""
    if size:
        ws = np.bincount(key, weights=w, minlength=size)
        uniq = np.flatnonzero(ws > 0)
        ws = ws[uniq]
        wd = np.bincount(key, weights=w * dist, minlength=size)[uniq]
        wdd = np.bincount(key, weights=w * dist * dist, minlength=size)[uniq]
        we = None if extra is None else np.bincount(key, weights=w * extra, minlength=size)[uniq]
    else:
        uniq, inv = np.unique(key, return_inverse=True)
        ws = np.bincount(inv, weights=w)
        wd = np.bincount(inv, weights=w * dist)
        wdd = np.bincount(inv, weights=w * dist * dist)
        we = None if extra is None else np.bincount(inv, weights=w * extra)
    mean = wd / ws
    spread = np.maximum(wdd / ws - mean * mean, 0.0)
    order = np.argsort(mean, kind="stable")
    out = [mean[order], spread[order], ws[order], uniq[order]]
    if we is not None:
        out.append((we / ws)[order])
    return tuple(out)


# --------------------------------------------------------------------------- PDF


def _width_nodes(u_min: float, u_max: float, q: float) -> np.ndarray:
    """Gaussian variances (Å²) to split peaks between, for a signal up to wave number ``q``.

    A peak of variance ``u`` split between nodes ``u_a < u < u_b`` (variance-preserving) has a
    transfer function off by about ``(Δx)² e^(−x) / 8`` at wave number k, with ``x = u k²/2`` and
    ``Δx = (u_b − u_a) k²/2``. Below ``x = 2`` at k = q the nodes are spaced by
    ``Δx = TOL·e^(x/2)``; above it, where the worst wave number is below q, by a constant
    ratio (``Δx = TOL·e·x/2``); either keeps the error under about TOL²/8 at every k ≤ q.
    """
    nodes = [u_min]
    while nodes[-1] < u_max:
        x = nodes[-1] * q * q / 2
        dx = WIDTH_TOLERANCE * (math.exp(x / 2) if x <= 2.0 else math.e * x / 2)
        nodes.append(nodes[-1] + 2 * dx / (q * q))
    if len(nodes) == 1:
        nodes.append(u_min * 1.001 + 1e-12)
    return np.array(nodes)


def _transform_length(n_min: int, qmax: float) -> int:
    """A length >= ``n_min`` for the zero-padded sine transform whose frequency grid
    ``π k / (n STEP)`` has a node within 0.01 % of ``qmax`` and has only small prime factors."""
    from scipy import fft as sfft

    k = math.ceil(qmax * n_min * STEP / math.pi)
    for _ in range(200):
        n = round(k * math.pi / (qmax * STEP))
        if n >= n_min and sfft.next_fast_len(n) == n and abs(math.pi * k / (n * STEP) - qmax) < 1e-4 * qmax:
            return n
        k += 1
    return sfft.next_fast_len(n_min)


def _sphere_envelope(r: np.ndarray, diameter: float) -> np.ndarray:
    x = r / diameter
    return np.where(x < 1.0, 1.0 - 1.5 * x + 0.5 * x**3, 0.0)


def pdf(table: PairTable, r: np.ndarray, params: PDFParams = PDFParams(), strain: float = 0.0) -> np.ndarray:
    """G(r) in Å⁻² at the points ``r`` (Å, 0 ≤ r ≤ ``table.rmax``) for ``params``, with the
    lattice isotropically strained by ``strain`` (0.03 = +3 % on every distance).

    The steps: the table's entries (:func:`_entries`) as far as their peaks reach into the
    computed range (:func:`_computed_range`), each entry's peak width, the peaks broadened on a
    grid of :data:`STEP` (:func:`_broadened_peaks`), G(r) and its envelopes, the Qmax
    termination (:func:`_terminated`), and the values at ``r`` (:func:`_at_points`).
    """
    r = _checked_points(table, r, strain)
    dist, spread, wocc, ptype, sigp2 = _entries(table, params)

    # -- the computed range: ~8 termination ripples beyond the requested r, tapered at the end;
    #    entries (sorted by distance) are used as far as their peaks reach into it
    r_out = float(r.max())
    stretch = 1.0 + strain
    r_end, n_use = _computed_range(table, params, r_out, stretch, dist, sigp2)
    ds = dist[:n_use] * stretch
    weight = wocc[:n_use] * table.pair_weights(params.radiation)[ptype[:n_use]]
    if np.ndim(sigp2):
        sigp2 = sigp2[:n_use]

    # -- each entry's peak width (pdffit2's sharpening; entries with a factor <= 0 are left out)
    corr = 1.0 - params.delta1 / ds - params.delta2 / ds**2 + params.qbroad**2 * ds**2
    valid = corr > 0
    if not valid.all():
        weight = np.where(valid, weight, 0.0)
        corr = np.where(valid, corr, 1.0)
    u = sigp2 * corr + spread[:n_use] * stretch**2
    q_cut = params.qmax if params.qmax > 0 else math.pi / STEP

    n_grid = int(math.ceil(r_end / STEP)) + 1
    rg = STEP * np.arange(n_grid)
    peaks = _broadened_peaks(ds, weight, u, q_cut, n_grid) if ds.size else np.zeros(n_grid)

    # -- G(r): pair sum over r minus the average density line, envelopes
    rho0 = table.n_atoms / (table.volume * (1.0 + strain) ** 3)
    g = np.zeros(n_grid)
    g[1:] = peaks[1:] / (table.n_atoms * rg[1:]) - 4 * math.pi * rho0 * rg[1:]
    if params.qdamp > 0:
        g *= np.exp(-0.5 * (rg * params.qdamp) ** 2)
    if params.spdiameter > 0:
        g *= _sphere_envelope(rg, params.spdiameter)
    if params.qmax > 0:
        g = _terminated(g, rg, r_out, r_end, params)
    g *= params.scale
    return _at_points(g, rg, r)


def _checked_points(table: PairTable, r: np.ndarray, strain: float) -> np.ndarray:
    """``r`` as a float array, once it and ``strain`` are checked against the table."""
    r = np.asarray(r, dtype=float)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)):
        raise SimulationError("r must be a non-empty 1-D array of finite values")
    if r.min() < 0:
        raise SimulationError(f"r must be >= 0 Å, got {r.min():g}")
    if r.max() > table.rmax + 1e-9:
        raise SimulationError(
            f"r reaches {r.max():g} Å but the pair table was built for rmax {table.rmax:g} Å; "
            "build it with a larger rmax"
        )
    if not (math.isfinite(strain) and abs(strain) <= STRAIN_LIMIT):
        raise SimulationError(f"strain must be within ±{STRAIN_LIMIT}, got {strain}")
    return r


def _entries(table: PairTable, params: PDFParams):
    """``(distance, spread, weight, pair_type, σp²)`` of the table's entries for ``params``: the
    entries binned by the structure's own mean-square displacements when ``params.uiso`` is None
    (an array of σp²), else the plain entries with ``σp² = 2·uiso`` (a scalar)."""
    if params.uiso is None:
        if table.msd is None or table.missing_adps:
            atoms = ", ".join(table.missing_adps[:5]) or "all atoms"
            raise SimulationError(
                f"uiso=None keeps the structure's displacement parameters, but {atoms} have none (U = 0); "
                "give a uiso"
            )
        return table.msd_distance, table.msd_spread, table.msd_weight, table.msd_pair_type, table.msd
    return table.distance, table.spread, table.weight, table.pair_type, np.float64(2.0 * params.uiso)


def _computed_range(table: PairTable, params: PDFParams, r_out: float, stretch: float, dist: np.ndarray,
                    sigp2: Any) -> tuple[float, int]:
    """``(r_end, n_use)``: where the computed curve ends (:data:`RIPPLES` termination ripples
    and 2 Å beyond ``r_out``, as far as the table's complete pairs allow) and how many of the
    entries (sorted by ``dist``) have peaks reaching into it."""
    margin = 2.0 + (2 * math.pi * RIPPLES / params.qmax if params.qmax > 0 else 0.0)
    sig_max = math.sqrt(float(np.max(sigp2)) * max(1.0, 1.0 + params.qbroad**2 * table.reach**2) + PAIR_BIN**2)
    r_end = min(r_out + margin, table.reach * stretch - PEAK_SIGMAS * sig_max)
    if r_end < r_out + 1.0:
        raise SimulationError(
            f"peaks are too broad (σ up to {sig_max:.2f} Å) for a table built for rmax {table.rmax:g} Å; "
            "build it with a larger rmax"
        )
    n_use = int(np.searchsorted(dist, (r_end + PEAK_SIGMAS * sig_max) / stretch, side="right"))
    return r_end, n_use


def _broadened_peaks(ds: np.ndarray, weight: np.ndarray, u: np.ndarray, q_cut: float, n_grid: int) -> np.ndarray:
    """Σ weight · Gaussian(r; distance, variance u) on the first ``n_grid`` points of the
    :data:`STEP` grid, accurate up to wave number ``q_cut``.

    Each entry is split between two neighbouring widths (variance-preserving, :func:`_width_nodes`)
    and two neighbouring grid points (linear), then every width group is broadened in Fourier space.
    """
    from scipy import fft as sfft

    nodes = _width_nodes(float(u.min()), float(u.max()), q_cut)
    j = np.clip(np.searchsorted(nodes, u, side="right") - 1, 0, len(nodes) - 2)
    a = (nodes[j + 1] - u) / (nodes[j + 1] - nodes[j])
    pad = int(math.ceil(2 * PEAK_SIGMAS * math.sqrt(nodes[-1]) / STEP)) + 2
    length = sfft.next_fast_len(n_grid + pad, real=True)
    p = ds / STEP
    i0 = np.floor(p).astype(np.int64)
    t = p - i0
    base = j * length + i0
    idx = np.concatenate((base, base + 1, base + length, base + length + 1))
    wts = np.concatenate((weight * a * (1 - t), weight * a * t, weight * (1 - a) * (1 - t), weight * (1 - a) * t))
    hist = np.bincount(idx, weights=wts, minlength=len(nodes) * length).reshape(len(nodes), length)
    k = 2 * math.pi * np.fft.rfftfreq(length, d=STEP)
    spectrum = sfft.rfft(hist, axis=1)
    transfer = np.exp(-0.5 * nodes[:, None] * k[None, :] ** 2)
    # undo the mean smoothing of the linear assignment to grid points, sinc²(k·STEP/2)
    transfer /= np.maximum(np.sinc(k * STEP / (2 * math.pi)) ** 2, 0.5)[None, :]
    return sfft.irfft(np.einsum("jk,jk->k", spectrum, transfer), n=length)[:n_grid] / STEP


def _terminated(g: np.ndarray, rg: np.ndarray, r_out: float, r_end: float, params: PDFParams) -> np.ndarray:
    """The Qmax (and qmin) termination of ``g`` on the grid ``rg``: the sine transform of the
    curve tapered to 0 between ``r_out`` and ``r_end``, cut to ``qmin ≤ Q ≤ qmax``, transformed
    back. ``g`` is tapered in place."""
    from scipy import fft as sfft

    n_grid = len(g)
    taper_start = r_out + 0.5 * (r_end - r_out)
    x = np.clip((rg - taper_start) / (r_end - taper_start), 0.0, 1.0)
    g *= 0.5 * (1 + np.cos(math.pi * x))
    n_dst = _transform_length(2 * n_grid, params.qmax)
    padded = np.zeros(n_dst - 1)
    padded[: n_grid - 1] = g[1:]
    coef = sfft.dst(padded, type=1)
    qk = math.pi * np.arange(1, n_dst) / (n_dst * STEP)
    # the sine series approximates the integral over 0..qmax: trapezoid weights at the ends
    weights = np.clip((params.qmax - qk) / (qk[1] - qk[0]) + 0.5, 0.0, 1.0)
    if params.qmin > 0:
        weights *= np.clip((qk - params.qmin) / (qk[1] - qk[0]) + 0.5, 0.0, 1.0)
    coef *= weights
    return np.concatenate(([0.0], sfft.idst(coef, type=1)[: n_grid - 1]))


def _at_points(g: np.ndarray, rg: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``g`` (on the :data:`STEP` grid ``rg``) at the points ``r``: the grid values where ``r``
    is on the grid, else a cubic spline through the grid points around ``r``."""
    pos = r / STEP
    on_grid = np.abs(pos - np.rint(pos)) < 1e-6
    if on_grid.all():
        return g[np.rint(pos).astype(np.int64)]
    from scipy.interpolate import CubicSpline

    lo = max(int(math.floor(pos.min())) - 3, 0)
    hi = min(int(math.ceil(pos.max())) + 4, len(g))
    return CubicSpline(rg[lo:hi], g[lo:hi])(r)


def simulate(structure: Any, r: np.ndarray, params: PDFParams = PDFParams(), strain: float = 0.0) -> np.ndarray:
    """G(r) of ``structure`` (diffpy/pymatgen/pyxtal object or structure file) at the points ``r``."""
    r = np.asarray(r, dtype=float)
    rmax = float(np.max(r)) if r.size else 0.0
    table = pair_table(structure, rmax=max(rmax, 1.0), radiation=params.radiation)
    return pdf(table, r, params, strain=strain)


# --------------------------------------------------------------------------- files


def _header_value(value: Any) -> str:
    text = " ".join(str(value).split())
    return text.replace("=", ":")


def write_gr(path: str | os.PathLike, r: np.ndarray, g: np.ndarray, header: dict) -> None:
    """Write ``r, G`` as a PDFgetX3-like ``.gr`` file (atomically): ``key = value`` header
    lines (readable with ``diffpy.utils.parsers.load_data(path, headers=True)``), then
    ``#### start data`` and two columns."""
    path = Path(path)
    r = np.asarray(r, dtype=float)
    g = np.asarray(g, dtype=float)
    if r.shape != g.shape or r.ndim != 1:
        raise SimulationError(f"{path}: r and G must be 1-D arrays of one length, got {r.shape} and {g.shape}")
    lines = ["[DEFAULT]", "", "# simulated by sgmine (sgmine.simulate)"]
    for key, value in header.items():
        name = re.sub(r"\s+", "_", str(key).strip()).replace("=", "_")
        lines.append(f"{name} = {_header_value(value)}")
    lines += ["", "#### start data", "#S 1", "#L r($\\AA$)  G($\\AA^{-2}$)"]
    body = "\n".join(f"{x:.6g} {y:.8g}" for x, y in zip(r, g))
    from sgmine.files import atomic_write

    atomic_write(path, "\n".join(lines) + "\n" + body + "\n")


def simulate_file(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: PDFParams = PDFParams(),
    rmin: float = 0.0,
    rmax: float = 30.0,
    rstep: float = 0.01,
) -> Path:
    """Simulate the PDF of the structure file ``path`` on ``rmin..rmax`` (step ``rstep``) and
    write it to ``out_dir/<stem>.gr`` with the settings in its header; returns the written path."""
    if not (0 <= rmin < rmax and rstep > 0):
        raise SimulationError(f"need 0 <= rmin < rmax and rstep > 0, got rmin={rmin}, rmax={rmax}, rstep={rstep}")
    path = Path(path)
    structure = read_structure(path)
    r = rmin + rstep * np.arange(int(math.floor((rmax - rmin) / rstep + 1e-9)) + 1)
    try:
        g = simulate(structure, r, params)
    except SimulationError as exc:
        raise SimulationError(f"{path}: {exc}") from exc
    elements, counts = np.unique([neutral_element(a.element) for a in structure], return_counts=True)
    header = {
        "program": f"sgmine {__version__} (sgmine simulate)",
        "structure": path.name,
        "composition": " ".join(f"{e}{n}" for e, n in zip(elements, counts)),
        **params.as_header(),
        "rmin": float(rmin),
        "rmax": float(r[-1]),
        "rstep": float(rstep),
    }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) / f"{path.stem}.gr"
    write_gr(out, r, g, header)
    return out
