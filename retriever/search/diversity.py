"""Maximal marginal relevance: the top k of a candidate ranking, each chosen for relevance and novelty.

A ranking's first results are often near-copies of one fact (a passage and its duplicate in another file,
two overlapping passages of one document). MMR (Carbonell and Goldstein, 1998) picks, one at a time, the
candidate with the best ``lambda * relevance - (1 - lambda) * (max cosine to the already picked)``;
lambda 1.0 is the plain ranking, lower values trade relevance for novelty.

Relevance is the ranking's own score (a cosine, a BM25 score or a fused score) divided by the best one, so
that it is on the cosine's scale whatever the mode (a dense search keeps the cosine's proportions; min-max
would give the last candidate relevance 0, and with few candidates MMR would keep a copy rather than it);
scores with negatives are min-max rescaled. Novelty uses the passages' stored (normalised) vectors, so it
works in lexical mode too and needs no query encoding. A hit keeps its
ranking score: MMR changes the order and the set, not what a score means.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from retriever.errors import RetrieverError

MIN_FETCH = 20  # candidates considered at least, whatever k
FETCH_PER_RESULT = 4  # default candidates per result asked for


def default_fetch_k(k: int) -> int:
    """How many candidates MMR chooses from when a search does not say: enough to find k distinct ones."""
    return max(FETCH_PER_RESULT * k, MIN_FETCH)


def check_diversity(diversity: float | None, fetch_k: int | None, k: int) -> None:
    """One clear error for a lambda outside [0, 1] or a candidate depth below k."""
    if diversity is not None:
        if isinstance(diversity, bool) or not isinstance(diversity, numbers.Real):
            raise RetrieverError(f"diversity must be a number between 0 and 1, not {type(diversity).__name__}")
        if not 0.0 <= float(diversity) <= 1.0:
            raise RetrieverError("diversity must be between 0 (most diverse) and 1 (pure relevance)")
    if fetch_k is not None:
        if isinstance(fetch_k, bool) or not isinstance(fetch_k, numbers.Integral):
            raise RetrieverError(f"fetch_k must be an integer, not {type(fetch_k).__name__} {fetch_k!r}")
        if fetch_k < k:
            raise RetrieverError(f"fetch_k ({fetch_k}) must be at least k ({k})")


def rescaled(scores: np.ndarray) -> np.ndarray:
    """Scores as relevance in [0, 1]: over the best one when none is negative, else min-max."""
    low, high = float(scores.min()), float(scores.max())
    if low >= 0.0 and high > 0.0:
        return (scores / high).astype(np.float32)
    if high - low <= 1e-12:
        return np.ones_like(scores, dtype=np.float32)
    return ((scores - low) / (high - low)).astype(np.float32)


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Indices of the k candidates MMR picks, in the order picked (``vectors`` normalised, one row each)."""
    count = len(relevance)
    if count == 0 or k <= 0:
        return []
    similarity = vectors @ vectors.T
    picked = [int(np.argmax(relevance))]
    closest = similarity[picked[0]].copy()  # per candidate: cosine to the most similar picked one
    available = np.ones(count, dtype=bool)
    available[picked[0]] = False
    while len(picked) < min(k, count):
        gain = lam * relevance - (1.0 - lam) * closest
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        np.maximum(closest, similarity[best], out=closest)
    return picked


def diversify(ranked: Sequence[tuple[Any, float]], vectors_of: Callable[[list[Any]], np.ndarray], k: int,
              lam: float) -> list[tuple[Any, float]]:
    """The k (passage key, score) that MMR picks from a ranking (best first), each with its ranking score."""
    if not ranked:
        return []
    keys = [key for key, _ in ranked]
    scores = np.asarray([score for _, score in ranked], dtype=np.float64)
    vectors = np.asarray(vectors_of(keys), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)  # compressed (PQ, int8) vectors come back not quite unit length
    order = mmr_order(rescaled(scores), vectors, k, float(lam))
    return [ranked[i] for i in order]
