"""Smaller model files: the weights of an exported ONNX model stored in float16 or as 8-bit integers.

``sgmine-train shrink MODEL.onnx --out SMALL.onnx [--precision float16|int8]``

A shipped ensemble is mostly the kernels of its Dense layers (sg8: 9 members of 0.96 M weights,
34 MB in float32). This rewrite stores every large float32 initializer in less space and adds the
node that turns it back into float32:

- ``float16``: the initializer in float16, then ``Cast`` to float32 (half the size; a weight keeps
  11 significant bits);
- ``int8``: the initializer as symmetric 8-bit integers with one float32 scale per output column
  (the last axis of a MatMul kernel, the first of a Conv kernel), then ``Cast`` and ``Mul`` by the
  scales (a quarter of the size; each weight within half a step, 1/254 of its column's largest).

Both are graphs of constants only, which onnxruntime folds back into float32 initializers when it
opens the file: the arithmetic, and so the scoring speed, are float32's. What changes is the
weights' rounding; :func:`shrink_model` scores check curves with both files and refuses to write
one whose probabilities differ by more than ``tolerance`` or whose top-1 class differs on a curve
where the original's first two classes are more than twice that apart. The sgmine metadata is kept, with ``weight_storage`` added. A file written here also reads
back into Keras (:mod:`training.onnx_keras`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from sgmine.files import atomic_save

PRECISIONS = ("float16", "int8")
#: Initializers with fewer elements stay float32 (biases, BatchNormalization maps: next to no space).
MIN_ELEMENTS = 1024
#: Largest |probability| change allowed on the check curves, per precision.
TOLERANCES = {"float16": 1e-3, "int8": 2e-2}
#: The metadata key naming how the weights are stored.
STORAGE_KEY = "weight_storage"


class ShrinkError(RuntimeError):
    """The smaller file does not score like the original closely enough to be written."""


@dataclass
class ShrinkResult:
    """What :func:`shrink_model` wrote and how closely it follows the original."""

    path: Path
    bytes_before: int
    bytes_after: int
    max_difference: float
    #: share of the check curves with the same top-1 class (near-ties included)
    top1_agreement: float
    n_checked: int


def _column_axis(proto, name: str) -> int:
    """The output-channel axis of initializer ``name``: 0 for a Conv kernel, else the last."""
    return 0 if any(node.op_type == "Conv" and len(node.input) > 1 and node.input[1] == name
                    for node in proto.graph.node) else -1


def _int8_columns(values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 8-bit integers of ``values`` and their per-channel float32 scales (shaped to broadcast)."""
    moved = np.moveaxis(values.astype(np.float64), axis, 0)
    peak = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    q = np.clip(np.rint(moved / scale.reshape((-1,) + (1,) * (moved.ndim - 1))), -127, 127).astype(np.int8)
    shape = [1] * values.ndim
    shape[axis] = -1
    return np.moveaxis(q, 0, axis), scale.astype(np.float32).reshape(shape)


def shrink_proto(proto, precision: str = "float16", *, min_elements: int = MIN_ELEMENTS):
    """A copy of ``proto`` whose float32 initializers of ``min_elements`` or more are stored at
    ``precision`` (:data:`PRECISIONS`), each followed by the nodes that give back float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    kept, added = [], []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < min_elements:
            kept.append(tensor)
            continue
        values, name = numpy_helper.to_array(tensor), tensor.name
        if precision == "float16":
            kept.append(numpy_helper.from_array(values.astype(np.float16), f"{name}__f16"))
            added.append(helper.make_node("Cast", [f"{name}__f16"], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
        else:
            q, scale = _int8_columns(values, _column_axis(proto, name))
            kept += [numpy_helper.from_array(q, f"{name}__i8"), numpy_helper.from_array(scale, f"{name}__scale")]
            added += [helper.make_node("Cast", [f"{name}__i8"], [f"{name}__i8f"], to=TensorProto.FLOAT, name=f"{name}__cast"),
                      helper.make_node("Mul", [f"{name}__i8f", f"{name}__scale"], [name], name=f"{name}__dequantize")]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = added + list(graph.node)  # the constants first: the graph stays in topological order
    del graph.node[:]
    graph.node.extend(nodes)
    _set_metadata(out, STORAGE_KEY, precision)
    onnx.checker.check_model(out)
    return out


def _set_metadata(proto, key: str, value: str) -> None:
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, value


def check_curves(npoints: int) -> np.ndarray:
    """The curves a shrunk file is checked on: the measured examples on the model grid and
    the export's synthetic probe curves."""
    from sgmine.gr import read_gr
    from sgmine.grid import Grid, resample
    from training.export import probe_curves

    examples = Path(__file__).resolve().parents[1] / "examples" / "data"
    grid = Grid(npoints=npoints) if npoints != Grid().npoints else Grid()
    measured = [resample(c.r, c.g, grid).values for c in (read_gr(p) for p in sorted(examples.glob("*.gr")))]
    return np.concatenate([np.asarray(measured, np.float32).reshape(-1, npoints), probe_curves(npoints, n=512)])


