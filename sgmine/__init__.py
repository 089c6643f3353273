"""sgmine: candidate space groups from measured atomic pair distribution functions.

>>> from sgmine import predict
>>> predictions = predict(["Ni.gr"], top_k=3)          # doctest: +SKIP
>>> curve = read_gr("Ni.gr")                            # doctest: +SKIP

The runtime needs numpy, scipy, onnxruntime and diffpy.utils; it never imports TensorFlow.
``predict`` lives in :mod:`sgmine.scan`, ``Prediction`` and ``Candidate`` in
:mod:`sgmine.prediction`, ``read_gr`` (the
reader: r, G and header metadata of a .gr file) in :mod:`sgmine.gr`; they are imported on
first use so that ``sgmine --help`` starts without loading numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Candidate", "Prediction", "predict", "read_gr", "__version__"]

if TYPE_CHECKING:
    from sgmine.gr import read_gr
    from sgmine.prediction import Candidate, Prediction
    from sgmine.scan import predict


def __getattr__(name: str) -> Any:
    if name in ("Candidate", "Prediction"):
        from sgmine import prediction

        return getattr(prediction, name)
    if name == "predict":
        from sgmine.scan import predict

        return predict
    if name == "read_gr":
        from sgmine.gr import read_gr

        return read_gr
    raise AttributeError(f"module 'sgmine' has no attribute {name!r}")
