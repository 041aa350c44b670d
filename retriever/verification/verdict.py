"""Verification: is this document a match for this query, yes or no, at a calibrated threshold.

As in face verification, the similarity of the two embeddings is compared with a threshold
chosen on labelled pairs: either the lowest threshold reaching a target precision, or the one
with the best F1. Threshold search uses scikit-learn's precision-recall curve rather than a
hand-written sweep.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from retriever.errors import RetrieverError

DEFAULT_THRESHOLD = 0.5  # used until `retriever calibrate` stores a better one


@dataclass(frozen=True)
class Verdict:
    score: float
    is_match: bool
    threshold: float
    calibrated: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Calibration:
    threshold: float
    objective: str  # "f1" or "precision>=0.9"
    precision: float  # on held-out pairs
    recall: float
    f1: float
    pairs: int  # held-out pairs scored
    positives: int


def choose_threshold(scores: np.ndarray, labels: np.ndarray, target_precision: float | None = None) -> float:
    """Best-F1 threshold, or the lowest threshold whose precision reaches ``target_precision``.

    A target that no threshold reaches is an error naming the best precision there is: storing
    another threshold under the name "precision>=target" would promise what verification cannot keep.
    """
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if target_precision is not None:
        reaching = np.flatnonzero(precision >= target_precision)
        if len(reaching):
            return float(thresholds[reaching[0]])
        best = int(np.argmax(precision))
        reachable = np.floor(precision[best] * 1000) / 1000  # rounded down, so asking for it succeeds
        raise RetrieverError(
            f"no threshold reaches precision {target_precision:g} on these pairs: the best is "
            f"{reachable:.3f} (threshold {thresholds[best]:.4f}); ask for at most that, "
            "or leave out --target-precision for the best F1; the index is unchanged"
        )
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return float(thresholds[int(np.argmax(f1))])


def precision_recall_f1(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float, float]:
    from sklearn.metrics import precision_recall_fscore_support

    predicted = scores >= threshold
    p, r, f, _ = precision_recall_fscore_support(labels, predicted, average="binary", zero_division=0)
    return float(p), float(r), float(f)
