"""The reference CNN written straight into an ONNX graph laid out for onnxruntime's CPU kernels.

tf2onnx turns the Keras model into a faithful but slow graph: the first convolution (one input
channel, 32 taps, 256 filters) runs in onnxruntime's blocked-layout convolution at a few
GFLOP/s and takes a fifth of the scoring time, although it does under 2% of the arithmetic,
and every BatchNormalization is a separate pass over a large tensor. This module writes the
same function as a graph that spends its time in the one convolution that does the work:

==========================  ================================================================
Keras layer                 ONNX graph
==========================  ================================================================
BatchNormalization (input)  ``Mul``, ``Add`` on the (batch, npoints) curve
Conv1D(256, 32) + relu      ``Pad`` (zeros as "same", then a column of ones), ``Gather`` the
                            32-tap windows (batch, 33, npoints), one ``MatMul`` with the
                            kernel and the bias as its 33rd column, ``Relu``
BatchNormalization          its scale goes into the first convolution when every scale is
                            positive (it commutes with the ReLU; the second convolution then
                            reads the same activations as in Keras, which INT8 quantisation
                            prefers), else into the second one's kernel; its shift becomes a
                            constant (filters, npoints) map added after the second convolution
                            (a map, not a bias, because "same" padding pads with zeros)
Conv1D(64, 32) + relu       ``Conv`` (1×32 kernel), ``Add`` of that map, ``Relu``
BatchNormalization          folded into the first Dense when every scale is positive
                            (then it commutes with max pooling); else ``Mul``, ``Add``
MaxPooling1D, Flatten       ``MaxPool``, ``Flatten`` (channel-major; the Dense rows are
                            permuted to match Keras' position-major flatten)
Dense(128) + relu           ``Gemm``, ``Relu``
BatchNormalization          folded into the last Dense
Dense(classes) + softmax    ``Gemm``, ``Softmax``
Dropout                     nothing (identity at inference)
==========================  ================================================================

The folds are done in float64 and are exact up to rounding; ``sgmine-train export`` still
checks every exported file against Keras' own predictions before writing it. A model that
is not this architecture (other layers, activations, strides, padding) is not converted here:
:func:`cnn_to_onnx` returns None and the export falls back to tf2onnx.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The ONNX opset, and the graph's input and output names, of every exported model (this graph
#: and tf2onnx's, see :mod:`training.export`).
OPSET = 17
#: The oldest ONNX IR version that carries opset 17, so older onnxruntime releases read the file.
IR_VERSION = 8
INPUT_NAME = "pdf"
OUTPUT_NAME = "probabilities"


@dataclass
class _Affine:
    """A BatchNormalization at inference: ``scale * x + shift`` per channel."""

    scale: np.ndarray
    shift: np.ndarray


def _batch_norm(layer) -> _Affine:
    mean = np.asarray(layer.moving_mean.numpy(), np.float64)
    variance = np.asarray(layer.moving_variance.numpy(), np.float64)
    gamma = np.asarray(layer.gamma.numpy(), np.float64) if layer.scale else np.ones_like(mean)
    beta = np.asarray(layer.beta.numpy(), np.float64) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return _Affine(scale, beta - mean * scale)


def _weights(layer) -> tuple[np.ndarray, np.ndarray]:
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    bias = np.asarray(layer.bias.numpy(), np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
    return kernel, bias


def _activation(layer) -> str:
    return getattr(layer.activation, "__name__", str(layer.activation))


def _is_reference_layout(layers: list) -> bool:
    """True when ``layers`` are the reference CNN's, with the settings this graph assumes."""
    kinds = [type(layer).__name__ for layer in layers]
    expected = [
        "BatchNormalization", "Conv1D", "BatchNormalization", "Conv1D", "BatchNormalization",
        "MaxPooling1D", "Dropout", "Flatten", "Dense", "BatchNormalization", "Dropout", "Dense",
    ]
    if kinds != expected:
        return False
    bns = [layers[i] for i in (0, 2, 4, 9)]
    if any(tuple(np.atleast_1d(bn.axis)) not in ((-1,), (2,), (1,)) for bn in bns):
        return False
    for conv in (layers[1], layers[3]):
        if not (
            conv.padding == "same" and tuple(conv.strides) == (1,) and tuple(conv.dilation_rate) == (1,)
            and getattr(conv, "groups", 1) == 1 and conv.data_format == "channels_last"
            and _activation(conv) == "relu"
        ):
            return False
    pool = layers[5]
    if not (pool.padding == "valid" and tuple(pool.pool_size) == tuple(pool.strides) and pool.data_format == "channels_last"):
        return False
    return _activation(layers[8]) == "relu" and _activation(layers[11]) == "softmax"


