"""Members of an exported ensemble as run directories, untrained: the baseline of a distilled run.

    python benchmarks/member_runs.py sgmine/data/model.onnx --members 0,1,2 --like RUN --out DIR

writes ``DIR/member0``, ``DIR/member1``, ... : each the network of that member of the file, read
back by :mod:`training.onnx_keras` (checked against the file to 1e-5) and saved as a run's
``model.keras`` (seen through its class outputs when the network of ``RUN`` has a "none of these"
output), with ``RUN``'s ``split.npz``, ``config.json`` and ``history.json`` (the warm-start record
replaced by this member's). ``sgmine-train ensemble DIR/member*`` then averages them, and
``calibrate`` and ``export`` treat the result like any ensemble on ``RUN``'s split: a few members
of a shipped file, calibrated and exported as a trained run of the same members would be.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def member_run(model: Path, member: int, like: Path, out: Path) -> Path:
    """Write the run directory ``out`` holding member ``member`` of ``model`` on ``like``'s split."""
    from sgmine.files import atomic_save, atomic_write
    from training.datafiles import read_dataset
    from training.fit import build_architecture, in_class_view
    from training.onnx_keras import warm_start, warm_start_record
    from training.run import RunDir

    source = RunDir(like)
    history = source.history()
    config = history["config"]
    data = read_dataset(history["data"]["path"])
    split = source.split(len(data))
    other = config["outlier_target"] == "other"
    network = build_architecture(config["architecture"], len(data.classes) + other, data.x.shape[1],
                                 dropout=config.get("dropout"), width=config.get("width"))
    difference = warm_start(network, model, data.x[split.train][:, :, None], member=member)
    saved = in_class_view(network, len(data.classes)) if other else network
    target = RunDir(out)
    target.path.mkdir(parents=True, exist_ok=True)
    atomic_save(lambda p: saved.save(str(p)), target.model_file)
    for name in (target.split_file.name, target.config_file.name):
        shutil.copyfile(source.path / name, target.path / name)
    record = {**history, "history": {}, "best_epoch": 0, "epochs_run": 0, "seconds_this_session": 0.0,
              "warm_start": warm_start_record(model, member), "untrained": True}
    record.pop("teacher", None)
    atomic_write(target.history_file, json.dumps(record, indent=2))
    print(f"{out}: member {member} of {model} (largest difference from the file {difference:.1e})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an exported ensemble (e.g. sgmine/data/model.onnx)")
    parser.add_argument("--members", required=True, help="comma-separated member numbers (0-based)")
    parser.add_argument("--like", type=Path, required=True,
                        help="a run of the members' network on the wanted dataset and split (e.g. a distilled student)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the run directories member0, member1, ...")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow CPU threads (0: its default)")
    args = parser.parse_args(argv)
    from training.fit import configure_threads

    configure_threads(args.threads)
    for k in (int(m) for m in args.members.split(",")):
        member_run(args.model, k, args.like, args.out / f"member{k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
