"""Knowledge distillation: train a network towards what an exported ensemble answers.

``sgmine-train fit DATA --teacher MODEL.onnx [--teacher-weight W]`` trains every training row
(the dataset's training part, ``--more`` rows and outlier rows alike) towards

    target = W * teacher + (1 - W) * label

where ``teacher`` is the mean of the file's members' softmax outputs on that curve (uncalibrated:
no temperature, the "none of these" output included when the members have one) and ``label`` the
row's one-hot target (for an outlier row with ``--outlier-target other``, "none of these"). The
loss stays Keras' categorical cross-entropy, which with such targets is the cross-entropy against
the teacher (the distillation term of Hinton et al. 2015 at temperature 1) plus ``1 - W`` times
that against the labels. Validation rows keep their labels, so early stopping and the best epoch
are chosen by accuracy, not by agreement with the teacher.

The teacher's probabilities are computed once per teacher file and set of curves and kept in
``$SGMINE_CACHE/teacher/`` (:func:`soft_targets`), named by the file's SHA-256 and a SHA-256 of
the curves themselves, so a second student on the same rows (another ``--member``) reads them back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from sgmine.files import atomic_save
from training.cache import file_digest

#: Share of the teacher's probabilities in each training target (the rest is the one-hot label).
TEACHER_WEIGHT = 0.5
#: Curves scored by onnxruntime at a time (bounds memory: 9 members of the shipped file).
BATCH = 2048


def curves_sha256(x: np.ndarray) -> str:
    """A SHA-256 of the curves ``x`` as float32 (shape included), naming them in the cache."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    digest = hashlib.sha256(repr(x.shape).encode())
    digest.update(memoryview(x).cast("B"))
    return digest.hexdigest()


def teacher_probabilities(path: str | Path, x: np.ndarray, *, batch: int = BATCH, threads: int = 0) -> np.ndarray:
    """The mean of the softmax outputs of the members of the ONNX file ``path`` on the curves ``x``.

    Parameters
    ----------
    path
        An exported model (:mod:`training.export`): one network, or an ensemble whose members
        each end in a ``Softmax`` (:func:`training.onnx_keras.member_outputs`).
    x
        Curves on the file's grid, ``(rows, npoints)`` or ``(rows, npoints, 1)``.
    batch
        Curves per onnxruntime call.
    threads
        onnxruntime's intra-op threads (0: its default).

    Returns
    -------
    numpy.ndarray
        ``(rows, outputs)`` float32: each member's softmax (all its outputs, "none of these"
        included, before any temperature), averaged over the members.
    """
    import onnx
    import onnxruntime as ort

    from training.onnx_keras import member_outputs, read_onnx

    proto = read_onnx(path)
    names = member_outputs(proto.graph)
    if not names:
        raise ValueError(f"teacher {path}: no Softmax output to read")
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    known = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    parts = []
    for start in range(0, len(x), batch):
        outputs = session.run(names, {feed: x[start:start + batch]})
        parts.append(np.mean(np.stack(outputs), axis=0, dtype=np.float64))
    if not parts:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(parts).astype(np.float32)


def cache_file(path: str | Path, x: np.ndarray) -> Path:
    """Where :func:`soft_targets` keeps the teacher ``path``'s probabilities on the curves ``x``."""
    from sgmine.cache import cache_root

    return cache_root() / "teacher" / f"{file_digest(path)[:16]}-{curves_sha256(x)[:16]}.npy"


def soft_targets(path: str | Path, x: np.ndarray, *, threads: int = 0, cache: bool = True) -> np.ndarray:
    """:func:`teacher_probabilities` of ``path`` on ``x``, read from the cache when it has them.

    Parameters
    ----------
    path, x, threads
        As :func:`teacher_probabilities`.
    cache
        Keep and reuse the result under ``$SGMINE_CACHE/teacher/`` (:func:`cache_file`).

    Returns
    -------
    numpy.ndarray
        ``(rows, outputs)`` float32 probabilities.
    """
    where = cache_file(path, x) if cache else None
    if where is not None and where.is_file():
        stored = np.load(where)
        if len(stored) == len(x):
            return stored
    probs = teacher_probabilities(path, x, threads=threads)
    if where is not None:
        where.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(lambda p: np.save(p, probs, allow_pickle=False), where)
    return probs


def mix_targets(labels: np.ndarray, soft: np.ndarray, *, weight: float = TEACHER_WEIGHT) -> np.ndarray:
    """``weight * soft + (1 - weight) * labels``: the training targets of a distilled run.

    Parameters
    ----------
    labels
        The rows' one-hot (or uniform, for outlier rows) targets, ``(rows, outputs)``.
    soft
        The teacher's probabilities on the same rows, same shape.
    weight
        The teacher's share, in [0, 1].

    Raises
    ------
    ValueError
        When the shapes differ (a teacher without the student's "none of these" output, or of
        other classes) or ``weight`` is outside [0, 1].
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"the teacher's weight must be in [0, 1], got {weight}")
    if labels.shape != soft.shape:
        raise ValueError(f"the teacher gives {soft.shape[-1]} outputs per curve, the network has {labels.shape[-1]} "
                         "(a teacher needs the same classes, and a 'none of these' output exactly when the student has one)")
    return (weight * soft + (1 - weight) * labels).astype(np.float32)


def check_teacher(path: str | Path, data) -> None:
    """Refuse a teacher file whose classes or grid are not the dataset ``data``'s."""
    from training.onnx_keras import file_info, read_onnx

    info = file_info(read_onnx(path))
    if tuple(info.classes) != tuple(data.classes):
        raise ValueError(f"--teacher {path}: its classes are {list(info.classes)}, this dataset's {list(data.classes)}")
    if info.grid != data.grid:
        raise ValueError(f"--teacher {path}: its grid is {info.grid.as_dict()}, this dataset's {data.grid.as_dict()}")


def teacher_record(path: str | Path, weight: float, soft: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """What ``history.json`` says about the teacher: file, SHA-256, model version, members, weight,
    and how often the teacher's top class is the label on the training rows."""
    from training.onnx_keras import file_info, member_outputs, read_onnx

    proto = read_onnx(path)
    return {
        "file": str(Path(path).resolve()),
        "sha256": file_digest(path),
        "model_version": file_info(proto).model_version,
        "members": len(member_outputs(proto.graph)),
        "weight": weight,
        "rows": len(soft),
        "agreement_with_labels": float(np.mean(soft.argmax(axis=1) == labels.argmax(axis=1))) if len(soft) else None,
    }
