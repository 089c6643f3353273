"""sgmine: candidate space groups from measured atomic pair distribution functions.

>>> from sgmine import predict
>>> predictions = predict(["Ni.gr"], top_k=3)          # doctest: +SKIP

The runtime needs numpy, scipy, onnxruntime and diffpy.utils; it never imports TensorFlow.
"""

from sgmine.scan import Candidate, Prediction, predict

__version__ = "0.1.0"
__all__ = ["Candidate", "Prediction", "predict", "__version__"]
