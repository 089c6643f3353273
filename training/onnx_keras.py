"""Keras weights read back from an exported ONNX file: the warm start from what ships.

``sgmine-train fit DATA --init-from sgmine/data/model.onnx --member K`` starts a run from member
``K`` of a shipped ensemble (or from the one network of a single-network file), so that every run
continues the last one and only the ONNX file has to survive between runs.

tf2onnx writes each network of a file as a chain of operators whose constants are the Keras
weights, and an ensemble (:func:`training.ensemble.build_ensemble`) as one such chain per member,
each ending in its own ``Softmax``, whose outputs are added in member order and scaled by
1 / members. This module reads them back:

=========================================  ===============================================
ONNX (per member, in graph order)          Keras layer
=========================================  ===============================================
``Mul`` by a constant, ``Add`` a constant  BatchNormalization (its inference affine map)
``Conv`` (kernel ``(out, in, 1, taps)``),  Conv1D (kernel ``(taps, in, out)``, bias)
then ``Add`` of a constant bias
``MatMul`` / ``Gemm`` with a constant,     Dense (kernel ``(in, out)``, bias)
then ``Add`` of a constant bias
``MaxPool``, ``Relu``, ``Transpose``,      no weights (pooling, activations, flatten, dropout)
``Reshape``, ``Squeeze``, ...
=========================================  ===============================================

Constants stored in another precision (a ``Cast`` of a float16 constant, a ``DequantizeLinear``
of an integer one) count as constants. A BatchNormalization's inference map ``scale * x + shift``
does not say which moving statistics it came from: :func:`load_member` writes it with mean 0 and
variance 1 (the same outputs), and :func:`rebase_batch_norms` then gives every BatchNormalization
the mean and variance of its input on training curves, with gamma and beta adjusted so that the
outputs stay the same — so that training, which normalises by the statistics of each batch, starts
from the network that was shipped rather than from a rescaled one.

The graph :mod:`training.onnx_cnn` writes for the reference CNN folds BatchNormalization layers
into the convolutions and cannot be read back; export such a network with ``--converter tf2onnx``.
Branching networks (the ResNet) are not read either: only networks that are one chain of layers.
Every read is checked: :func:`check_member` compares the Keras network with the ONNX member.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Largest |Keras - ONNX| probability a warm-started network may differ from the file's member by.
TOLERANCE = 1e-5
#: Training curves whose activations give each BatchNormalization its statistics (:func:`rebase_batch_norms`).
REBASE_ROWS = 4096
#: Keras layers with weights, and the kind of ONNX step each one reads.
LAYER_KINDS = {"BatchNormalization": "affine", "Conv1D": "conv", "Dense": "dense"}


class OnnxWeightsError(ValueError):
    """An ONNX file whose weights do not fit the Keras network (or cannot be read back at all)."""


@dataclass
class Step:
    """One layer's weights as the ONNX graph holds them: ``kind`` is ``affine`` (scale, shift),
    ``conv`` (Keras-ordered kernel, bias or None) or ``dense`` (kernel, bias or None)."""

    kind: str
    weights: list[Any]

    def describe(self) -> str:
        return f"{self.kind} {tuple(self.weights[0].shape)}"


def read_onnx(path: str | Path):
    """The ``onnx.ModelProto`` at ``path``; :class:`OnnxWeightsError` when it is not a readable file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a broken file
        raise OnnxWeightsError(f"cannot read ONNX file {path}: {exc}") from exc