def cnn_to_onnx(model, opset: int = OPSET):
    """The Keras reference CNN (:func:`training.cnn.build_model`) as an ``onnx.ModelProto``.

    Input ``pdf`` (batch, npoints, 1), output ``probabilities`` (batch, classes). Returns None
    for any other architecture (use tf2onnx for those).
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 3 or shape[2] != 1 or shape[1] is None or not _is_reference_layout(layers):
        return None
    npoints = int(shape[1])
    bn0, bn1, bn2, bn3 = (_batch_norm(layers[i]) for i in (0, 2, 4, 9))
    k1, b1 = _weights(layers[1])  # (taps, 1, filters1)
    k2, b2 = _weights(layers[3])  # (taps, filters1, filters2)
    d1, e1 = _weights(layers[8])  # (pooled * filters2, hidden)
    d2, e2 = _weights(layers[11])  # (hidden, classes)
    pool = int(layers[5].pool_size[0])
    taps1, taps2 = k1.shape[0], k2.shape[0]
    filters2 = k2.shape[2]
    pooled = npoints // pool

    initializers, nodes = [], []

    def const(name: str, value) -> str:
        value = np.asarray(value)
        value = value.astype(np.float32) if value.dtype.kind == "f" else value.astype(np.int64)
        initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def same_pads(taps: int) -> tuple[int, int]:  # Keras "same": the extra zero goes on the right
        return (taps - 1) // 2, taps - 1 - (taps - 1) // 2

    # input BatchNormalization on the (batch, npoints) curve
    x = node("Reshape", [INPUT_NAME, const("curve_shape", [-1, npoints])], "curve")
    x = node("Mul", [x, const("bn0_scale", bn0.scale)], "bn0_scaled")
    x = node("Add", [x, const("bn0_shift", bn0.shift)], "bn0")

    # first convolution as one MatMul over gathered windows; the bias rides on a column of ones
    left, right = same_pads(taps1)
    x = node("Pad", [x, const("conv1_pads", [0, left, 0, right])], "conv1_padded")
    x = node("Pad", [x, const("ones_pads", [0, 0, 0, 1]), const("one", np.float32(1.0))], "conv1_padded_ones")
    windows = np.arange(taps1)[:, None] + np.arange(npoints)[None, :]
    ones_row = np.full((1, npoints), npoints + taps1 - 1)
    x = node("Gather", [x, const("conv1_windows", np.vstack([windows, ones_row]))], "conv1_patches", axis=1)
    w1 = np.hstack([k1[:, 0, :].T, b1[:, None]])  # (filters1, taps1 + 1)
    into_first = bool(np.all(bn1.scale > 0))  # relu(s * y) = s * relu(y) for s > 0
    if into_first:
        w1 = w1 * bn1.scale[:, None]
    x = node("MatMul", [const("conv1_kernel", w1), x], "conv1")
    x = node("Relu", [x], "conv1_relu")
    x = node("Unsqueeze", [x, const("axis2", [2])], "conv1_nchw")  # (batch, filters1, 1, npoints)

    # second convolution with the BatchNormalization before it folded in (or its scale, above)
    left, right = same_pads(taps2)
    w2 = (k2 if into_first else k2 * bn1.scale[None, :, None]).transpose(2, 1, 0)[:, :, None, :]  # (out, in, 1, taps)
    valid = np.zeros(npoints + taps2 - 1)
    valid[left : left + npoints] = 1.0  # 1 where the padded input is data, 0 where it is padding
    covered = np.stack([valid[k : k + npoints] for k in range(taps2)])  # (taps2, npoints)
    shift_map = np.einsum("kio,i,kt->ot", k2, bn1.shift, covered)  # (filters2, npoints)
    x = node("Conv", [x, const("conv2_kernel", w2), const("conv2_bias", b2)], "conv2_raw",
             kernel_shape=[1, taps2], pads=[0, left, 0, right])
    x = node("Add", [x, const("conv2_shift", shift_map[:, None, :])], "conv2")
    x = node("Relu", [x], "conv2_relu")

    # BatchNormalization, pooling, flatten; the Dense rows follow the channel-major flatten
    dense1 = d1.reshape(pooled, filters2, -1).transpose(1, 0, 2)  # (filters2, pooled, hidden)
    if np.all(bn2.scale > 0):  # max pooling commutes with a positive scale: fold into the Dense
        dense1_bias = e1 + np.einsum("f,fph->h", bn2.shift, dense1)
        dense1 = dense1 * bn2.scale[:, None, None]
    else:
        x = node("Mul", [x, const("bn2_scale", bn2.scale[:, None, None])], "bn2_scaled")
        x = node("Add", [x, const("bn2_shift", bn2.shift[:, None, None])], "bn2")
        dense1_bias = e1
    x = node("MaxPool", [x], "pool", kernel_shape=[1, pool], strides=[1, pool])
    x = node("Flatten", [x], "flat")
    x = node("Gemm", [x, const("dense1_kernel", dense1.reshape(filters2 * pooled, -1)),
                      const("dense1_bias", dense1_bias)], "dense1")
    x = node("Relu", [x], "dense1_relu")

    # last BatchNormalization folded into the classifier
    x = node("Gemm", [x, const("dense2_kernel", d2 * bn3.scale[:, None]),
                      const("dense2_bias", e2 + bn3.shift @ d2)], "logits")
    node("Softmax", [x], OUTPUT_NAME, axis=-1)

    graph = helper.make_graph(
        nodes,
        "sgmine_cnn",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", npoints, 1])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", d2.shape[1]])],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="sgmine")
    proto.ir_version = IR_VERSION
    checker.check_model(proto)
    return proto
