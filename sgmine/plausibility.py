"""Is this curve a G(r) that the model can judge? Checked before and besides the model.

A network trained on G(r) answers every input with some space group, and confidently so on
many curves that are not a G(r) at all. This module says, from what a file declares and from
the physics of a pair distribution function, when a curve should get no answer
(:attr:`Verdict.refusal`: an error row) or an answer not to be trusted
(:attr:`Verdict.doubts`: ``in_domain = false``).

Every command reads a file through the same checks: :func:`check_file` (what the file declares,
then what its curve looks like) for ``sgmine identify``; ``sgmine scan`` and ``refine`` make the
same two checks, the first before and the second after putting the curve on the model's grid.

What the file declares (:func:`declared_quantity`):

- PDFgetX3 / xPDFsuite ``outputtype = iq | sq | fq`` (``gr`` is a G(r));
- the column labels of PDFgetN / PDFgetX2 / xPDFsuite files (``#L Q S(Q) ...``);
- the file name: ``.chi`` (an integrated diffraction pattern), ``.iq``, ``.sq``, ``.fq``.

What a G(r) looks like (:func:`check_curve`), with r in Å:

- it is band-limited: G(r) is a sine transform of F(Q) measured (or simulated) up to some
  Qmax of at most ~50 Å⁻¹, so a curve whose variation sits at spatial frequencies above
  :data:`NOISE_Q` is noise, not a G(r);
- it oscillates about zero at large r (g(r) → 1): a curve whose mean there is larger than its
  spread is an intensity, S(Q), or a curve with a baseline left in;
- it has a first peak, the shortest interatomic distance, between about 1 and 4 Å
  (:data:`FIRST_PEAK_RANGE`; a first peak at 0.1–0.4 means r in nm). Below 0.8 Å no two atoms
  are, so maxima there that are clearly lower than the first peak beyond (termination ripples,
  strong where S(Q) is cut while still large or carries a normalisation residual) are not the
  first peak: they get a warning (:attr:`Verdict.warnings`), not a refusal
  (:func:`first_neighbour_peak`);
- below that peak it falls, as −4πρ₀r: it does not rise from r = 0 as a sine does;
- it has a peak at each of many interatomic distances, not one or a few, and no single
  spatial frequency carries most of its variation;
- for this model: it reaches :data:`MIN_R_MAX` Å (nothing shorter was trained on).

The thresholds were set from the physics above and checked against every real measured
G(r) in the repository (``tests/test_plausibility.py``): none of them is refused or doubted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sgmine import rmcprofile
from sgmine.header import header_value

#: Spatial frequency (Å⁻¹) above which a G(r) has no variation (Qmax of real PDFs ≤ ~50 Å⁻¹).
NOISE_Q = 60.0
#: Largest share of a curve's variation above :data:`NOISE_Q` that a G(r) may have.
MAX_NOISE_SHARE = 0.25
#: Largest |mean| / spread of G(r) over the upper half of its range (real PDFs: < 0.15).
MAX_OFFSET_RATIO = 1.0
#: Where the first interatomic distance of a material lies, Å.
FIRST_PEAK_RANGE = (0.8, 4.5)
#: The first peak is the first maximum above this share of the curve's highest point.
FIRST_PEAK_LEVEL = 0.3
#: A maximum below ``FIRST_PEAK_RANGE[0]`` at most this share of the height of the first peak
#: beyond it is a termination ripple, not the first peak (measured: C60.gr of diffpy.srfit's
#: examples, 0.66; a side lobe is lower than the peaks it comes from).
MAX_RIPPLE_RATIO = 0.8
#: A peak counts when it rises above this share of the curve's highest point (after a dip
#: below half of it): real G(r) have 8–44 such peaks up to 30 Å.
PEAK_LEVEL = 0.05
#: Smallest correlation of neighbouring points of a G(r) sampled at 0.03–0.1 Å (noise: ~0).
MIN_NEIGHBOUR_CORRELATION = 0.1
#: A G(r) below its first peak is not positive on average by more than this share of the peak.
MAX_LOW_R_RATIO = 0.3
#: Fewest distinct peaks of a crystal's G(r) up to the end of the data (or 30 Å).
MIN_PEAKS = 5
#: Largest share of the variation that one spatial frequency may carry (a sine: ~1).
MAX_ONE_FREQUENCY_SHARE = 0.9
#: The model was trained on curves reaching 30 Å; shorter than this it is not to be trusted.
MIN_R_MAX = 15.0
#: Coarsest r-step that still resolves G(r)'s peaks, Å.
MAX_R_STEP = 0.2
#: Below this r, low-r artefacts of the Fourier transform are common and no atoms are.
ARTEFACT_R = 0.5

#: File suffixes of reciprocal-space data, and what they hold.
RECIPROCAL_SUFFIXES = {
    ".chi": "an integrated diffraction pattern (I(Q) or I(2θ), .chi)",
    ".iq": "I(Q) (.iq)",
    ".sq": "S(Q) (.sq)",
    ".fq": "F(Q) (.fq)",
}
#: PDFgetX3 / xPDFsuite ``outputtype`` values, and what they hold.
OUTPUT_TYPES = {"iq": "I(Q)", "sq": "S(Q)", "fq": "F(Q)", "gr": "G(r)"}
#: How to get a G(r) from reciprocal-space data.
HOW_TO_GET_GR = "sgmine scores G(r); transform it first (PDFgetX3/xPDFsuite outputtype = gr, PDFgetN, ...)"


@dataclass(frozen=True)
class Verdict:
    """What the checks say about one curve.

    ``refusal``: why the curve is not a G(r) at all (an error row), or None.
    ``doubts``: why the model's answer is not to be trusted (``in_domain = false``).
    ``warnings``: what is odd about the curve without speaking against the answer.
    """

    refusal: str | None = None
    doubts: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def trusted(self) -> bool:
        """True when nothing speaks against scoring the curve as an in-domain G(r)."""
        return self.refusal is None and not self.doubts


def _labels(header_lines: Sequence[str]) -> list[str]:
    """The column labels of the last ``#L`` line (SPEC style, as PDFgetN/X2 and xPDFsuite write)."""
    for line in reversed(header_lines):
        text = line.strip()
        if text.startswith("#L"):
            return text[2:].split()
    return []


