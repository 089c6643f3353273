"""INT8 versions of an exported model, offered only where they agree with float32.

``sgmine-train quantize MODEL.onnx --data DATASET --run RUN_DIR --out MODEL.int8.onnx``

onnxruntime's static quantisation (QDQ format, per-channel symmetric INT8 weights, UINT8
activations whose ranges come from PDFs of the training rows of the run's split) makes the layers
that do the work (in the reference CNN the second Conv1D, ~97 % of the multiply-adds) run as INT8
GEMMs; the small layers and the softmax stay float32. Two float-exact graph rewrites keep INT8
close to float32 (see :func:`quantize_model`).

INT8 arithmetic depends on the CPU. With VNNI (AVX-512 VNNI, AVX-VNNI) the u8 x s8 products are
summed exactly; without it (AVX2, AVX-512F) onnxruntime sums pairs of them in saturating 16-bit
lanes, which 8-bit weights overflow (issue #12: 90.75 % top-1 agreement on an AVX2 CPU for a model
at 100 % with VNNI). The weights are therefore 7-bit (``reduce_range``, :data:`REDUCE_RANGE`):
255 x 64 x 2 < 2^15, so no CPU saturates and every CPU computes the same integers.

The result is accepted only if its top-1 class agrees with the float32 model on at least
``MIN_AGREEMENT`` of the run's held-out test rows; the measured agreement is recorded in the
file's metadata (``int8_top1_agreement``), and the runtime (``sgmine scan --int8``) refuses an
INT8 file that lacks it or falls below it. The file also carries a probe set (:data:`PROBE_ROWS`
test curves, float16, with the float32 model's top-1 class of each) that the runtime scores at
every load, refusing the file on a CPU where INT8 misses too many of them
(:func:`sgmine.model.probe_allowance`). The sgmine metadata (classes, grid, temperature,
in-domain threshold, ...) is copied from the float32 model.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from sgmine.files import atomic_save
from sgmine.model import (
    INT8_AGREEMENT_KEY,
    INT8_PROBE_CLASSES_KEY,
    INT8_PROBE_KEY,
    MIN_INT8_AGREEMENT,
    MIN_PROBE_ROWS,
    encode_probe,
    int8_model_path,
    probe_allowance,
)

#: The fraction of test PDFs whose top-1 class INT8 must share with float32.
MIN_AGREEMENT = MIN_INT8_AGREEMENT
#: Weights quantised to 7 bits (``reduce_range``): without VNNI (AVX2, AVX-512F) onnxruntime's
#: u8 x s8 kernels add pairs of products in saturating 16-bit lanes, which 8-bit weights overflow
#: (issue #12: 90.75 % agreement on an AVX2 CPU); 255 x 64 x 2 fits, so 7-bit weights never do.
REDUCE_RANGE = True
#: Test curves an INT8 file carries (with the float32 top-1 class of each) so that the runtime can
#: check INT8 on the CPU it runs on; scoring them costs one batch at each load.
PROBE_ROWS = 256
#: Operators that can run as INT8 GEMMs.
LINEAR = ("Conv", "Gemm", "MatMul")
#: Layers quantised: those doing at least this share of the model's multiply-adds (in the reference
#: CNN the second Conv1D does ~97 %); the small ones stay float32 and cost next to no speed.
HEAVY_SHARE = 0.05
#: Activation ranges: from this percentile of the calibration values at each end (rare spikes clipped).
PERCENTILE = 99.999
#: Operators that only move values around; a constant offset added before them reaches the next
#: linear layer as a constant (MaxPool too: ``max(v + a) = max(v) + a`` for ``a`` constant per channel).
_LAYOUT = ("Unsqueeze", "Squeeze", "Reshape", "Transpose", "Flatten", "MaxPool")


class QuantizeError(RuntimeError):
    """The INT8 model does not agree with float32 well enough to be offered."""

    def __init__(self, message: str, agreement: float | None = None) -> None:
        super().__init__(message)
        self.agreement = agreement


@dataclass
class QuantizeResult:
    """What :func:`quantize_checked` wrote and measured."""

    path: Path
    agreement: float
    n_test: int
    n_calibration: int
    fp32_pdfs_per_s: float
    int8_pdfs_per_s: float
    n_probe: int = 0

    @property
    def speedup(self) -> float:
        """INT8 scoring speed over float32, measured in this process on the same rows."""
        return self.int8_pdfs_per_s / self.fp32_pdfs_per_s


def quantize_model(
    fp32: str | Path,
    out: str | Path,
    calibration: np.ndarray,
    per_channel: bool = True,
    metadata: dict[str, str] | None = None,
    heavy_share: float = HEAVY_SHARE,
    percentile: float = PERCENTILE,
    *,
    reduce_range: bool = REDUCE_RANGE,
) -> Path:
    """Write a statically quantised INT8 copy of ``fp32`` to ``out``.

    Before quantising, two float-exact rewrites (checked on the calibration curves) keep INT8 close
    to float32: constant offsets on the inputs of linear layers (a BatchNorm after a ReLU leaves
    one per channel; a single zero-point cannot represent them all, and the rounding of each adds
    up over the whole kernel into a systematic shift) are moved behind those layers, and the
    range of a layer output that only feeds ``[+ constant] -> ReLU`` starts where the ReLU stops
    clipping. Only the layers doing at least ``heavy_share`` of the multiply-adds are quantised;
    activation ranges span the ``percentile`` of the calibration values. Weights are symmetric
    per-channel INT8, 7-bit with ``reduce_range`` (the default, :data:`REDUCE_RANGE`), so that no
    CPU's INT8 kernel saturates; ``reduce_range=False`` gives 8-bit weights that only CPUs with
    VNNI multiply exactly.

    The sgmine metadata of ``fp32`` is kept, plus ``metadata`` (extra key/value strings).
    Nothing checks agreement here: use :func:`quantize_checked` for a file the runtime accepts.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, out = Path(fp32), Path(out)
    model = onnx.load(str(fp32))
    input_name = model.graph.input[0].name
    rank = len(model.graph.input[0].type.tensor_type.shape.dim)
    x = np.asarray(calibration, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"calibration curves must be a non-empty (n, npoints) array, got shape {x.shape}")
    x = x[:, :, None] if rank == 3 else x

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{input_name: x[i : i + 64]} for i in range(0, len(x), 64)])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        proto = onnx.load(str(prepared))
        for i, node in enumerate(proto.graph.node):
            node.name = node.name or f"sgmine_node_{i}"
        rewritten = onnx.ModelProto.FromString(proto.SerializeToString())
        if _move_offsets(rewritten):
            if _same_outputs(proto, rewritten, x[:256]):
                rewritten = onnx.shape_inference.infer_shapes(rewritten)  # shapes of the new tensors
            else:  # the rewrite did not keep the float32 outputs: quantise the graph as it is
                rewritten = proto
        nodes = _heavy_nodes(rewritten, heavy_share)
        if not nodes:
            raise ValueError(f"{fp32} has no Conv, Gemm or MatMul layer with constant weights to quantise")
        ranges = _activation_ranges(rewritten, nodes, x, percentile)
        source = Path(tmp) / "rewritten.onnx"
        onnx.save(rewritten, str(source))
        quantize_static(
            str(source),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(LINEAR),
            nodes_to_quantize=nodes,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"TensorQuantOverrides": {
                name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in ranges.items()
            }},
        )
    quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    _set_metadata(quantized, metadata or {})
    onnx.save(quantized, str(out))
    return out