def graph_constants(graph) -> dict[str, np.ndarray]:
    """Every floating-point constant of ``graph`` by tensor name, as float64: initializers,
    ``Constant`` nodes, and the ``Cast``, ``DequantizeLinear`` or product of constants (a file
    whose weights are stored in float16 or as integers, :mod:`training.shrink`, reads like its
    float32 original)."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Cast" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].astype(np.float64)
        elif node.op_type == "DequantizeLinear" and all(i in values for i in node.input[:2]):
            values[node.output[0]] = _dequantize(node, values)
        elif node.op_type == "Mul" and len(node.input) == 2 and all(i in values for i in node.input):
            values[node.output[0]] = values[node.input[0]].astype(np.float64) * values[node.input[1]]
    return {name: np.asarray(v, np.float64) for name, v in values.items() if np.asarray(v).dtype.kind == "f"}


def _dequantize(node, values: dict[str, np.ndarray]) -> np.ndarray:
    """``(q - zero_point) * scale`` of a ``DequantizeLinear`` node (per-tensor or along its ``axis``)."""
    q = values[node.input[0]].astype(np.float64)
    scale = values[node.input[1]].astype(np.float64)
    zero = values[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] in values else 0.0
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if np.ndim(scale) == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = np.reshape(zero, shape) if np.ndim(zero) else zero
    return (q - zero) * scale


def member_outputs(graph) -> list[str]:
    """The members' ``Softmax`` outputs in the order the file adds them (the order of
    ``sgmine-train ensemble``'s runs); one name for a single network."""
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[int, bool]] = [(producer[graph.output[0].name], False)] if graph.output[0].name in producer else []
    while stack:  # depth-first, inputs in order, a node recorded after its inputs
        i, done = stack.pop()
        if done:
            if nodes[i].op_type == "Softmax":
                found.append(nodes[i].output[0])
            continue
        if i in seen:
            continue
        seen.add(i)
        stack.append((i, True))
        stack.extend((producer[name], False) for name in reversed(nodes[i].input) if name in producer)
    return found


def _cone(nodes: list, output: str) -> set[int]:
    """Positions in ``nodes`` of the nodes whose values reach ``output`` (shape computations are
    not followed: a ``Shape`` node reads only the size of another member's tensor)."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    cone: set[int] = set()
    todo = [output]
    while todo:
        i = producer.get(todo.pop())
        if i is None or i in cone:
            continue
        cone.add(i)
        if nodes[i].op_type != "Shape":
            todo.extend(nodes[i].input)
    return cone


def member_steps(proto, member: int | None = None) -> list[Step]:
    """The weight-carrying steps of member ``member`` of the ONNX model ``proto``, in graph order.

    Parameters
    ----------
    proto
        An ``onnx.ModelProto`` written by ``sgmine-train export`` through tf2onnx.
    member
        Which member of an ensemble (0-based, the order of :func:`member_outputs`); None is
        allowed only for a file that holds one network.

    Raises
    ------
    OnnxWeightsError
        When the member does not exist or its operators are not a chain of the steps above.
    """
    graph = proto.graph
    outputs = member_outputs(graph)
    if not outputs:
        raise OnnxWeightsError("the ONNX graph has no Softmax: not a network this package exported")
    if member is None:
        if len(outputs) > 1:
            raise OnnxWeightsError(f"the file holds {len(outputs)} networks; choose one with --member 0..{len(outputs) - 1}")
        member = 0
    if not 0 <= member < len(outputs):
        raise OnnxWeightsError(f"member {member} does not exist: the file holds {len(outputs)} (0..{len(outputs) - 1})")
    constants = graph_constants(graph)
    nodes = list(graph.node)
    cone = _cone(nodes, outputs[member])
    steps: list[Step] = []
    for i in sorted(cone):  # graph order, which ONNX keeps topological
        _read_node(nodes[i], constants, steps)
    return [_closed(step) for step in steps]


def _read_node(node, constants: dict[str, np.ndarray], steps: list[Step]) -> None:
    """Append what ``node`` adds to ``steps``: a new step, or the bias or shift of the last one."""
    op = node.op_type
    if all(name in constants for name in node.output):  # a constant computed from constants
        return
    const = next((constants[name] for name in node.input if name in constants), None)
    if op == "Conv":
        if node.input[1] not in constants:
            raise OnnxWeightsError(f"convolution {node.name} has no constant kernel")
        w = constants[node.input[1]]
        if w.ndim == 4 and w.shape[2] != 1:
            raise OnnxWeightsError(f"convolution {node.name} is two-dimensional; not a Conv1D")
        kernel = w.reshape(w.shape[0], w.shape[1], w.shape[-1]).transpose(2, 1, 0)
        bias = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        steps.append(Step("conv", [kernel, None if bias is None else bias.ravel()]))
    elif op in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in constants:
        kernel = constants[node.input[1]]
        if op == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            kernel = kernel.T
        bias = constants.get(node.input[2]) if op == "Gemm" and len(node.input) > 2 else None
        steps.append(Step("dense", [kernel, None if bias is None else bias.ravel()]))
    elif op in ("MatMul", "Gemm", "Pad", "Gather") and any(name in constants for name in node.input):
        raise OnnxWeightsError(f"{op} node {node.name} does not fit a Keras layer (is this the reference CNN's direct "
                               "graph? export it with --converter tf2onnx to warm-start from it)")
    elif op == "Mul" and const is not None:
        steps.append(Step("affine", [const.ravel(), None]))
    elif op in ("Add", "Sub") and const is not None:
        _attach_offset(node, const.ravel() * (-1 if op == "Sub" else 1), steps)


def _attach_offset(node, offset: np.ndarray, steps: list[Step]) -> None:
    """An added constant: the bias of the convolution or Dense before it, or the shift of a scale."""
    last = steps[-1] if steps else None
    if last is None or last.weights[1] is not None:
        raise OnnxWeightsError(f"constant added by {node.name} follows no layer it could belong to")
    last.weights[1] = offset


def _closed(step: Step) -> Step:
    """A step with its missing bias or shift as zeros."""
    if step.weights[1] is None:
        width = step.weights[0].shape[-1] if step.kind != "affine" else step.weights[0].size
        step.weights[1] = np.zeros(width)
    return step


def weight_layers(model) -> list:
    """The layers of ``model`` that carry weights a member's steps fill, in order (:data:`LAYER_KINDS`)."""
    return [layer for layer in model.layers if type(layer).__name__ in LAYER_KINDS]