def declared_quantity(
    *, metadata: dict[str, Any] | None = None, header_lines: Sequence[str] = (), source: str | os.PathLike = ""
) -> str | None:
    """The refusal message when the file says it holds I(Q), S(Q) or F(Q), else None.

    Parameters
    ----------
    metadata
        Header ``key = value`` pairs (PDFgetX3 / xPDFsuite ``outputtype``).
    header_lines
        The lines before the data block (for ``#L`` column labels).
    source
        The file name (its suffix; ``.gz`` is looked through).
    """
    output = str(header_value(metadata or {}, "outputtype") or "").strip().lower()
    if output in OUTPUT_TYPES and output != "gr":
        return f"the header says outputtype = {output}: the data are {OUTPUT_TYPES[output]}, not G(r); {HOW_TO_GET_GR}"
    labels = _labels(header_lines)
    if labels and labels[0].lower().startswith(("q", "2th", "tth", "twotheta")):
        quantity = labels[1] if len(labels) > 1 else "intensity"
        return (f"the column labels say {' '.join(labels[:2])}: the data are {quantity} against "
                f"{labels[0]}, not G(r) against r; {HOW_TO_GET_GR}")
    name = os.path.basename(os.fspath(source)).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = os.path.splitext(name)[1]
    if suffix in RECIPROCAL_SUFFIXES and output != "gr":
        return f"the file name says {RECIPROCAL_SUFFIXES[suffix]}, not G(r); {HOW_TO_GET_GR}"
    return None


