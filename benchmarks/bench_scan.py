"""Scan throughput: sgmine against the reference pipeline, measured side by side in one run.

The reference way to score PDFs: start Python, import TensorFlow, read each file with
diffpy.utils, resample with scipy, ``model.predict``. This script builds N .gr files from the
measured examples (Ni, Si, CdSe with a little noise, headers kept), then times:

  (a) ``sgmine scan`` end to end (a fresh process, as a user runs it),
  (b) the reference pipeline with the same CNN in Keras (a fresh process),
  (c) scoring alone: onnxruntime float32 (tf2onnx's graph in a default session, and the graph
      ``sgmine-train export`` writes in sgmine's session), onnxruntime INT8, Keras ``predict``,
  (d) reading alone: sgmine's reader (whole files, and only the rows the grid needs, as
      ``sgmine scan`` reads) against diffpy.utils ``load_data``; resampling one by one and together,

and prints PDFs/s, ratios, peak memory, time to the first result, CLI start-up time, and
scoring speed as a share of this machine's float32 GEMM peak (measured here, with numpy).

Needs the ``train`` extra (TensorFlow, tf2onnx) for the Keras side::

    python benchmarks/bench_scan.py --n 1000
    python benchmarks/bench_scan.py --n 1000 --keras runs/x/model.keras --dataset data/ds  # trained model

Without ``--keras`` the reference CNN is built with random weights: speed does not depend
on the weights, INT8 agreement does, so agreement is reported only for a trained model
with a dataset (``--dataset``). The INT8 model is then made as ``sgmine-train quantize`` makes
it: calibrated on training rows and checked on the held-out test rows of the model's run
(``split.npz`` beside the ``.keras`` file; without one, the split ``sgmine-train fit`` would make).
``sgmine scan --int8`` is timed end to end only when the INT8 model passes the 99.5 % gate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Timed repeats of each measurement (``--repeats``); the best is reported.
REPEATS = 3
EXAMPLES = ROOT / "examples" / "data"


# ----------------------------------------------------------------------------- inputs

def make_files(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """N .gr files: the measured examples with 1% noise each, their headers kept."""
    from sgmine.gr import read_gr

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = []
    for name in ("Ni.gr", "Si.gr", "CdSe-nanoparticle.gr"):
        text = (EXAMPLES / name).read_text()
        curve = read_gr(EXAMPLES / name)
        lines = text.splitlines()
        header = "\n".join(lines[: next(i for i, l in enumerate(lines) if l.strip() and _numeric(l))])
        sources.append((name, header, curve.r, curve.g))
    paths = []
    for i in range(n):
        name, header, r, g = sources[i % len(sources)]
        noisy = g + rng.normal(0, 0.01 * g.std(), g.size)
        body = "\n".join(f"{a:.4f} {b:.6g}" for a, b in zip(r, noisy))
        path = folder / f"{i:05d}_{name}"
        path.write_text((header + "\n" if header else "") + body + "\n")
        paths.append(path)
    return paths


def _numeric(line: str) -> bool:
    try:
        [float(t) for t in line.split()]
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- models

def build_models(workdir: Path, keras_path: Path | None) -> tuple[Path, Path, Path]:
    """The Keras model (given, or the reference CNN with seeded random weights) and its ONNX
    exports: the graph ``sgmine-train export`` writes, and tf2onnx's (for comparison)."""
    import keras

    from sgmine.model import ModelInfo, attach_metadata
    from training.cnn import build_model
    from training.export import convert, keras_to_onnx
    from training.run import RunDir, load_keras_model
    from training.symbols import REFERENCE_GROUPS as DEFAULT_CLASSES
    from training.symbols import hm_symbols

    if keras_path is None:
        keras.utils.set_random_seed(0)
        model = build_model(len(DEFAULT_CLASSES))
        keras_path = workdir / "cnn.keras"
        model.save(keras_path)
        classes = DEFAULT_CLASSES
    else:
        model = load_keras_model(keras_path)
        classes = DEFAULT_CLASSES[: int(model.outputs[0].shape[-1])]
        # the run's class order: history.json (sgmine-train fit), else config.json
        run = RunDir(keras_path.parent)
        for record in (run.history_file, run.config_file):
            if record.is_file():
                classes = tuple(json.loads(record.read_text()).get("classes", classes))
                break
    info = ModelInfo(tuple(classes), hm_symbols(classes), model_version="benchmark")
    paths = []
    for proto, name in ((convert(model)[0], "cnn.onnx"), (keras_to_onnx(model), "cnn_tf2onnx.onnx")):
        attach_metadata(proto, info)
        paths.append(workdir / name)
        paths[-1].write_bytes(proto.SerializeToString())
    return keras_path, paths[0], paths[1]


