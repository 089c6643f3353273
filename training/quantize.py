"""INT8 versions of an exported model, offered only where they agree with float32.

onnxruntime's static quantisation (QDQ format, per-channel weights, activations calibrated on
PDFs from the training data) makes the two Conv1D layers run as INT8 GEMMs, which AVX-512 VNNI
CPUs execute several times faster than float32. The result is accepted only if its top-1 class
agrees with the float32 model on at least ``MIN_AGREEMENT`` of a held-out test set.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import typer

#: The fraction of test PDFs whose top-1 class INT8 must share with float32.
MIN_AGREEMENT = 0.995


class QuantizeError(RuntimeError):
    """The INT8 model does not agree with float32 well enough to be offered."""


def quantize_model(fp32: str | Path, out: str | Path, calibration: np.ndarray, per_channel: bool = True) -> Path:
    """Write a statically quantised INT8 copy of ``fp32`` to ``out`` (metadata kept)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, out = Path(fp32), Path(out)
    model = onnx.load(str(fp32))
    input_name = model.graph.input[0].name
    rank = len(model.graph.input[0].type.tensor_type.shape.dim)
    x = np.asarray(calibration, dtype=np.float32)
    x = x[:, :, None] if rank == 3 and x.ndim == 2 else x

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{input_name: x[i : i + 64]} for i in range(0, len(x), 64)])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.save(quantized, str(out))
    return out


def agreement(fp32: str | Path, int8: str | Path, x: np.ndarray) -> float:
    """Fraction of rows of ``x`` on which the two models' top-1 classes agree."""
    from sgmine.model import Model

    a = Model(fp32).predict_proba(x).argmax(axis=1)
    b = Model(int8).predict_proba(x).argmax(axis=1)
    return float((a == b).mean())


def quantize_command(
    model: Path = typer.Argument(..., help="Exported float32 ONNX model (from `sgmine-train export`)."),
    data: Path = typer.Argument(..., help="The dataset it was trained on (calibration: training split; check: test split)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the INT8 model."),
    calibration_size: int = typer.Option(1024, help="Training PDFs used to calibrate activation ranges."),
) -> None:
    """Quantise a model to INT8 and keep it only if its top-1 agrees with float32 on >= 99.5% of the test split."""
    from training.datafiles import read_dataset
    from training.fit import FitConfig, make_split

    dataset = read_dataset(data)
    split = make_split(dataset, FitConfig())
    rng = np.random.default_rng(0)
    train_rows = rng.permutation(split.train)[:calibration_size]
    with tempfile.TemporaryDirectory() as tmp:
        candidate = quantize_model(model, Path(tmp) / "int8.onnx", dataset.x[train_rows])
        share = agreement(model, candidate, dataset.x[split.test])
        typer.echo(f"INT8 top-1 agreement with float32: {100 * share:.2f}% of {len(split.test)} test PDFs")
        if share < MIN_AGREEMENT:
            typer.echo(f"below the {100 * MIN_AGREEMENT:.1f}% required; not writing {out}", err=True)
            raise typer.Exit(1)
        shutil.copyfile(candidate, out)
    typer.echo(f"wrote {out}")
