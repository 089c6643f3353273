"""The default PDF parameters, in one place and without imports, so that command-line help
can show them without loading numpy: :class:`sgmine.simulate.PDFParams` takes its defaults
from here, and so do ``sgmine simulate`` and the plug-ins' commands.

Names and meaning as in pdffit2 (see :class:`sgmine.simulate.PDFParams`).
"""

#: Qmax of the sine transform, Å⁻¹ (0 = no termination).
QMAX = 25.0
#: Q-resolution damping, Å⁻¹: the envelope ``exp(−(qdamp r)²/2)``.
QDAMP = 0.04
#: Isotropic displacement parameter given to every atom, Å².
UISO = 0.005
#: Quadratic correlated-motion sharpening, Å².
DELTA2 = 2.3
#: ``"xray"`` (atomic-number weights) or ``"neutron"`` (scattering lengths).
RADIATION = "xray"