def quantize(fp32: Path, out: Path, calibration: np.ndarray, test: np.ndarray | None) -> float | None:
    """INT8 model at ``out``, as ``sgmine-train quantize`` makes it; its top-1 agreement with
    float32 on ``test`` (recorded in the file, so the runtime can judge it), or None without test rows.

    The gate is not applied here: the benchmark times the INT8 model whatever its agreement.
    """
    from training.quantize import quantize_checked, quantize_model

    if test is None:
        quantize_model(fp32, out, calibration)
        return None
    return quantize_checked(fp32, out, calibration, test, min_agreement=0.0, timing_rows=0).agreement


def held_out(dataset: Path, keras_path: Path | None, n_calibration: int = 1024) -> tuple[np.ndarray, np.ndarray, str]:
    """Calibration curves (training rows) and test curves (held-out rows) of ``dataset``."""
    from training.datafiles import read_dataset
    from training.fit import FitConfig
    from training.run import RunDir, make_split

    data = read_dataset(dataset)
    run = RunDir(keras_path.parent) if keras_path is not None else None
    if run is not None and run.has_split():
        split, where = run.split(len(data)), str(run.split_file)
    else:
        split, where = make_split(data, FitConfig()), "a fresh split of the dataset"
    train = np.random.default_rng(0).permutation(split.train)[:n_calibration]
    return data.x[train], data.x[split.test], where