# --------------------------------------------------------------------------- graph rewrites


def _initializers(proto) -> dict:
    return {i.name: i for i in proto.graph.initializer}


def _sole_consumer(nodes: list, name: str):
    found = [n for n in nodes if name in n.input]
    return found[0] if len(found) == 1 else None


def _static_shape(proto, name: str) -> list[int] | None:
    """The inferred shape of tensor ``name`` with the batch dimension set to 1 (None if unknown)."""
    for v in list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output):
        if v.name == name:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            if not dims or any(d is None for d in dims[1:]):
                return None
            return [1, *dims[1:]]
    return None


def _run_subgraph(proto, nodes: list, input_name: str, output_name: str, feed: np.ndarray) -> np.ndarray:
    """Run ``nodes`` of ``proto`` (with the initializers they use) from ``input_name`` on ``feed``."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes, "part", [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, list(feed.shape))],
        [helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, None)],
        initializer=[i for i in proto.graph.initializer if i.name in used],
    )
    part = helper.make_model(graph, opset_imports=proto.opset_import)
    part.ir_version = proto.ir_version
    session = ort.InferenceSession(part.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([output_name], {input_name: feed})[0]


def _move_offsets(proto) -> int:
    """Move each ``Add(z, constant)`` that reaches a linear layer's input through layout operators
    behind that layer (into its bias, or an ``Add`` after it), so the layer reads ``z``.

    The constant's effect, ``f(a) - f(0)`` for the layout-and-linear part ``f``, is computed on a
    field of the constant (zero padding included, so it is exact at the edges too). Returns the
    number of offsets moved; the caller checks that the outputs did not change.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = proto.graph
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in graph.node]
    inits = _initializers(proto)
    moved = 0
    for add in [n for n in nodes if n.op_type == "Add" and len(n.input) == 2]:
        consts = [i for i in add.input if i in inits]
        if len(consts) != 1:
            continue
        z = next(i for i in add.input if i not in inits)
        chain, current = [], add.output[0]
        while (node := _sole_consumer(nodes, current)) is not None and node.input[0] == current:
            chain.append(node)
            if node.op_type not in _LAYOUT:
                break
            current = node.output[0]
        if not chain or chain[-1].op_type not in LINEAR or len(chain[-1].input) < 2 or chain[-1].input[1] not in inits:
            continue
        linear = chain[-1]
        shape = _static_shape(proto, add.output[0])
        a = numpy_helper.to_array(inits[consts[0]]).astype(np.float32)
        try:
            field = np.ascontiguousarray(np.broadcast_to(a, shape)) if shape else None
        except ValueError:
            field = None
        if field is None:
            continue
        tail = list(chain)
        after = _sole_consumer(nodes, linear.output[0])
        if linear.op_type == "Conv" and after is not None and after.op_type == "Squeeze":
            tail.append(after)  # tf2onnx's Conv1D: Conv2D, then Squeeze, then the bias Add
        end = tail[-1].output[0]
        effect = _run_subgraph(proto, tail, add.output[0], end, field) - _run_subgraph(
            proto, tail, add.output[0], end, np.zeros_like(field)
        )
        name = f"{linear.name}/moved_offset"
        follower = _sole_consumer(nodes, end)
        if linear.op_type == "Gemm" and tail[-1] is linear and effect.ndim == 2:
            beta = next((helper.get_attribute_value(t) for t in linear.attribute if t.name == "beta"), 1.0)
            c = numpy_helper.to_array(inits[linear.input[2]]).astype(np.float32) if len(linear.input) > 2 else 0.0
            graph.initializer.append(numpy_helper.from_array(np.asarray(c + effect[0] / beta, np.float32), name))
            if len(linear.input) > 2:
                linear.input[2] = name
            else:
                linear.input.append(name)
        elif follower is not None and follower.op_type == "Add" and sum(i in inits for i in follower.input) == 1:
            bias = next(i for i in follower.input if i in inits)
            merged = numpy_helper.to_array(inits[bias]).astype(np.float32) + effect
            graph.initializer.append(numpy_helper.from_array(merged.astype(np.float32), name))
            follower.input[list(follower.input).index(bias)] = name
        else:
            graph.initializer.append(numpy_helper.from_array(effect.astype(np.float32), name))
            inner = f"{end}/without_moved_offset"
            tail[-1].output[0] = inner
            nodes.insert(nodes.index(tail[-1]) + 1, helper.make_node("Add", [inner, name], [end], name=f"{name}/add"))
        inits[name] = graph.initializer[-1]
        chain[0].input[0] = z
        nodes.remove(add)
        moved += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return moved


