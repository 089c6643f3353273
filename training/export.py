"""Export a trained Keras CNN to the ONNX file the sgmine runtime reads.

``sgmine-train export MODEL --out model.onnx``:

1. loads the Keras model (``.keras`` or legacy ``.h5``) in safe mode;
2. converts it: the reference CNN is written straight into an ONNX graph laid out for
   onnxruntime's CPU kernels (:mod:`training.onnx_cnn`, 1.3-1.6x faster to score); any other
   model, or ``--converter tf2onnx``, goes through tf2onnx, by a ``tf.function`` wrapping the
   model (Keras 3 models cannot go through ``tf2onnx.convert.from_keras``);
3. writes the metadata the runtime needs (classes, Hermann–Mauguin symbols from spglib, grid,
   normalisation, data description, test metrics, version, and — when the run has a
   ``calibration.json`` from ``sgmine-train calibrate`` — the temperature and in-domain
   threshold) with :func:`sgmine.model.attach_metadata`;
4. scores the test set with Keras and with the ONNX file through the runtime
   (:class:`sgmine.model.Model`) and refuses to write the file if any probability differs by
   more than ``tolerance`` (1e-4).

The classes come from ``--classes`` or from the run directory the model sits in
(``history.json``); an imported model, such as the published 45-class one, needs ``--classes``.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from sgmine.files import atomic_save
from sgmine.grid import Grid
from training.datafiles import Dataset, read_dataset
from training.fit import leaves_remainder
from training.onnx_cnn import INPUT_NAME, OPSET, OUTPUT_NAME, cnn_to_onnx
from training.run import ModelFileError, RunDir
from training.run import load_keras_model as _load_keras

CONVERTERS = ("auto", "direct", "tf2onnx")
TOLERANCE = 1e-4
#: Figures copied from the evaluation report into the model's ``metrics`` metadata.
METRIC_KEYS = ("n_test", "test_loss", "top1_accuracy", "top2_accuracy", "top3_accuracy")


class ExportError(RuntimeError):
    """The model cannot be exported faithfully (wrong shape, not softmax, parity failure)."""


def load_keras_model(path: str | Path):
    """Load a ``.keras`` or ``.h5`` model without compiling it, in Keras' safe mode
    (:func:`training.run.load_keras_model`); an unreadable file raises :class:`ExportError`."""
    try:
        return _load_keras(path)
    except ModelFileError as exc:
        raise ExportError(str(exc)) from exc


def keras_to_onnx(model, opset: int = OPSET):
    """Convert a Keras model to an ``onnx.ModelProto`` via a ``tf.function`` (batch dimension free)."""
    import tensorflow as tf
    import tf2onnx

    shape = tuple(model.inputs[0].shape)
    spec = (tf.TensorSpec((None, *shape[1:]), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def serve(x):
        return model(x, training=False)

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    _rename_output(proto, OUTPUT_NAME)
    return proto


def convert(model, converter: str = "auto"):
    """The ONNX graph of ``model`` and which converter made it (``"direct"`` or ``"tf2onnx"``).

    ``auto`` writes the reference CNN directly (:func:`training.onnx_cnn.cnn_to_onnx`) and
    hands anything else to tf2onnx; ``direct`` refuses other models; ``tf2onnx`` always uses it.
    """
    if converter not in CONVERTERS:
        raise ValueError(f"unknown converter {converter!r}; use one of {', '.join(CONVERTERS)}")
    if converter != "tf2onnx":
        proto = cnn_to_onnx(model, opset=OPSET)
        if proto is not None:
            return proto, "direct"
        if converter == "direct":
            raise ExportError("the model is not the reference CNN, so it cannot be written directly; use tf2onnx")
    return keras_to_onnx(model), "tf2onnx"


def _rename_output(proto, name: str) -> None:
    """Give the graph's (single) output a readable name."""
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        for i, out in enumerate(node.output):
            if out == old:
                node.output[i] = name
        for i, inp in enumerate(node.input):
            if inp == old:
                node.input[i] = name
    proto.graph.output[0].name = name