def shrink_model(model: str | Path, out: str | Path, *, precision: str = "float16", tolerance: float | None = None,
                 curves: np.ndarray | None = None) -> ShrinkResult:
    """Write ``model`` with its weights stored at ``precision`` to ``out`` after checking it.

    Parameters
    ----------
    model, out
        The exported ONNX file and the file to write (atomically, only when it passes).
    precision
        One of :data:`PRECISIONS`.
    tolerance
        Largest allowed |probability| difference on the check curves (default :data:`TOLERANCES`).
    curves
        Curves on the model's grid to check on (default :func:`check_curves`).

    Raises
    ------
    ShrinkError
        When a probability moves by more than ``tolerance`` or a top-1 class changes.
    """
    import onnx

    from sgmine.model import INT8_SUFFIX, Model

    model, out = Path(model), Path(out)
    if out.name.endswith(INT8_SUFFIX):
        raise ValueError(f"{out.name}: names ending in {INT8_SUFFIX} are the runtime's statically quantised INT8 "
                         "files (sgmine-train quantize); call this one e.g. MODEL.w8.onnx")
    original = Model(model)
    x = check_curves(original.info.grid.npoints) if curves is None else curves
    expected = original.predict_proba(x)
    small = shrink_proto(onnx.load(str(model)), precision)
    allowed = TOLERANCES[precision] if tolerance is None else tolerance
    checked: list[tuple[float, float]] = []

    def write_if_close(tmp: Path) -> None:
        tmp.write_bytes(small.SerializeToString())
        got = Model(tmp).predict_proba(x)
        difference = float(np.max(np.abs(got - expected)))
        same = got.argmax(axis=1) == expected.argmax(axis=1)
        top = np.sort(expected, axis=1)
        decided = top[:, -1] - top[:, -2] > 2 * allowed  # not a tie at the weights' rounding
        if difference > allowed or not same[decided].all():
            raise ShrinkError(f"{precision} weights move a probability by up to {difference:.3g} (allowed {allowed:g}) "
                              f"and change the top-1 class of {int((~same & decided).sum())} of {len(x)} check curves; "
                              f"not writing {out}")
        checked.append((difference, float(same.mean())))

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(write_if_close, out)
    difference, agreement = checked[0]
    return ShrinkResult(out, model.stat().st_size, out.stat().st_size, difference, agreement, len(x))


def shrink_command(
    model: Path = typer.Argument(..., help="Exported ONNX model (e.g. sgmine/data/model.onnx)."),
    out: Path = typer.Option(..., "--out", "-o", help="ONNX file to write."),
    precision: str = typer.Option("float16", "--precision", help="float16 (half the size) or int8 (a quarter)."),
    tolerance: float = typer.Option(None, "--tolerance", help="Largest allowed probability change on the check curves "
                                    "(default 1e-3 for float16, 2e-2 for int8)."),
) -> None:
    """Store a model's weights in float16 or 8-bit integers (same float32 arithmetic), after checking it."""
    try:
        result = shrink_model(model, out, precision=precision, tolerance=tolerance)
    except (ValueError, FileNotFoundError, ShrinkError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"wrote {result.path}: {result.bytes_after / 1e6:.1f} MB (was {result.bytes_before / 1e6:.1f} MB); "
               f"probabilities within {result.max_difference:.2g}, top-1 the same on {result.top1_agreement:.2%} of "
               f"{result.n_checked} check curves")