def load_member(model, proto, member: int | None = None) -> None:
    """Put member ``member`` of the ONNX model ``proto`` into the Keras ``model`` (same layers).

    BatchNormalization layers get the member's inference map with mean 0 and variance 1; call
    :func:`rebase_batch_norms` before training on. Raises :class:`OnnxWeightsError` naming the
    first layer whose kind or shape differs.
    """
    steps = member_steps(proto, member)
    layers = weight_layers(model)
    if len(steps) != len(layers):
        raise OnnxWeightsError(
            f"the file's network has {len(steps)} layers with weights ({', '.join(s.describe() for s in steps)}), "
            f"this run's {len(layers)}: use the same --architecture and --width as the file's"
        )
    for i, (layer, step) in enumerate(zip(layers, steps)):
        kind = LAYER_KINDS[type(layer).__name__]
        if kind != step.kind:
            raise OnnxWeightsError(f"layer {i} ({layer.name}) is a {type(layer).__name__}, the file has {step.describe()}")
        if kind == "affine":
            _set_batch_norm(layer, step.weights[0], step.weights[1], mean=0.0, variance=1.0)
        else:
            _set_kernel(layer, *step.weights)


def _set_kernel(layer, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Set a Conv1D's or Dense's kernel and bias; :class:`OnnxWeightsError` on another shape."""
    shape = tuple(layer.kernel.shape)
    if kernel.shape != shape:
        hint = " (a 'none of these' output: train with --outlier-target other)" if _one_output_apart(layer, kernel) else ""
        raise OnnxWeightsError(f"layer {layer.name} has a kernel of shape {shape}, the file's {kernel.shape}{hint}")
    if not layer.use_bias and np.any(bias):
        raise OnnxWeightsError(f"layer {layer.name} has no bias, the file's has one")
    layer.set_weights([kernel.astype(np.float32)] + ([bias.astype(np.float32)] if layer.use_bias else []))


def _one_output_apart(layer, kernel: np.ndarray) -> bool:
    """Whether ``kernel`` differs from ``layer``'s only by one output column (the "none of these" output)."""
    shape = tuple(layer.kernel.shape)
    return len(shape) == 2 and kernel.shape[0] == shape[0] and abs(kernel.shape[1] - shape[1]) == 1


def _set_batch_norm(layer, scale, shift, *, mean, variance) -> None:
    """Give a BatchNormalization the inference map ``scale * x + shift`` with moving statistics
    ``mean`` and ``variance`` (gamma and beta follow from them)."""
    n = int(layer.moving_mean.shape[0])
    scale, shift = np.broadcast_to(scale, (n,)), np.broadcast_to(shift, (n,))
    mean, variance = np.broadcast_to(np.asarray(mean, np.float64), (n,)), np.broadcast_to(np.asarray(variance, np.float64), (n,))
    values = {
        "gamma": scale * np.sqrt(variance + layer.epsilon),
        "beta": shift + scale * mean,
        "moving_mean": mean,
        "moving_variance": variance,
    }
    if not layer.scale and not np.allclose(values["gamma"], 1.0):
        raise OnnxWeightsError(f"layer {layer.name} has no scale (gamma), the file's map scales")
    if not layer.center and not np.allclose(values["beta"], 0.0):
        raise OnnxWeightsError(f"layer {layer.name} has no offset (beta), the file's map shifts")
    layer.set_weights([values[w.name].astype(np.float32) for w in layer.weights])


def batch_norm_map(layer) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` of a BatchNormalization at inference, in float64."""
    weights = {w.name: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    mean, variance = weights["moving_mean"], weights["moving_variance"]
    gamma = weights.get("gamma", np.ones_like(mean))
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale, weights.get("beta", np.zeros_like(mean)) - mean * scale


def rebase_batch_norms(model, x: np.ndarray, *, rows: int = REBASE_ROWS, seed: int = 0) -> None:
    """Give every BatchNormalization of ``model`` the mean and variance of its input on (at most
    ``rows`` of) the curves ``x``, keeping its inference map: the network computes the same, and
    training-mode normalisation by batch statistics starts where the network is."""
    import keras

    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    if not norms or len(x) == 0:
        return
    if len(x) > rows:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))]
    probe = keras.Model(model.inputs, [layer.input for layer in norms])
    activations = probe.predict(x, batch_size=256, verbose=0)
    if len(norms) == 1:
        activations = [activations]
    for layer, values in zip(norms, activations):
        values = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
        scale, shift = batch_norm_map(layer)
        _set_batch_norm(layer, scale, shift, mean=values.mean(axis=0), variance=values.var(axis=0))


def member_probabilities(proto, x: np.ndarray, member: int | None = None) -> np.ndarray:
    """Member ``member``'s softmax output on the curves ``x`` (batch, npoints, 1), by onnxruntime."""
    import onnx
    import onnxruntime as ort

    outputs = member_outputs(proto.graph)
    name = outputs[member or 0]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([name], {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def check_member(model, proto, x: np.ndarray, member: int | None = None, *, tolerance: float = TOLERANCE) -> float:
    """The largest |Keras - ONNX| difference of ``model`` from member ``member`` on the curves ``x``;
    :class:`OnnxWeightsError` when it exceeds ``tolerance``."""
    expected = member_probabilities(proto, x, member)
    got = model.predict(x, batch_size=256, verbose=0)
    difference = float(np.max(np.abs(got - expected))) if len(x) else 0.0
    if not difference <= tolerance:
        raise OnnxWeightsError(f"the network read from the file differs from its member by up to {difference:.3g} "
                               f"(allowed {tolerance:g}); its layers are not the file's")
    return difference


def file_info(proto):
    """The sgmine metadata (:class:`sgmine.model.ModelInfo`) of the ONNX model ``proto``."""
    from sgmine.model import ModelInfo

    try:
        return ModelInfo.from_metadata({p.key: p.value for p in proto.metadata_props})
    except ValueError as exc:
        raise OnnxWeightsError(f"not an sgmine model file: {exc}") from exc


def check_warm_start(path: str | Path, data, *, member: int | None = None) -> None:
    """Refuse to start a run on ``data`` from ``path`` unless the file's classes and grid are the
    dataset's and it has member ``member`` (None: a file of one network).

    The file does not say which structures its networks trained on: a run's test figures are
    free of them only when its dataset and ``--seed`` are those the file was trained with, or
    when its test structures are new to the file (training/README.md, "A run that continues").
    """
    proto = read_onnx(path)
    info = file_info(proto)
    if tuple(info.classes) != tuple(data.classes):
        raise OnnxWeightsError(f"--init-from {path}: its classes are {list(info.classes)}, this dataset's "
                               f"{list(data.classes)}")
    if info.grid != data.grid:
        raise OnnxWeightsError(f"--init-from {path}: its grid is {info.grid.as_dict()}, this dataset's {data.grid.as_dict()}")
    member_steps(proto, member)


def warm_start(model, path: str | Path, x: np.ndarray, *, member: int | None = None) -> float:
    """Rebuild ``model``'s weights from member ``member`` of the ONNX file ``path``
    (:func:`load_member`), give its BatchNormalization layers the statistics of the training
    curves ``x`` (:func:`rebase_batch_norms`), and check it against the file on some of them
    (:func:`check_member`); returns the largest difference."""
    proto = read_onnx(path)
    load_member(model, proto, member)
    rebase_batch_norms(model, x)
    return check_member(model, proto, x[:256], member)


def warm_start_record(path: str | Path, member: int | None) -> dict[str, Any]:
    """What ``history.json`` says about the file a run started from: path, SHA-256, model version, member."""
    import hashlib

    path = Path(path)
    return {
        "file": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "model_version": file_info(read_onnx(path)).model_version,
        "member": member,
    }