def probe_curves(npoints: int, n: int = 128, seed: int = 0) -> np.ndarray:
    """Min-max normalised damped oscillations, for a parity check when no test data are at hand."""
    rng = np.random.default_rng(seed)
    r = Grid(npoints=npoints).r
    freq = rng.uniform(1.0, 8.0, (n, 1))
    damp = rng.uniform(5.0, 40.0, (n, 1))
    g = np.sin(freq * r + rng.uniform(0, 2 * np.pi, (n, 1))) * np.exp(-r / damp) + 0.05 * rng.normal(size=(n, npoints))
    g -= g.min(axis=1, keepdims=True)
    return (g / g.max(axis=1, keepdims=True)).astype(np.float32)


def parse_classes(text: str) -> tuple[int, ...]:
    """``"2,14,15"`` -> ``(2, 14, 15)``."""
    try:
        classes = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"--classes must be comma-separated space-group numbers, got {text!r}") from None
    if not classes:
        raise ValueError("--classes is empty")
    return classes


@dataclass
class ExportResult:
    """What the export wrote and how closely the ONNX file follows Keras."""

    path: Path
    classes: tuple[int, ...]
    max_difference: float
    n_checked: int
    checked_on: str
    converter: str = "direct"


def _parity_rows(model_path: Path, data: Dataset | None) -> tuple[np.ndarray, str]:
    """The curves to compare Keras and ONNX on: the run's test rows, all rows, or probe curves."""
    if data is None:
        return probe_curves(Grid().npoints), "128 synthetic probe curves (no dataset given)"
    run = RunDir(model_path.parent)
    if run.has_split():
        try:
            test = run.split(len(data)).test
            return data.x[test], f"the {len(test)} test curves"
        except ValueError:
            pass
    return data.x, f"all {len(data)} curves of the dataset"


def export_model(
    model_path: str | Path,
    out: str | Path,
    classes: tuple[int, ...] | None = None,
    data: Dataset | None = None,
    model_version: str | None = None,
    description: str | None = None,
    tolerance: float = TOLERANCE,
    converter: str = "auto",
) -> ExportResult:
    """Convert ``model_path`` to ONNX at ``out`` with sgmine metadata; check parity; return a summary.

    Raises :class:`ExportError` (and writes nothing) when the classes are unknown or do not
    match the model's outputs, the outputs are not probabilities, or ONNX and Keras differ by
    more than ``tolerance``. ``converter`` is as in :func:`convert`.
    """
    import onnx

    from sgmine.model import Model, ModelInfo, apply_temperature, attach_metadata
    from training.symbols import hm_symbols

    model_path, out = Path(model_path), Path(out)
    run = RunDir(model_path.parent)
    record = run.history()
    if classes is None:
        if run.classes():
            classes = run.classes()
        elif data is not None:
            classes = data.classes
        else:
            raise ExportError(f"{model_path} is not in a training run directory; give its class order with --classes")
    model = load_keras_model(model_path)

    shape = tuple(model.inputs[0].shape)
    n_out = int(model.outputs[0].shape[-1])
    if n_out != len(classes):
        raise ExportError(f"{model_path} has {n_out} outputs but {len(classes)} classes were given")
    if data is not None:
        grid = data.grid
    else:
        grid = Grid.from_dict(record.get("data", {}).get("grid"))
    if shape[1] != grid.npoints or (len(shape) == 3 and shape[2] != 1) or len(shape) not in (2, 3):
        raise ExportError(f"{model_path} takes input {shape}; sgmine needs (batch, {grid.npoints}[, 1])")

    x, checked_on = _parity_rows(model_path, data)
    x_in = x[:, :, None] if len(shape) == 3 else x
    expected = model.predict(x_in, batch_size=256, verbose=0)
    sums = expected.sum(axis=1)
    full = np.allclose(sums, 1.0, atol=1e-3)
    remainder = leaves_remainder(model)
    if expected.min() < 0 or not (full or (remainder and np.all(sums <= 1.0 + 1e-3))):
        raise ExportError(f"{model_path} does not end in a softmax (its outputs are not probabilities)")

    proto, used = convert(model, converter)
    calibration = run.calibration()
    metrics = _card_metrics(run, calibration)
    training_data = description or (data.description if data is not None else None) or record.get("data", {}).get("description")
    info = ModelInfo(
        classes=tuple(int(c) for c in classes),
        symbols=hm_symbols(classes),
        grid=grid,
        model_version=model_version or f"{_dt.date.today():%Y.%m}-{len(classes)}sg",
        training_data=training_data or f"imported from {model_path.name}",
        metrics=metrics,
        temperature=calibration.get("temperature", 1.0),
        in_domain_threshold=calibration.get("in_domain_threshold"),
        none_of_these=remainder,
        none_of_these_threshold=calibration.get("none_of_these_threshold") if remainder else None,
    )
    attach_metadata(proto, info)
    expected = apply_temperature(expected.astype(np.float64), info.temperature, remainder=info.none_of_these)
    onnx.checker.check_model(proto)

    out.parent.mkdir(parents=True, exist_ok=True)
    checked: list[float] = []

    def write_if_faithful(tmp: Path) -> None:
        tmp.write_bytes(proto.SerializeToString())
        got = Model(tmp).predict_proba(x)
        difference = float(np.max(np.abs(got - expected))) if len(x) else 0.0
        if not difference <= tolerance:
            raise ExportError(
                f"ONNX and Keras outputs differ by up to {difference:.3g} on {checked_on} "
                f"(allowed {tolerance:g}); not writing {out}"
            )
        checked.append(difference)

    atomic_save(write_if_faithful, out)
    return ExportResult(out, info.classes, checked[0], len(x), checked_on, used)