def _ordered(r: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite rows, sorted by r, each r once."""
    r, g = np.asarray(r, dtype=np.float64), np.asarray(g, dtype=np.float64)
    finite = np.isfinite(r) & np.isfinite(g)
    r, g = r[finite], g[finite]
    if r.size > 1 and np.any(np.diff(r) <= 0):
        r, index = np.unique(r, return_index=True)
        g = g[index]
    return r, g


def _uniform(r: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
    """``g`` on equally spaced r (linear interpolation when the file's steps vary) and the step."""
    step = float(np.median(np.diff(r)))
    if np.allclose(np.diff(r), step, rtol=1e-3, atol=1e-6):
        return g, step
    n = int(round((r[-1] - r[0]) / step)) + 1
    return np.interp(r[0] + step * np.arange(n), r, g), step


def _spectrum(g: np.ndarray) -> np.ndarray:
    """Power spectrum of ``g`` (mean removed, Hann window)."""
    values = (g - g.mean()) * np.hanning(g.size)
    return np.abs(np.fft.rfft(values)) ** 2


def noise_share(r: np.ndarray, g: np.ndarray) -> float | None:
    """Share of the curve's variation at spatial frequencies above :data:`NOISE_Q` (None when
    the r-step is too coarse to see them)."""
    values, step = _uniform(r, g)
    if np.pi / step < 2 * NOISE_Q or values.size < 64:
        return None
    power = _spectrum(values)
    q = 2 * np.pi * np.fft.rfftfreq(values.size, step)
    total = power.sum()
    return float(power[q > NOISE_Q].sum() / total) if total > 0 else None


def one_frequency_share(r: np.ndarray, g: np.ndarray) -> float | None:
    """Largest share of the curve's variation within ±2 frequency bins of one spatial frequency."""
    values, _ = _uniform(r, g)
    if values.size < 32:
        return None
    power = _spectrum(values)
    total = power.sum()
    if total <= 0:
        return None
    top = int(np.argmax(power))
    return float(power[max(top - 2, 0) : top + 3].sum() / total)


def count_peaks(g: np.ndarray, *, level: float) -> int:
    """Distinct excursions of ``g`` above ``level``, each after a dip below ``level / 2``."""
    state = np.where(g > level, 1, np.where(g <= level / 2, -1, 0))
    state = state[state != 0]
    if state.size == 0:
        return 0
    return int(state[0] == 1) + int(np.count_nonzero((state[:-1] == -1) & (state[1:] == 1)))


def _maxima(g: np.ndarray, level: float) -> np.ndarray:
    """Indices of the local maxima of ``g`` higher than ``level``, in order."""
    inner = (g[1:-1] > g[:-2]) & (g[1:-1] >= g[2:]) & (g[1:-1] > level)
    return np.flatnonzero(inner) + 1


def first_neighbour_peak(r: np.ndarray, g: np.ndarray, *, level: float) -> tuple[float | None, tuple[float, ...]]:
    """The first peak of a G(r) that is an interatomic distance, and the ripples below it.

    Parameters
    ----------
    r, g
        The curve (r in Å, sorted).
    level
        Only maxima higher than this count.

    Returns
    -------
    tuple
        ``(r of the first peak or None, r of the termination ripples below it)``. The maxima
        below ``FIRST_PEAK_RANGE[0]`` are ripples when none of them is higher than
        :data:`MAX_RIPPLE_RATIO` times the first maximum at or beyond it and they are at least a
        ripple's period (2π/Qmax, Qmax ≤ :data:`NOISE_Q`) apart; else the first of them is the
        first peak (and no ripples are named).
    """
    found = _maxima(g, level)
    if not found.size:
        return None, ()
    below, beyond = found[r[found] < FIRST_PEAK_RANGE[0]], found[r[found] >= FIRST_PEAK_RANGE[0]]
    if below.size and beyond.size:
        lower = g[below].max() <= MAX_RIPPLE_RATIO * g[beyond[0]]
        apart = np.diff(r[[*below, beyond[0]]]).min() >= 2 * np.pi / NOISE_Q
        if lower and apart:
            return float(r[beyond[0]]), tuple(float(x) for x in r[below])
    return float(r[found[0]]), ()


def check_curve(
    r: np.ndarray,
    g: np.ndarray,
    *,
    rmax: float = 30.0,
    span: tuple[float, float] | None = None,
) -> Verdict:
    """Check that ``g(r)`` (r in Å, sorted, finite) looks like a G(r) the model can judge.

    Parameters
    ----------
    r, g
        The curve, from as low an r as the file has up to at least ``rmax``.
    rmax
        The end of the model's r-range, Å: the checks look at the curve up to there.
    span
        The file's whole r-range, when ``r`` is only part of it (the reader's window).

    Returns
    -------
    Verdict
        A refusal (not a G(r)), doubts (``in_domain = false``), or neither.
    """
    r, g = _ordered(r, g)
    keep = r <= rmax
    r, g = r[keep], g[keep]
    biggest = float(np.abs(g).max()) if g.size else 0.0
    if biggest > 0:  # every check is scale-free; this keeps 1e300-sized curves finite
        g = g / biggest
    end = min(span[1] if span is not None else r[-1], rmax) if r.size else 0.0
    doubts: list[str] = []
    if end < MIN_R_MAX:
        doubts.append(f"data end at {end:.4g} Å: the model was trained on curves reaching {rmax:g} Å "
                      f"and is not to be trusted on curves shorter than {MIN_R_MAX:g} Å")
    atoms = r >= ARTEFACT_R
    if atoms.sum() < 8:
        return Verdict(doubts=tuple(doubts + ["too few data points above 0.5 Å to check that this is a G(r)"]))
    ra, ga = r[atoms], g[atoms]
    step = float(np.median(np.diff(ra)))

    share = noise_share(ra, ga)
    if share is not None and share > MAX_NOISE_SHARE:
        return Verdict(f"not a G(r): {share:.0%} of its variation is at spatial frequencies above {NOISE_Q:g} Å⁻¹, "
                       "where a G(r) has none (white noise? or r in nm instead of Å?)")
    top = float(ga.max())
    upper = ra >= (ra[0] + ra[-1]) / 2
    mean, spread = float(ga[upper].mean()), float(ga[upper].std())
    if abs(mean) > MAX_OFFSET_RATIO * spread and abs(mean) > PEAK_LEVEL * np.abs(ga).max():
        return Verdict(f"not a G(r): at {ra[upper][0]:.3g}–{ra[-1]:.3g} Å it does not oscillate about zero as G(r) "
                       f"does (mean {mean:.3g}, spread {spread:.3g}); an intensity or S(Q), or a baseline left in?")
    peaks = count_peaks(ga, level=PEAK_LEVEL * top) if top > 0 else 0
    peak, ripples = first_neighbour_peak(ra, ga, level=FIRST_PEAK_LEVEL * top) if top > 0 else (None, ())
    if peak is None or peaks == 0:
        return Verdict("not a G(r): it has no peak (a G(r) has one at each interatomic distance)")
    if peaks == 1:
        return Verdict(f"not a G(r): a single peak (at {peak:.3g} Å); a material's G(r) has one at each "
                       "interatomic distance")
    lo, hi = FIRST_PEAK_RANGE
    if not lo <= peak <= hi:
        unit = " (is r in nm? sgmine needs Å)" if peak < lo else ""
        return Verdict(f"not a G(r) in Å: its first peak is at {peak:.3g} Å, where a material's shortest "
                       f"interatomic distance (about 1–4 Å) cannot be{unit}")

    warnings = ()
    if ripples:
        ratio = float(ga[np.isin(ra, ripples)].max() / ga[np.argmin(np.abs(ra - peak))])
        warnings = (f"strong termination ripples below the first peak ({peak:.3g} Å): maxima at "
                    f"{', '.join(f'{x:.3g}' for x in ripples)} Å, up to {ratio:.0%} of its height",)
    if step > MAX_R_STEP:
        doubts.append(f"r-step {step:.3g} Å is too coarse to resolve G(r)'s peaks (need ≤ {MAX_R_STEP:g} Å)")
    elif share is None and step <= 0.105 and ga.size > 16:
        neighbours = float(np.corrcoef(ga[:-1], ga[1:])[0, 1])
        if neighbours < MIN_NEIGHBOUR_CORRELATION:
            doubts.append(f"neighbouring points are uncorrelated ({neighbours:.2f}) as in noise; a G(r) "
                          f"sampled every {step:.3g} Å is smooth")
    below = (r >= 0.4 * peak) & (r <= 0.75 * peak)
    if below.sum() >= 3:
        ratio = float(g[below].mean() / g[np.argmin(np.abs(r - peak))])
        if ratio > MAX_LOW_R_RATIO:
            doubts.append(f"below its first peak ({peak:.3g} Å) the curve rises from r = 0; a G(r) falls there "
                          "(as −4πρ₀r)")
    if peaks < MIN_PEAKS:
        doubts.append(f"only {peaks} peaks up to {end:.3g} Å; a crystal's G(r) has a peak at each of many "
                      "interatomic distances")
    single = one_frequency_share(ra, ga)
    if single is not None and single > MAX_ONE_FREQUENCY_SHARE:
        doubts.append(f"one spatial frequency carries {single:.0%} of its variation (a sine?), "
                      "unlike a G(r)")
    return Verdict(doubts=tuple(doubts), warnings=warnings)


def check_file(curve, *, rmax: float = 30.0) -> Verdict:
    """The checks every command makes on a file it has read: :func:`declared_quantity`, then
    :func:`check_curve` (on the PDFgui-convention curve of an RMCProfile-format file).

    Parameters
    ----------
    curve
        A :class:`sgmine.gr.Curve` as :func:`sgmine.gr.read_gr` returns it.
    rmax
        The end of the r-range that the command uses, Å.

    Returns
    -------
    Verdict
        A refusal (the file says, or its curve shows, that it is not a G(r)), doubts, or neither.
    """
    declared = declared_quantity(metadata=curve.metadata, header_lines=curve.header_lines, source=curve.source)
    if declared is not None:
        return Verdict(declared)
    g = rmcprofile.to_pdfgui(curve.r, curve.g) if rmcprofile.is_rmcprofile(curve.header_lines) else curve.g
    return check_curve(curve.r, g, rmax=rmax, span=curve.span)
