"""``sgmine-train``: build datasets, fit the CNN, evaluate it, run the baseline, export to ONNX.

Each command lives beside the code it drives (``training.dataset``, ``training.fit``, ...);
this module only wires them into one typer app. Heavy imports (TensorFlow, pyxtal) happen
inside the commands, so ``sgmine-train --help`` stays quick.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Build training data, train the space-group CNN and export it to ONNX for sgmine.",
)

# Commands are registered below, one block per module.

from training import baseline, evaluate, export, fit  # noqa: E402  (light modules: TF loads inside commands)

app.command("fit")(fit.fit_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("baseline")(baseline.baseline_command)
app.command("export")(export.export_command)

from training import calibrate  # noqa: E402

app.command("calibrate")(calibrate.calibrate_command)

from training import dataset  # noqa: E402  (light: pyxtal, diffpy and dask load inside the command)

app.command("dataset")(dataset.dataset_command)

from training import quantize  # noqa: E402  (light: onnx and onnxruntime.quantization load inside the command)

app.command("quantize")(quantize.quantize_command)

from training import ensemble  # noqa: E402  (light: Keras loads inside the command)

app.command("ensemble")(ensemble.ensemble_command)

from training import shrink  # noqa: E402  (light: onnx loads inside the command)

app.command("shrink")(shrink.shrink_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
