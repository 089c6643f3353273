"""Small ONNX models for tests, built with onnx.helper: same input/output contract and metadata
as a trained sgmine model, no TensorFlow. They are not trained: a nearest-template classifier
(whose answer on a template curve is known) or fixed random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sgmine.grid import Grid
from sgmine.model import ModelInfo, attach_metadata


def build_model(
    path: str | Path,
    classes: list[int],
    symbols: list[str],
    templates: np.ndarray | None = None,
    grid: Grid = Grid(),
    input_rank: int = 3,
    sharpness: float = 1.0,
    seed: int = 0,
    **info,
) -> Path:
    """Write an ONNX classifier with sgmine metadata to ``path``.

    With ``templates`` (n_classes × npoints, curves already on the grid) the logits are
    ``-sharpness * |x - t_c|^2`` up to a per-input constant, so an input equal to a template
    is classified as that template's class. Without them the weights are random (seeded).
    """
    n, c = int(grid.npoints), len(classes)
    if templates is None:
        rng = np.random.default_rng(seed)
        weight, bias = rng.normal(0, 0.3, (n, c)), rng.normal(0, 0.1, c)
    else:
        t = np.asarray(templates, dtype=np.float64)
        weight, bias = 2 * sharpness * t.T, -sharpness * (t**2).sum(axis=1)
    shape = ["batch", n, 1] if input_rank == 3 else ["batch", n]
    nodes = [
        helper.make_node("Reshape", ["pdf", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "sgmine_test_model",
        [helper.make_tensor_value_info("pdf", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", c])],
        initializer=[
            numpy_helper.from_array(np.array([-1, n], dtype=np.int64), "flat_shape"),
            numpy_helper.from_array(weight.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    meta = ModelInfo(classes=tuple(classes), symbols=tuple(symbols), grid=grid, **info)
    attach_metadata(proto, meta)
    onnx.save(proto, str(path))
    return Path(path)