def _card_metrics(run: RunDir, calibration: dict[str, Any]) -> dict[str, Any]:
    """The metrics the model's metadata carries: those of :data:`METRIC_KEYS` from the run's
    ``report.json`` (and the baseline's top-1 accuracy), and from its ``calibration.json`` the
    in-class flagged share, the expected calibration error and the flagged share of each
    out-of-class set."""
    report_path = run.report_file
    metrics: dict[str, Any] = {}
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        metrics = {k: report[k] for k in METRIC_KEYS if k in report}
        if "baseline" in report:
            metrics["baseline_top1_accuracy"] = report["baseline"]["top1_accuracy"]
    if calibration:
        metrics["in_class_flagged"] = calibration["test"]["flagged"]
        metrics["expected_calibration_error"] = calibration["test"]["ece_after"]
        metrics.update({f"flagged: {k}": v["flagged"] for k, v in calibration["out_of_class"].items()})
    return metrics


def export_command(
    model: Path = typer.Argument(..., help="Keras model (.keras from `sgmine-train fit`, or an .h5/.keras to import)."),
    out: Path = typer.Option(..., "--out", "-o", help="ONNX file to write."),
    data: Path = typer.Option(None, "--data", help="Dataset the model was trained on, for the parity check and grid."),
    classes: str = typer.Option(None, "--classes", help="Class order of an imported model, e.g. 2,14,15,62,139,194,225,227."),
    model_version: str = typer.Option(None, "--model-version", help="Version text stored in the file."),
    description: str = typer.Option(None, "--description", help="Training-data description stored in the file."),
    tolerance: float = typer.Option(TOLERANCE, help="Largest allowed |ONNX - Keras| probability difference."),
    converter: str = typer.Option(
        "auto", help="auto: the reference CNN written directly for fast CPU scoring, other models by tf2onnx; "
        "direct: refuse other models; tf2onnx: always tf2onnx."
    ),
) -> None:
    """Convert a Keras model to ONNX with sgmine metadata, after checking ONNX matches Keras."""
    try:
        class_order = parse_classes(classes) if classes else None
        dataset = read_dataset(data) if data is not None else None
        if dataset is None:
            source = RunDir(model.parent).history().get("data", {}).get("path")
            if source and Path(source).exists():
                dataset = read_dataset(source)
                typer.echo(f"parity check on the training data {source}")
        result = export_model(model, out, class_order, dataset, model_version, description, tolerance, converter)
    except (ValueError, FileNotFoundError, ExportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"wrote {result.path} ({len(result.classes)} classes, {result.converter} graph); ONNX matches Keras to "
        f"{result.max_difference:.2g} on {result.checked_on}"
    )
