"""Figures of merit for predicted class probabilities, shared by every training step.

``evaluate`` (``report.json``), ``baseline`` (``baseline.json``) and ``calibrate``
(``calibration.json``) all score probabilities with these functions, so the same rows get the
same numbers in every report. Top-k accuracy and cross-entropy are scikit-learn's
(``top_k_accuracy_score``, ``log_loss``); scikit-learn has no expected calibration error, so it is
written out here.

All functions take ``labels``, the true *class indices* (0 .. C-1, in the model's output order),
and ``proba``, an (n, C) array of probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Equal-width confidence bins of :func:`expected_calibration_error`.
ECE_BINS = 15


def class_indices(y: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Space groups ``y`` as indices into ``classes``; a group not among them raises ``KeyError``."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[int(v)] for v in y], dtype=np.int64)


def top_k_accuracy(labels: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` most probable (NaN without rows).

    scikit-learn's ``top_k_accuracy_score``; ``k`` at least the number of classes gives 1, and
    with two classes (which scikit-learn reads as binary scores) top-1 is the argmax accuracy.
    Ties are broken as scikit-learn breaks them.
    """
    from sklearn.metrics import top_k_accuracy_score

    labels, proba = np.asarray(labels), np.asarray(proba)
    n_classes = proba.shape[1]
    if len(labels) == 0:
        return float("nan")
    if k >= n_classes:
        return 1.0
    if n_classes == 2:
        return float(np.mean(proba.argmax(axis=1) == labels))
    return float(top_k_accuracy_score(labels, proba, k=k, labels=np.arange(n_classes)))


def cross_entropy(labels: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-probability of the true class (scikit-learn's ``log_loss``).

    Rows are scaled to sum to one and computed in float64, so probabilities are floored at
    float64's machine epsilon (about 2.2e-16) whatever the model's output type.
    """
    from sklearn.metrics import log_loss

    if len(labels) == 0:
        return float("nan")
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return float(log_loss(np.asarray(labels), proba, labels=np.arange(proba.shape[1])))


def confidence_bins(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """The equal-width bin (0 .. ``bins`` - 1) of each top-1 probability in ``confidence``."""
    edges = np.linspace(0, 1, bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)


def expected_calibration_error(labels: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """Gap between confidence (top-1 probability) and accuracy, averaged over equal-width
    confidence bins weighted by their share of rows (Guo et al. 2017)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(labels)
    index = confidence_bins(confidence, bins)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def score_report(y_true: np.ndarray, proba: np.ndarray, classes: tuple[int, ...]) -> dict[str, Any]:
    """Test figures for probabilities ``proba`` (n, C) of space groups ``y_true`` (n,).

    Returns ``n_test``, ``cross_entropy``, ``top1/2/3_accuracy``, ``per_class`` (precision,
    recall, F1, support by space group) and ``confusion_matrix`` (true down, predicted across).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = class_indices(y_true, classes)
    predicted = np.argmax(proba, axis=1)
    order = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=order, zero_division=0)
    return {
        "n_test": int(len(labels)),
        "cross_entropy": cross_entropy(labels, proba),
        "top1_accuracy": top_k_accuracy(labels, proba, 1),
        "top2_accuracy": top_k_accuracy(labels, proba, 2),
        "top3_accuracy": top_k_accuracy(labels, proba, 3),
        "per_class": {
            str(c): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=order).tolist(),
    }
