"""RMCProfile-format G(r) files: recognised, and converted to the PDFgui convention the model uses.

An RMCProfile (and Gudrun ``*.mint01``-derived) G(r) file starts with a line holding only the
number of points, then a title line, then r and G(r) columns. Its G(r) is Keen's (J. Appl.
Cryst. 34, 172 (2001)):

    G_RMC(r) = Σᵢⱼ cᵢcⱼbᵢbⱼ [gᵢⱼ(r) − 1]            (barns; → −(Σᵢcᵢbᵢ)² below the first peak)

while PDFgui, PDFgetX3 and the model use

    G(r) = 4πρ₀r [g(r) − 1],  with g(r) − 1 = G_RMC(r) / (Σᵢcᵢbᵢ)²,

so that

    G(r) = 4πρ₀ / (Σᵢcᵢbᵢ)² · r · G_RMC(r).

The factor 4πρ₀/(Σᵢcᵢbᵢ)² needs the number density and composition, which the file does not
hold; it is positive and the same at every r, and the model's grid is min-max normalised, so
:func:`to_pdfgui` returns ``r · G_RMC(r)`` (the model sees exactly what it would see for the
fully scaled curve). To convert a file yourself, multiply the second column by
``4 * pi * rho0 * r / (sum(c_i * b_i))**2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: What goes into the row's warnings when a file is converted.
CONVERTED = ("RMCProfile-format G(r) (Keen's Σcᵢcⱼbᵢbⱼ[g(r)−1]) converted to the PDFgui convention as r·G(r): "
             "4πρ₀r[g(r)−1] up to a constant factor (see sgmine.rmcprofile)")


def is_rmcprofile(header_lines: Sequence[str]) -> bool:
    """True for the header of an RMCProfile-format file: a line holding only a whole number of
    points, then one title line, then the data."""
    lines = [line.strip() for line in header_lines if line.strip()]
    if len(lines) != 2:
        return False
    count, title = lines
    if not count.isdigit() or int(count) < 2:
        return False
    try:
        float(title.split()[0].replace(",", "."))
    except ValueError:
        return True
    return False


def to_pdfgui(r: np.ndarray, g: np.ndarray) -> np.ndarray:
    """An RMCProfile G(r) (Keen's normalisation) as a PDFgui-convention G(r), up to a positive
    constant: ``r * g`` (see the module docstring for the formula and the factor left out)."""
    return np.asarray(r, dtype=np.float64) * np.asarray(g, dtype=np.float64)