def flops_per_pdf(onnx_path: Path) -> float:
    """Multiply-adds ×2 of the Conv and MatMul/Gemm nodes of the graph, for one input."""
    import onnx
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {}
    for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in v.type.tensor_type.shape.dim]
        shapes[v.name] = dims
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    total = 0.0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = inits.get(node.input[1]) or shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            if w and out:
                total += 2.0 * np.prod(out) * np.prod(w[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            a = shapes.get(node.input[0])
            b = inits.get(node.input[1]) or shapes.get(node.input[1])
            if a and b:
                total += 2.0 * np.prod(a) * b[-1]
    return total


# ----------------------------------------------------------------------------- timings

def best_rate(fn, count: int, repeats: int | None = None) -> float:
    """Items per second of the fastest of ``repeats`` calls of ``fn`` (which handles ``count`` items)."""
    times = []
    for _ in range(repeats or REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return count / min(times)


def gemm_peak(n: int = 2048) -> float:
    """float32 GEMM GFLOP/s of numpy's BLAS on this machine (all cores), best of 10 n³ products."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(10))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


LAUNCHER = (
    "import os, subprocess, sys\n"
    "proc = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(proc.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_process(cmd: list[str], first_line_after: int | None = None) -> dict:
    """Wall time, peak RSS (MiB) and, optionally, time until stdout line ``first_line_after`` + 1.

    The command is started by a small launcher process: a child forked straight from this
    (large) process would report this process's peak memory as its own.
    """
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, rss.name, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        first = None
        lines = 0
        for line in proc.stdout:
            lines += 1
            if first is None and first_line_after is not None and lines > first_line_after:
                first = time.perf_counter() - t0
        err = proc.stderr.read()
        proc.wait()
        wall = time.perf_counter() - t0
        peak_kib = int(Path(rss.name).read_text() or 0)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err[-2000:]}")
    return {"wall_s": wall, "peak_mib": peak_kib / 1024, "first_result_s": first, "lines": lines}


REFERENCE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    t0 = time.perf_counter()
    import numpy as np
    import tensorflow as tf
    import keras
    from diffpy.utils.parsers import load_data
    from scipy.interpolate import interp1d
    model = keras.saving.load_model(sys.argv[1], compile=False)
    r_grid = np.linspace(1.5, 30, 209)
    rows = []
    for path in sys.argv[2:]:
        data = load_data(path)
        g = interp1d(data[:, 0], data[:, 1], kind="quadratic")(r_grid)
        rows.append((g - g.min()) / (g.max() - g.min()))
    x = np.array(rows)[:, :, None]
    first = None
    probs = model.predict(x, batch_size=256, verbose=0)
    print("file,sg")
    for path, p in zip(sys.argv[2:], probs):
        print(path, int(np.argmax(p)), sep=",")
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="number of .gr files")
    parser.add_argument("--keras", type=Path, help="trained Keras model (default: reference CNN, random weights)")
    parser.add_argument("--dataset", type=Path, help="dataset for INT8 agreement (its test split)")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement (best is kept)")
    args = parser.parse_args()
    global REPEATS
    REPEATS = max(1, args.repeats)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sgmine-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    threads = os.cpu_count() or 1
    figures: dict = {"n_files": args.n, "cpu_count": threads, "repeats": REPEATS}

    print(f"building {args.n} files in {workdir / 'files'} ...", flush=True)
    paths = make_files(workdir / "files", args.n)
    keras_path, onnx_path, tf2onnx_path = build_models(workdir, args.keras)

    from diffpy.utils.parsers import load_data

    from sgmine.gr import read_gr
    from sgmine.grid import resample, resample_many
    from sgmine.model import MIN_INT8_AGREEMENT, Model

    model = Model(onnx_path)
    x = np.stack([resample(c.r, c.g, model.grid).values for c in map(read_gr, paths)]).astype(np.float32)

    # (d) reading alone
    figures["read_sgmine_files_per_s"] = best_rate(lambda: [read_gr(p) for p in paths], len(paths))
    window = (model.grid.rmin, model.grid.rmax)
    figures["read_sgmine_window_files_per_s"] = best_rate(lambda: [read_gr(p, r_range=window) for p in paths], len(paths))
    curves = [read_gr(p, r_range=window) for p in paths]
    figures["resample_one_by_one_per_s"] = best_rate(lambda: [resample(c.r, c.g, model.grid) for c in curves], len(paths))
    figures["resample_many_per_s"] = best_rate(lambda: resample_many([(c.r, c.g) for c in curves], model.grid), len(paths))
    figures["read_diffpy_files_per_s"] = best_rate(
        lambda: [(load_data(p, headers=True), load_data(p)) for p in paths], len(paths)
    )

    # (c) scoring alone
    import onnxruntime as ort

    default = ort.InferenceSession(str(tf2onnx_path), providers=["CPUExecutionProvider"])
    name = default.get_inputs()[0].name
    x3 = x[:, :, None]
    peaks = [gemm_peak()]  # measured between the scoring runs, so that load drifts hit both alike
    figures["score_ort_default_pdfs_per_s"] = best_rate(
        lambda: [default.run(None, {name: x3[i : i + 256]}) for i in range(0, len(x3), 256)], len(x3)
    )
    peaks.append(gemm_peak())
    figures["score_sgmine_fp32_pdfs_per_s"] = best_rate(lambda: model.predict_proba(x), len(x))
    peaks.append(gemm_peak())

    # INT8: calibrated on training rows, agreement on the run's held-out test rows (with --dataset)
    if args.dataset:
        calibration, test, where = held_out(args.dataset, args.keras)
        print(f"INT8: calibrating on {len(calibration)} training PDFs, agreement on {len(test)} test PDFs ({where})",
              flush=True)
    else:
        calibration, test = x[: min(len(x), 512)], None
    int8_path = workdir / "cnn.int8.onnx"  # beside cnn.onnx, where `sgmine scan --int8` looks
    agreement = quantize(onnx_path, int8_path, calibration, test)
    int8_session = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    figures["score_ort_int8_pdfs_per_s"] = best_rate(
        lambda: [int8_session.run(None, {name: x3[i : i + 256]}) for i in range(0, len(x3), 256)], len(x3)
    )
    offered = agreement is not None and agreement >= MIN_INT8_AGREEMENT
    if agreement is not None:
        figures["int8_top1_agreement"] = agreement
        figures["int8_agreement_rows"] = int(len(test))
        figures["int8_offered"] = offered
    if offered:  # the runtime accepts it: time it the way `sgmine scan --int8` scores
        int8 = Model(onnx_path, int8=True)
        figures["score_sgmine_int8_pdfs_per_s"] = best_rate(lambda: int8.predict_proba(x), len(x))
    from training.run import load_keras_model

    kmodel = load_keras_model(keras_path)
    kmodel.predict(x3[:256], batch_size=256, verbose=0)
    figures["score_keras_pdfs_per_s"] = best_rate(lambda: kmodel.predict(x3, batch_size=256, verbose=0), len(x3))

    flops = flops_per_pdf(tf2onnx_path)  # the plain graph: every multiply-add of the CNN once
    peak = max(peaks)
    figures["gflop_per_pdf"] = flops / 1e9
    figures["gemm_peak_gflops"] = peak
    figures["fp32_share_of_gemm_peak"] = figures["score_sgmine_fp32_pdfs_per_s"] * flops / 1e9 / peak
    figures["fp32_limit_pdfs_per_s"] = peak * 1e9 / flops

    # (a) and (b): fresh processes, as users run them
    sgmine_cmd = [sys.executable, "-m", "sgmine.cli", "scan", str(workdir / "files"), "--model", str(onnx_path)]
    ref_script = workdir / "reference_pipeline.py"
    ref_script.write_text(REFERENCE_SCRIPT)
    ref_cmd = [sys.executable, str(ref_script), str(keras_path), *map(str, paths)]
    runs = {"sgmine": [], "reference": []}
    if offered:
        runs["sgmine_int8"] = []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits all alike
        runs["sgmine"].append(run_process(sgmine_cmd, first_line_after=1))
        runs["reference"].append(run_process(ref_cmd, first_line_after=1))
        if offered:
            runs["sgmine_int8"].append(run_process([*sgmine_cmd, "--int8"], first_line_after=1))
    for key, results in runs.items():
        best = min(results, key=lambda r: r["wall_s"])
        figures[f"e2e_{key}_s"] = best["wall_s"]
        figures[f"e2e_{key}_median_s"] = statistics.median(r["wall_s"] for r in results)
        figures[f"e2e_{key}_pdfs_per_s"] = args.n / best["wall_s"]
        figures[f"e2e_{key}_peak_mib"] = max(r["peak_mib"] for r in results)
        figures[f"e2e_{key}_first_result_s"] = best["first_result_s"]
    figures["e2e_speedup"] = figures["e2e_reference_s"] / figures["e2e_sgmine_s"]
    help_times = [run_process([sys.executable, "-m", "sgmine.cli", "--help"])["wall_s"] for _ in range(5)]
    figures["cli_help_s"] = statistics.median(help_times)

    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def report(f: dict) -> None:
    ratio = lambda a, b: f[a] / f[b]  # noqa: E731

    def e2e(key: str, label: str) -> str:
        return (f"  {label:<21}{f[f'e2e_{key}_s']:7.2f} s ({f[f'e2e_{key}_median_s']:.2f})  "
                f"{f[f'e2e_{key}_pdfs_per_s']:7.0f} PDFs/s  peak {f[f'e2e_{key}_peak_mib']:.0f} MiB  "
                f"first result {f[f'e2e_{key}_first_result_s']:.2f} s")

    lines = [
        "",
        f"sgmine scan benchmark: {f['n_files']} files, {f['cpu_count']} CPUs",
        f"end to end (fresh process, best of {f['repeats']}; median in brackets)",
        e2e("sgmine", "sgmine scan"),
        *([e2e("sgmine_int8", "sgmine scan --int8")] if "e2e_sgmine_int8_s" in f else []),
        e2e("reference", "reference (TF+diffpy)"),
        f"  speed-up             {f['e2e_speedup']:7.2f} x"
        + (f"   (--int8: {ratio('e2e_reference_s', 'e2e_sgmine_int8_s'):.2f} x)" if "e2e_sgmine_int8_s" in f else ""),
        f"scoring alone (PDFs/s, best of {f['repeats']})",
        f"  onnxruntime fp32, tf2onnx graph, default session {f['score_ort_default_pdfs_per_s']:7.0f}",
        f"  onnxruntime fp32, sgmine graph and session       {f['score_sgmine_fp32_pdfs_per_s']:7.0f}  "
        f"({ratio('score_sgmine_fp32_pdfs_per_s', 'score_ort_default_pdfs_per_s'):.2f} x)",
        f"  onnxruntime INT8 of sgmine graph, default session {f['score_ort_int8_pdfs_per_s']:6.0f}  "
        f"({ratio('score_ort_int8_pdfs_per_s', 'score_sgmine_fp32_pdfs_per_s'):.2f} x sgmine fp32)",
        *([f"  onnxruntime INT8, sgmine --int8                  {f['score_sgmine_int8_pdfs_per_s']:7.0f}  "
           f"({ratio('score_sgmine_int8_pdfs_per_s', 'score_sgmine_fp32_pdfs_per_s'):.2f} x fp32)"]
          if "score_sgmine_int8_pdfs_per_s" in f else []),
        f"  Keras predict                                    {f['score_keras_pdfs_per_s']:7.0f}",
        f"CNN cost {f['gflop_per_pdf']:.3f} GFLOP/PDF; float32 GEMM peak {f['gemm_peak_gflops']:.0f} GFLOP/s "
        "(numpy, measured now)",
        f"  -> fp32 limit {f['fp32_limit_pdfs_per_s']:.0f} PDFs/s; sgmine fp32 reaches "
        f"{100 * f['fp32_share_of_gemm_peak']:.0f}% of it",
        f"reading alone (files/s, best of {f['repeats']})",
        f"  sgmine read_gr, whole file             {f['read_sgmine_files_per_s']:7.0f}   "
        f"({ratio('read_sgmine_files_per_s', 'read_diffpy_files_per_s'):.2f} x diffpy)",
        f"  sgmine read_gr, rows the grid needs    {f['read_sgmine_window_files_per_s']:7.0f}   "
        f"({ratio('read_sgmine_window_files_per_s', 'read_diffpy_files_per_s'):.2f} x diffpy; what scan does)",
        f"  diffpy load_data                       {f['read_diffpy_files_per_s']:7.0f}",
        f"resampling onto the grid (curves/s, best of {f['repeats']})",
        f"  one by one {f['resample_one_by_one_per_s']:7.0f}   together (resample_many, as scan does) "
        f"{f['resample_many_per_s']:7.0f}",
        f"CLI start-up (sgmine --help, median of 5): {f['cli_help_s']:.3f} s",
    ]
    if "int8_top1_agreement" in f:
        verdict = ("offered: sgmine scan --int8" if f["int8_offered"]
                   else "below the 99.5% gate: sgmine-train quantize would refuse it, sgmine scan --int8 too")
        lines.append(f"INT8 top-1 agreement with fp32: {100 * f['int8_top1_agreement']:.2f}% of "
                     f"{f['int8_agreement_rows']} held-out test PDFs ({verdict})")
    else:
        lines.append("INT8 top-1 agreement: not measured (needs a trained --keras model and its --dataset)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