def _same_outputs(a, b, x: np.ndarray, tolerance: float = 1e-4) -> bool:
    """Whether two models give the same probabilities (to ``tolerance``) on the curves ``x``."""
    import onnxruntime as ort

    outputs = []
    for proto in (a, b):
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    return bool(np.max(np.abs(outputs[0] - outputs[1])) <= tolerance)


def _heavy_nodes(proto, share: float) -> list[str]:
    """Names of the linear layers (constant weights) doing at least ``share`` of all multiply-adds."""
    from onnx import numpy_helper

    inits = _initializers(proto)
    cost: dict[str, float] = {}
    for node in proto.graph.node:
        if node.op_type not in LINEAR or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        out = _static_shape(proto, node.output[0])
        if node.op_type == "Conv" and out:
            cost[node.name] = float(np.prod(out[1:])) * float(np.prod(w.shape[1:]))
        elif node.op_type == "MatMul" and out and len(out) > 2:
            cost[node.name] = float(np.prod(out[1:-1])) * w.size
        else:
            cost[node.name] = float(w.size)
    total = sum(cost.values())
    return [name for name, c in cost.items() if c >= share * total]


def _activation_ranges(proto, nodes: list[str], x: np.ndarray, percentile: float) -> dict[str, tuple[float, float]]:
    """Quantisation ranges for the data input and the output of each layer in ``nodes``.

    Each spans the ``percentile`` of the float32 values on the curves ``x`` at both ends (and 0).
    An output that reaches a ReLU only through layout operators and an ``Add`` of a constant
    starts at ``-max(constant)``: lower values all become 0 at the ReLU, so clipping them is exact.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper

    inits = _initializers(proto)
    by_name = {n.name: n for n in proto.graph.node}
    tensors = sorted({t for name in nodes for t in (by_name[name].input[0], by_name[name].output[0])})
    probe = onnx.ModelProto.FromString(proto.SerializeToString())
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors if t not in present
    )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    count: dict[str, int] = {}
    keep = {}
    for start in range(0, len(x), 64):
        for t, v in zip(tensors, session.run(tensors, {input_name: x[start : start + 64]})):
            v = v.ravel()
            if t not in keep:  # values kept at each end: enough for the percentile over all of x
                keep[t] = max(1, int(np.ceil((1 - percentile / 100) * v.size / min(64, len(x)) * len(x))))
            k = keep[t]
            lo = np.concatenate([low.get(t, v[:0]), v])
            hi = np.concatenate([high.get(t, v[:0]), v])
            low[t] = np.partition(lo, k - 1)[:k] if lo.size > k else lo
            high[t] = np.partition(hi, hi.size - k)[-k:] if hi.size > k else hi
            count[t] = count.get(t, 0) + v.size
    ranges = {}
    for t in tensors:
        k = max(1, int(np.ceil((1 - percentile / 100) * count[t])))
        lo = float(np.sort(low[t])[min(k, low[t].size) - 1])
        hi = float(np.sort(high[t])[-min(k, high[t].size)])
        ranges[t] = (min(lo, 0.0), max(hi, 0.0))
    for name in nodes:
        floor = _relu_floor(proto, by_name[name].output[0], inits)
        if floor is not None:
            lo, hi = ranges[by_name[name].output[0]]
            ranges[by_name[name].output[0]] = (max(lo, floor), hi)
    return ranges


def _relu_floor(proto, tensor: str, inits: dict) -> float | None:
    """``-max(c, 0)`` when ``tensor`` reaches a ReLU only through layout operators and one ``Add`` of
    a constant ``c`` (0 with no Add): below it, everything becomes 0 at the ReLU. Else None."""
    from onnx import numpy_helper

    nodes = list(proto.graph.node)
    offset = None
    while (node := _sole_consumer(nodes, tensor)) is not None:
        if node.op_type == "Relu":
            return -max(offset or 0.0, 0.0)
        if node.op_type == "Add" and sum(i in inits for i in node.input) == 1 and offset is None:
            const = next(i for i in node.input if i in inits)
            offset = float(numpy_helper.to_array(inits[const]).max())
        elif node.op_type not in ("Unsqueeze", "Squeeze", "Reshape", "Transpose", "Flatten") or node.input[0] != tensor:
            return None
        tensor = node.output[0]
    return None


def _set_metadata(proto, metadata: dict[str, str]) -> None:
    """Add or replace ``metadata_props`` entries of an ``onnx.ModelProto``."""
    for key, value in metadata.items():
        entry = next((p for p in proto.metadata_props if p.key == key), None) or proto.metadata_props.add()
        entry.key, entry.value = key, str(value)


class _Scorer:
    """A bare onnxruntime session over (n, npoints) curves: no sgmine checks, so that a candidate
    INT8 file can be measured before it carries its agreement."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.name, self.rank = inp.name, len(inp.shape)

    def proba(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        x = x[:, :, None] if self.rank == 3 else x
        return np.concatenate([self.session.run(None, {self.name: x[i : i + batch_size]})[0]
                               for i in range(0, len(x), batch_size)])

    def rate(self, x: np.ndarray, repeats: int = 3) -> float:
        """PDFs/s: the fastest of ``repeats`` passes over ``x`` (after one warm-up batch)."""
        self.proba(x[:256])
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.proba(x)
            best = min(best, time.perf_counter() - t0)
        return len(x) / best


def quantize_checked(
    fp32: str | Path,
    out: str | Path,
    calibration: np.ndarray,
    test: np.ndarray,
    min_agreement: float = MIN_AGREEMENT,
    timing_rows: int = 2048,
    *,
    probe_rows: int = PROBE_ROWS,
    seed: int = 0,
    reduce_range: bool = REDUCE_RANGE,
) -> QuantizeResult:
    """Quantise ``fp32``; write it to ``out`` only if its top-1 agrees with float32 on at least
    ``min_agreement`` of the ``test`` curves (recorded in the file as ``int8_top1_agreement``).

    The file also carries a probe set: ``probe_rows`` test curves drawn with ``seed``, stored as
    float16, and the float32 model's top-1 space group of each (computed on the stored curves),
    which the runtime scores at every load to check INT8 on the CPU in use
    (:func:`sgmine.model.probe_allowance`). Raises :class:`QuantizeError` (its ``agreement``
    attribute set) and writes nothing when either check fails here. Also times both models on up
    to ``timing_rows`` test curves, in this process (0: not timed, the rates are then NaN).
    """
    fp32, out = Path(fp32), Path(out)
    test = np.asarray(test, dtype=np.float32)
    if test.ndim != 2 or len(test) == 0:
        raise ValueError(f"test curves must be a non-empty (n, npoints) array, got shape {test.shape}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        candidate = quantize_model(fp32, Path(tmp) / "candidate.onnx", calibration, reduce_range=reduce_range)
        fp32_scorer, int8_scorer = _Scorer(fp32), _Scorer(candidate)
        share = float((fp32_scorer.proba(test).argmax(1) == int8_scorer.proba(test).argmax(1)).mean())
        if not share >= min_agreement:
            raise QuantizeError(
                f"INT8 top-1 agrees with float32 on only {100 * share:.2f}% of {len(test)} test PDFs "
                f"({100 * min_agreement:.1f}% required); not writing {out}",
                share,
            )
        probe = _probe_metadata(
            fp32, fp32_scorer, int8_scorer, test, rows=probe_rows, seed=seed, min_agreement=min_agreement, out=out
        )
        fp32_rate = int8_rate = float("nan")
        if timing_rows > 0:
            timing = test[:timing_rows]
            fp32_rate, int8_rate = fp32_scorer.rate(timing), int8_scorer.rate(timing)
        import onnx

        proto = onnx.load(str(candidate))
        _set_metadata(proto, {
            INT8_AGREEMENT_KEY: repr(share),
            "int8_agreement_rows": str(len(test)),
            "int8_calibration_rows": str(len(calibration)),
            "int8_reduce_range": str(bool(reduce_range)).lower(),
            **probe,
        })
        atomic_save(lambda path: onnx.save(proto, str(path)), out)
    n_probe = len(json.loads(probe[INT8_PROBE_CLASSES_KEY]))
    return QuantizeResult(out, share, len(test), len(calibration), fp32_rate, int8_rate, n_probe)


def _probe_metadata(
    fp32: Path,
    fp32_scorer: "_Scorer",
    int8_scorer: "_Scorer",
    test: np.ndarray,
    *,
    rows: int,
    seed: int,
    min_agreement: float,
    out: Path,
) -> dict[str, str]:
    """The probe-set metadata: ``rows`` test curves (float16) and float32's top-1 class of each.

    Raises :class:`QuantizeError` when INT8 already misses more of them here than
    :func:`sgmine.model.probe_allowance` accepts for ``min_agreement`` (the runtime's rule when
    that is the gate).
    """
    from sgmine.model import Model, decode_probe

    if min(rows, len(test)) < MIN_PROBE_ROWS:
        raise ValueError(
            f"the probe set needs at least {MIN_PROBE_ROWS} test curves; got probe_rows={rows} and {len(test)} test curves"
        )
    picked = np.sort(np.random.default_rng(seed).permutation(len(test))[:rows])
    text = encode_probe(test[picked])
    curves = decode_probe(text, test.shape[1])  # the curves exactly as the runtime will see them
    expected = fp32_scorer.proba(curves).argmax(1)
    mismatches = int((int8_scorer.proba(curves).argmax(1) != expected).sum())
    allowed = probe_allowance(len(curves), min_agreement=min(min_agreement, 1.0))
    if mismatches > allowed:
        raise QuantizeError(
            f"INT8 top-1 differs from float32 on {mismatches} of {len(curves)} probe PDFs (at most {allowed} "
            f"allowed); not writing {out}",
            1.0 - mismatches / len(curves),
        )
    classes = np.asarray(Model(fp32).info.classes)[expected]
    return {INT8_PROBE_KEY: text, INT8_PROBE_CLASSES_KEY: json.dumps([int(c) for c in classes])}


def quantize_command(
    model: Path = typer.Argument(..., help="Exported float32 ONNX model (from `sgmine-train export`).", show_default=False),
    data: Path = typer.Option(..., "--data", help="The dataset the model was trained on.", show_default=False),
    run: Path = typer.Option(
        ..., "--run", help="Its training run directory: split.npz gives the training rows (calibration) "
        "and the held-out test rows (agreement).", show_default=False,
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Where to write the INT8 model (default: <model stem>.int8.onnx beside MODEL, "
        "where `sgmine scan --int8` looks for it).",
    ),
    calibration_size: int = typer.Option(1024, min=1, help="Training PDFs used to calibrate activation ranges."),
    seed: int = typer.Option(0, help="Seed for drawing the calibration PDFs."),
) -> None:
    """Quantise a model to INT8; keep it only if its top-1 agrees with float32 on >= 99.5% of the run's test rows
    (7-bit weights, right on CPUs with and without VNNI; a probe set in the file lets sgmine check the CPU it runs on)."""
    from sgmine.model import Model, ModelError
    from training.datafiles import read_dataset
    from training.run import RunDir

    out = out if out is not None else int8_model_path(model)
    if out.resolve() == model.resolve():
        _fail(f"--out {out} is the float32 model itself; give another file")
    try:
        Model(model)  # an sgmine float32 model (metadata, input shape)
        dataset = read_dataset(data)
        split = RunDir(run).split(len(dataset))
    except FileNotFoundError as exc:
        _fail(f"{exc.filename or exc}: no such file (is {run} a training run directory?)")
    except (ModelError, ValueError) as exc:
        _fail(str(exc))
    if len(split.train) == 0 or len(split.test) == 0:
        _fail(f"{RunDir(run).split_file} has {len(split.train)} training and {len(split.test)} test rows; need both")

    rng = np.random.default_rng(seed)
    train_rows = rng.permutation(split.train)[:calibration_size]
    typer.echo(f"calibrating on {len(train_rows)} training PDFs, checking on {len(split.test)} test PDFs of {run}")
    try:
        result = quantize_checked(model, out, dataset.x[train_rows], dataset.x[split.test])
    except QuantizeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"INT8 top-1 agreement with float32: {100 * result.agreement:.2f}% of {result.n_test} test PDFs "
        f"(>= {100 * MIN_AGREEMENT:.1f}% required)"
    )
    typer.echo(
        f"scoring speed, this process: float32 {result.fp32_pdfs_per_s:.0f} PDFs/s, INT8 {result.int8_pdfs_per_s:.0f} "
        f"PDFs/s ({result.speedup:.2f} x)"
    )
    typer.echo(
        f"probe set: {result.n_probe} test PDFs stored in the file; sgmine checks INT8 on them at every load"
    )
    typer.echo(f"wrote {result.path}")


def _fail(message: str):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
