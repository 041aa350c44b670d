"""Fusing a lexical and a dense ranking into one (hybrid search).

Two well-studied fusions, both over candidate lists deep enough that a document found by
only one side is not unfairly halved:

- Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009):
  ``score(d) = sum_r 1 / (k + rank_r(d))`` with k = 60; needs no score calibration.
- Convex combination of min-max normalised scores (Bruch, Gai and Ingber, TOIS 2023):
  ``score(d) = alpha * dense'(d) + (1 - alpha) * lexical'(d)``, where ``x' = (x - min) / (max - min)``
  over each list and a document absent from a list gets 0 from it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

RRF_K = 60
Ranked = Sequence[tuple[Hashable, float]]  # (id, score), best first


def reciprocal_rank_fusion(rankings: Sequence[Ranked], k: int = RRF_K) -> list[tuple[Hashable, float]]:
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], str(pair[0])))


def min_max(ranking: Ranked) -> dict[Hashable, float]:
    if not ranking:
        return {}
    values = [score for _, score in ranking]
    low, high = min(values), max(values)
    if high == low:
        return {item: 1.0 for item, _ in ranking}
    return {item: (score - low) / (high - low) for item, score in ranking}


def convex_combination(dense: Ranked, lexical: Ranked, alpha: float) -> list[tuple[Hashable, float]]:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be between 0 and 1")
    dense_n, lexical_n = min_max(dense), min_max(lexical)
    items = dict.fromkeys([item for item, _ in dense] + [item for item, _ in lexical])
    fused = {item: alpha * dense_n.get(item, 0.0) + (1 - alpha) * lexical_n.get(item, 0.0) for item in items}
    return sorted(fused.items(), key=lambda pair: (-pair[1], str(pair[0])))
