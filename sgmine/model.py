"""The ONNX model file: what it is (its metadata) and scoring curves with it.

A model file carries everything the runtime needs to use it, as ONNX ``metadata_props``
(string key/value pairs), so nothing model-specific is ever copied into the runtime:

=================  ===========================================================
key                value
=================  ===========================================================
``sgmine_format``  version of this metadata layout (``"1"``)
``classes``        JSON list of space-group numbers, in output order
``symbols``        JSON list of Hermann–Mauguin symbols, same order
``rmin``           first grid point, Å (e.g. ``"1.5"``)
``rmax``           last grid point, Å (e.g. ``"30.0"``)
``npoints``        number of grid points (e.g. ``"209"``)
``interpolation``  ``linear``, ``quadratic`` or ``cubic``
``normalisation``  ``minmax`` or ``none``
``model_version``  free text, e.g. ``"2026.11-8sg"``
``training_data``  free text describing the training set
``metrics``        JSON object of evaluation figures (optional)
``temperature``    softmax temperature from calibration (optional, default 1)
``in_domain_threshold``  smallest calibrated top-1 probability of an input that looks
                   like the training data (optional; without it ``in_domain`` is unknown)
``none_of_these``  ``"remainder"`` when the class probabilities leave the probability of
                   none of the classes as the rest to 1 (optional; see below)
``none_of_these_threshold``  for such a model: the largest probability of none of the
                   classes of an input that looks like the training data; when present it,
                   not ``in_domain_threshold``, decides ``in_domain`` (optional)
=================  ===========================================================

An INT8 file (``sgmine-train quantize``) adds ``int8_top1_agreement`` (its measured top-1
agreement with float32 on held-out test PDFs, at least :data:`MIN_INT8_AGREEMENT`) and a probe
set, ``int8_probe_curves`` and ``int8_probe_classes`` (test curves and the float32 model's top-1
space group of each). Integer kernels differ between CPUs (without VNNI, u8 x s8 products can
saturate), so every load of an INT8 file scores its probe set on the CPU at hand and refuses the
file when more curves disagree than a model at the gate would plausibly show
(:func:`probe_allowance`).

The graph takes one float32 input of shape ``(batch, npoints, 1)`` (or ``(batch, npoints)``)
and returns class probabilities of shape ``(batch, len(classes))``. They sum to 1, or to less
for a model trained with a "none of these" output (``sgmine-train fit --outlier-target other``):
the remainder is the probability that the input is of none of the classes
(:func:`none_of_these`), and the top class probability, which the in-domain threshold reads,
is low when it is large.
"""

from __future__ import annotations

import base64
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sgmine.grid import Grid
from sgmine.models import (
    INT8_SUFFIX,
    MetadataError,
    ShippedModel,
    read_metadata,
    resolve_model,
    shipped_name,
    unknown_model_message,
)

FORMAT_VERSION = "1"
#: Probabilities that sum to 1 within this leave nothing to "none of these" (float rounding).
REMAINDER_TOLERANCE = 1e-5
REQUIRED_KEYS = ("classes", "symbols", "rmin", "rmax", "npoints")


class ModelError(RuntimeError):
    """A model file that is missing, unreadable, or does not follow the sgmine contract."""


@dataclass(frozen=True)
class ModelInfo:
    """Everything about a model that travels inside its file."""

    classes: tuple[int, ...]
    symbols: tuple[str, ...]
    grid: Grid = Grid()
    model_version: str = "unversioned"
    training_data: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    in_domain_threshold: float | None = None
    #: Whether the model has a "none of these" output, left as the rest of its class probabilities to 1.
    none_of_these: bool = False
    #: For such a model, the largest probability of none of these of an in-domain input (from
    #: calibration); when set, it decides :meth:`in_domain` instead of ``in_domain_threshold``.
    none_of_these_threshold: float | None = None

    def __post_init__(self) -> None:
        if len(self.classes) == 0:
            raise ValueError("a model needs at least one class")
        if len(self.classes) != len(self.symbols):
            raise ValueError(f"{len(self.classes)} classes but {len(self.symbols)} symbols")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must not repeat")
        if not all(1 <= int(c) <= 230 for c in self.classes):
            raise ValueError("classes must be space-group numbers 1–230")
        if not (self.temperature > 0):
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.in_domain_threshold is not None and not 0 <= self.in_domain_threshold <= 1:
            raise ValueError(f"in_domain_threshold must be a probability, got {self.in_domain_threshold}")
        if self.none_of_these_threshold is not None and not (self.none_of_these and 0 <= self.none_of_these_threshold <= 1):
            raise ValueError("none_of_these_threshold must be a probability, for a model with a none-of-these output")

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` key/value strings that describe this model."""
        g = self.grid
        return {
            "sgmine_format": FORMAT_VERSION,
            "classes": json.dumps([int(c) for c in self.classes]),
            "symbols": json.dumps(list(self.symbols)),
            "rmin": repr(float(g.rmin)),
            "rmax": repr(float(g.rmax)),
            "npoints": str(int(g.npoints)),
            "interpolation": g.interpolation,
            "normalisation": g.normalisation,
            "model_version": self.model_version,
            "training_data": self.training_data,
            "metrics": json.dumps(self.metrics),
            "temperature": repr(float(self.temperature)),
            **(
                {"in_domain_threshold": repr(float(self.in_domain_threshold))}
                if self.in_domain_threshold is not None
                else {}
            ),
            **({"none_of_these": "remainder"} if self.none_of_these else {}),
            **(
                {"none_of_these_threshold": repr(float(self.none_of_these_threshold))}
                if self.none_of_these_threshold is not None
                else {}
            ),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "ModelInfo":
        """Read the metadata written by :meth:`to_metadata`; raise ``ValueError`` naming what is wrong."""
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise ValueError(f"model metadata lacks {', '.join(missing)}")
        try:
            classes = tuple(int(c) for c in json.loads(meta["classes"]))
            symbols = tuple(str(s) for s in json.loads(meta["symbols"]))
            grid = Grid(
                rmin=float(meta["rmin"]),
                rmax=float(meta["rmax"]),
                npoints=int(meta["npoints"]),
                interpolation=meta.get("interpolation", "quadratic"),
                normalisation=meta.get("normalisation", "minmax"),
            )
            metrics = json.loads(meta["metrics"]) if meta.get("metrics") else {}
            temperature = float(meta.get("temperature") or 1.0)
            threshold = float(meta["in_domain_threshold"]) if meta.get("in_domain_threshold") else None
            none_threshold = float(meta["none_of_these_threshold"]) if meta.get("none_of_these_threshold") else None
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"model metadata is malformed: {exc}") from exc
        return cls(
            classes=classes,
            symbols=symbols,
            grid=grid,
            model_version=meta.get("model_version", "unversioned"),
            training_data=meta.get("training_data", ""),
            metrics=metrics,
            temperature=temperature,
            in_domain_threshold=threshold,
            none_of_these=meta.get("none_of_these") == "remainder",
            none_of_these_threshold=none_threshold,
        )

    def in_domain(self, confidence: float, none_of_these: float | None = None) -> bool | None:
        """Whether an input whose calibrated top-1 probability is ``confidence`` (and probability
        of none of the classes ``none_of_these``, for a model with that output) looks like the
        training data; None when the model carries no threshold (rule: :func:`in_domain_rows`)."""
        inside = in_domain_rows(confidence, none_of_these, in_domain_threshold=self.in_domain_threshold,
                                none_of_these_threshold=self.none_of_these_threshold)
        return None if inside is None else bool(inside)

    def in_domain_many(self, probs: np.ndarray) -> np.ndarray | None:
        """:meth:`in_domain` of each row of calibrated probabilities ``probs`` (boolean array),
        or None when the model carries no threshold."""
        probs = np.asarray(probs)
        return in_domain_rows(probs.max(axis=1), none_of_these(probs) if self.none_of_these else None,
                              in_domain_threshold=self.in_domain_threshold,
                              none_of_these_threshold=self.none_of_these_threshold)


def in_domain_rows(
    confidence: float | np.ndarray,
    none_of_these: float | np.ndarray | None,
    *,
    in_domain_threshold: float | None,
    none_of_these_threshold: float | None = None,
) -> np.ndarray | None:
    """The in-domain rule, for one input or many: with a ``none_of_these_threshold`` (a model with
    a "none of these" output; it separates other space groups better than the top-1 probability),
    ``none_of_these <= none_of_these_threshold``; otherwise ``confidence >= in_domain_threshold``;
    None when neither threshold applies. Used by the runtime (:class:`ModelInfo`) and by
    ``sgmine-train calibrate``, so that both flag the same inputs."""
    if none_of_these_threshold is not None and none_of_these is not None:
        return np.asarray(none_of_these) <= none_of_these_threshold
    if in_domain_threshold is None:
        return None
    return np.asarray(confidence) >= in_domain_threshold


# --- INT8 models (``sgmine scan --int8``) ---------------------------------------------------
#: An INT8 model is used only if its top-1 class agreed with its float32 model on at least this
#: share of a held-out test set; ``sgmine-train quantize`` measures it and records it in the file.
MIN_INT8_AGREEMENT = 0.995
INT8_AGREEMENT_KEY = "int8_top1_agreement"
#: The probe set an INT8 file carries, so that INT8 is checked on the CPU that runs it (its
#: integer kernels differ: without VNNI, u8 x s8 products can saturate). Curves: base64 of the
#: zlib-compressed little-endian float16 array, shape ``(n, npoints)``, already on the grid.
INT8_PROBE_KEY = "int8_probe_curves"
#: JSON list: the float32 model's top-1 space group for each probe curve (as stored, float16).
INT8_PROBE_CLASSES_KEY = "int8_probe_classes"
#: The probe rule refuses a model whose true agreement is exactly the gate at most this often.
PROBE_FALSE_ALARM = 1e-3
#: Fewest probe curves that can tell a saturating CPU (~90 % agreement) from a good one.
MIN_PROBE_ROWS = 64


def int8_model_path(path: str | Path | None = None) -> Path:
    """Where the INT8 version of model ``path`` (a file or a shipped model's name; None: the
    default model) lives: ``<stem>.int8.onnx`` beside it (a path that already names an INT8
    file is returned as it is)."""
    path = resolve_model(path)
    return path if path.name.endswith(INT8_SUFFIX) else path.with_name(path.stem + INT8_SUFFIX)


def _int8_agreement(path: Path, meta: dict[str, str]) -> float:
    """The recorded top-1 agreement of an INT8 model; ModelError when it is missing or too low."""
    try:
        share = float(meta[INT8_AGREEMENT_KEY])
    except (KeyError, TypeError, ValueError):
        raise ModelError(
            f"INT8 model {path} does not record its top-1 agreement with the float32 model "
            f"({INT8_AGREEMENT_KEY}); make it with `sgmine-train quantize`, which measures it"
        ) from None
    if not share >= MIN_INT8_AGREEMENT:
        raise ModelError(
            f"INT8 model {path} agreed with the float32 model on only {100 * share:.2f}% of its test "
            f"set ({100 * MIN_INT8_AGREEMENT:.1f}% needed); use the float32 model (drop --int8)"
        )
    return share


def probe_allowance(
    n: int, *, min_agreement: float = MIN_INT8_AGREEMENT, false_alarm: float = PROBE_FALSE_ALARM
) -> int:
    """The most top-1 mismatches an INT8 model may show on ``n`` probe curves.

    The smallest ``k`` such that a model whose true agreement is exactly ``min_agreement`` shows
    more than ``k`` mismatches with probability at most ``false_alarm`` (binomial tail): a model
    at the gate is refused at most that often, a clearly worse one almost always. For 128
    probes, 99.5 % and 1e-3: 4 (refused from 5 mismatches, 96.1 %); a model at 90 % agreement
    (issue #12's saturating AVX2 case) shows 12.8 on average and passes with probability < 1e-3.

    Parameters
    ----------
    n
        Number of probe curves.
    min_agreement
        The agreement gate (:data:`MIN_INT8_AGREEMENT`).
    false_alarm
        The largest accepted chance of refusing a model exactly at the gate.
    """
    p = 1.0 - min_agreement
    cumulative = 0.0
    for k in range(n + 1):
        cumulative += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if 1.0 - cumulative <= false_alarm:
            return k
    return n


def encode_probe(curves: np.ndarray) -> str:
    """Probe curves ``(n, npoints)`` as the text of :data:`INT8_PROBE_KEY` (float16, zlib, base64)."""
    raw = np.ascontiguousarray(curves, dtype="<f2").tobytes()
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode_probe(text: str, npoints: int) -> np.ndarray:
    """The float32 curves ``(n, npoints)`` written by :func:`encode_probe`; ValueError if malformed."""
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"{INT8_PROBE_KEY} is not base64 of zlib data: {exc}") from None
    values = np.frombuffer(raw, dtype="<f2")
    if values.size == 0 or values.size % npoints:
        raise ValueError(f"{INT8_PROBE_KEY} holds {values.size} values, not rows of {npoints} points")
    return values.reshape(-1, npoints).astype(np.float32)


def cpu_has_vnni() -> bool | None:
    """Whether this CPU has AVX-512 VNNI or AVX-VNNI (INT8 dot products that do not saturate);
    None where ``/proc/cpuinfo`` cannot tell (not Linux, not x86)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _probe_mismatch_note() -> str:
    vnni = cpu_has_vnni()
    if vnni is False:
        return " (this CPU has no VNNI; its INT8 products saturate unless weights are 7-bit)"
    return ""
# --- end INT8 --------------------------------------------------------------------------------


class Model:
    """An ONNX model loaded once, scoring batches of curves already on its grid."""

    def __init__(self, path: str | Path | None = None, *, threads: int | None = None, int8: bool = False) -> None:
        """Load model ``path``: an ONNX file, or the name of a model shipped with sgmine
        (``"sg8"``, see :func:`sgmine.models.shipped_models`); None loads the default one."""
        self.path = resolve_model(path)
        #: How to name this model to a user: its shipped name (``sg8``) or its file, "(INT8)" added
        #: for the INT8 copy; :attr:`ModelInfo.model_version` says which version it is.
        self.name = (shipped_name(self.path) or str(self.path)) + (" (INT8)" if int8 else "")
        if int8:  # the INT8 file beside the model, which must exist
            self.path = int8_model_path(self.path)
            if not self.path.is_file():
                base = "the shipped model" if path is None else str(path)
                raise ModelError(
                    f"no INT8 model for {base}: {self.path} does not exist; make it with "
                    f"`sgmine-train quantize MODEL.onnx --data DATASET --run RUN_DIR --out {self.path}`, "
                    "or drop --int8"
                )
        if not self.path.is_file():
            if path is None:
                raise ModelError(
                    f"no model shipped with this install ({self.path} is missing); "
                    "pass one with --model FILE (Python: model=FILE)"
                )
            if self.path.is_dir():
                raise ModelError(f"model file {self.path} is a directory; give the .onnx file")
            if not self.path.exists():
                raise ModelError(unknown_model_message(path))
            raise ModelError(f"model file {self.path} is not a regular file")
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"cannot load model {self.path}: {_first_line(exc)}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        try:
            self.info = ModelInfo.from_metadata(meta)
        except ValueError as exc:
            raise ModelError(f"model {self.path} is not an sgmine model: {exc}") from exc
        #: top-1 agreement of an INT8 model with its float32 one (None for a float32 model)
        self.int8_agreement: float | None = None
        #: top-1 agreement of an INT8 model with float32 on its probe set, on this CPU (else None)
        self.int8_probe_agreement: float | None = None
        is_int8 = int8 or INT8_AGREEMENT_KEY in meta or self.path.name.endswith(INT8_SUFFIX)
        if is_int8:
            self.int8_agreement = _int8_agreement(self.path, meta)
        self._check_signature()
        if is_int8:
            self.int8_probe_agreement = self._check_probe(meta)

    def _check_probe(self, meta: dict[str, str]) -> float:
        """Score the INT8 file's probe set on this CPU; ModelError when its top-1 classes differ
        from the stored float32 ones on more curves than :func:`probe_allowance` accepts."""
        if INT8_PROBE_KEY not in meta or INT8_PROBE_CLASSES_KEY not in meta:
            raise ModelError(
                f"INT8 model {self.path} carries no probe set ({INT8_PROBE_KEY}) to check INT8 on this CPU; "
                "remake it with the current `sgmine-train quantize`, or drop --int8"
            )
        try:
            curves = decode_probe(meta[INT8_PROBE_KEY], self.grid.npoints)
            expected = np.array([int(c) for c in json.loads(meta[INT8_PROBE_CLASSES_KEY])])
            if len(expected) != len(curves):
                raise ValueError(f"{len(curves)} probe curves but {len(expected)} classes")
            if len(curves) < MIN_PROBE_ROWS:
                raise ValueError(f"{len(curves)} probe curves, fewer than the {MIN_PROBE_ROWS} needed")
        except (TypeError, ValueError) as exc:
            raise ModelError(f"INT8 model {self.path} has a malformed probe set: {_first_line(exc)}") from None
        got = np.asarray(self.info.classes)[self.predict_proba(curves).argmax(axis=1)]
        mismatches, allowed = int((got != expected).sum()), probe_allowance(len(curves))
        if mismatches > allowed:
            raise ModelError(
                f"INT8 model {self.path} disagrees with the float32 model on {mismatches} of its "
                f"{len(curves)} probe PDFs on this CPU (at most {allowed} allowed){_probe_mismatch_note()}; "
                "use the float32 model (drop --int8)"
            )
        return 1.0 - mismatches / len(curves)

    def _check_signature(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"model {self.path} must have one input and one output")
        shape = inputs[0].shape
        n = int(self.info.grid.npoints)
        if len(shape) not in (2, 3) or (isinstance(shape[1], int) and shape[1] != n):
            raise ModelError(
                f"model {self.path} input shape {shape} does not match its grid of {n} points"
            )
        if len(shape) == 3 and isinstance(shape[2], int) and shape[2] != 1:
            raise ModelError(
                f"model {self.path} input shape {shape} has {shape[2]} channels; sgmine gives one "
                f"(batch, {n}, 1)"
            )
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"model {self.path} input is {inputs[0].type}; sgmine gives tensor(float)")
        self._input_name = inputs[0].name
        self._input_rank = len(shape)
        out_shape = outputs[0].shape
        if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != len(self.info.classes)):
            raise ModelError(
                f"model {self.path} output shape {out_shape} does not match its "
                f"{len(self.info.classes)} classes"
            )

    @property
    def grid(self) -> Grid:
        """The r-grid and preprocessing this model expects."""
        return self.info.grid

    def predict_proba(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``, for curves ``x`` of shape ``(n, npoints)``."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.grid.npoints:
            raise ValueError(f"expected an array of shape (n, {self.grid.npoints}), got {x.shape}")
        if self._input_rank == 3:
            x = x[:, :, None]
        try:
            parts = [
                self._session.run(None, {self._input_name: x[i : i + batch_size]})[0]
                for i in range(0, len(x), batch_size)
            ]
        except Exception as exc:  # onnxruntime's private exception types: a model that cannot run
            raise ModelError(f"model {self.path} failed to score a batch: {_first_line(exc)}") from exc
        probs = np.concatenate(parts) if parts else np.zeros((0, len(self.info.classes)), np.float32)
        return apply_temperature(probs.astype(np.float64), self.info.temperature, remainder=self.info.none_of_these)


def apply_temperature(probs: np.ndarray, temperature: float, *, remainder: bool = False) -> np.ndarray:
    """Rescale softmax outputs as if the logits had been divided by ``temperature``
    (the calibration the model file records; 1 leaves them as they are).

    With ``remainder`` (a model with a "none of these" output, which the file leaves as the rest
    of the class probabilities to 1), that rest is rescaled as one more class, so the rescaled
    class probabilities still leave the rescaled rest to none of these.
    """
    if temperature == 1.0 or probs.size == 0:
        return probs
    if remainder:
        probs = np.concatenate([probs, np.clip(1.0 - probs.sum(axis=1, keepdims=True), 0.0, None)], axis=1)
    logits = np.log(np.clip(probs, 1e-30, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    scaled = e / e.sum(axis=1, keepdims=True)
    return scaled[:, :-1] if remainder else scaled


def none_of_these(probs: np.ndarray) -> np.ndarray:
    """The probability each row leaves to none of the model's classes (0 for a plain softmax)."""
    rest = 1.0 - np.asarray(probs, dtype=np.float64).sum(axis=1)
    return np.where(rest > REMAINDER_TOLERANCE, rest, 0.0)


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """The :class:`~sgmine.model.ModelInfo` of model file ``path``, from its metadata alone;
    :class:`~sgmine.model.ModelError` when the file cannot be read or is not an sgmine model."""
    try:
        meta = read_metadata(path)
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror or exc}") from None
    except (MetadataError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read model {path}: not an ONNX file ({exc})") from None
    try:
        return ModelInfo.from_metadata(meta)
    except ValueError as exc:
        raise ModelError(f"model {path} is not an sgmine model: {exc}") from None


def describe(shipped: ShippedModel) -> dict[str, object]:
    """What ``sgmine models`` says about one shipped model, read from its metadata (an
    ``error`` entry instead of the model's figures when its file cannot be read)."""
    entry: dict[str, object] = {"name": shipped.name, "default": shipped.default}
    try:
        info = read_model_info(shipped.path)
        entry.update(
            version=info.model_version,
            n_classes=len(info.classes),
            space_groups=[{"number": int(c), "symbol": s} for c, s in zip(info.classes, info.symbols)],
            description=info.training_data,
        )
    except ModelError as exc:
        entry["error"] = str(exc)
    try:
        entry["size_bytes"] = shipped.size
    except OSError:
        entry["size_bytes"] = None
    entry["path"] = str(shipped.path)
    entry["card"] = str(shipped.card) if shipped.card is not None else None
    return entry


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def attach_metadata(model_proto: Any, info: ModelInfo) -> Any:
    """Write ``info`` into an ``onnx.ModelProto``'s ``metadata_props`` (replacing sgmine keys).

    Used by the training export and by tests that build small models; needs no import of
    ``onnx`` itself. Returns the same proto.
    """
    meta = info.to_metadata()
    kept = [(p.key, p.value) for p in model_proto.metadata_props if p.key not in meta]
    del model_proto.metadata_props[:]
    for key, value in kept + list(meta.items()):
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value
    return model_proto
