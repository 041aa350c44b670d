"""Why a hit is where it is: ``search(..., explain=True)`` attaches an ``Explanation`` to each hit.

Built from the very lists the ranking fused (``retriever.search.ranking.fuse``), with the fusion's own
normalisation (``retriever.search.fusion``), so it states what was computed rather than an approximation:

- each side's own score (cosine similarity for dense, BM25 for lexical), its 1-based rank among that side's
  candidates (``None``: the side did not find it, so it contributed 0), and its value as the fusion used it
  (convex: min-max normalised over the side's candidates; rrf: ``1 / (60 + rank)``);
- ``fused``: the fused score (the side's own score in dense or lexical mode), which is the hit's score unless
  the model's metric head reranked it (``reranked``: the head's score, then the hit's score).

Explaining costs nothing when it is not asked for: nothing here runs.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from retriever.search.fusion import RRF_K, min_max

Ranked = Sequence[tuple[Hashable, float]]  # (id, score), best first


@dataclass
class Explanation:
    """The scores behind one hit (``None`` where a side was not searched or did not find the hit)."""

    mode: str
    fused: float
    fusion: str | None = None  # hybrid only: "convex" or "rrf"
    alpha: float | None = None  # convex fusion only: the weight of the dense side
    dense_score: float | None = None
    dense_rank: int | None = None
    dense_normalized: float | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None
    lexical_normalized: float | None = None
    reranked: float | None = None  # the learned metric head's score, when it reranked the hit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line: ``hybrid convex alpha=0.50: dense 0.612 #2 (0.83) + bm25 7.41 #1 (1) = 0.915``."""
        sides = []
        for name, score, rank, normalized, digits in (
            ("dense", self.dense_score, self.dense_rank, self.dense_normalized, 3),
            ("bm25", self.lexical_score, self.lexical_rank, self.lexical_normalized, 2),
        ):
            if rank is None and self.mode == "hybrid":
                sides.append(f"{name} not found (0)")
            elif rank is not None:
                shown = f" ({normalized:.4g})" if normalized is not None else ""
                sides.append(f"{name} {score:.{digits}f} #{rank}{shown}")
        how = self.mode
        if self.fusion is not None:
            how += f" {self.fusion}" + (f" alpha={self.alpha:.2f}" if self.alpha is not None else "")
        text = f"{how}: {' + '.join(sides)} = {self.fused:.4f}"
        return text + (f"; reranked {self.reranked:.4f}" if self.reranked is not None else "")


def explain_single(mode: str, ranked: Ranked) -> dict[Hashable, Explanation]:
    """Dense or lexical mode: each hit's score and rank on the one side searched."""
    side = "dense" if mode == "dense" else "lexical"
    return {key: Explanation(mode=mode, fused=float(score), **{f"{side}_score": float(score), f"{side}_rank": rank})
            for rank, (key, score) in enumerate(ranked, start=1)}


def explain_fusion(dense: Ranked, lexical: Ranked, fused: Ranked, fusion: str, alpha: float,
                   key_of: Mapping[Hashable, Hashable]) -> dict[Hashable, Explanation]:
    """Hybrid mode: both sides of each fused item; ``key_of`` maps a fused item to the key of its hit."""
    if fusion == "rrf":
        def normalise(ranking: Ranked) -> dict[Hashable, float]:
            return {item: 1.0 / (RRF_K + rank) for rank, (item, _) in enumerate(ranking, start=1)}
    else:
        normalise = min_max
    sides = []
    for ranking in (dense, lexical):
        ranks = {item: rank for rank, (item, _) in enumerate(ranking, start=1)}
        scores = dict(ranking)
        sides.append((ranks, scores, normalise(ranking)))
    explained = {}
    for item, score in fused:
        values: dict[str, Any] = {}
        for name, (ranks, scores, normalized) in zip(("dense", "lexical"), sides):
            if item in ranks:
                values.update({f"{name}_score": float(scores[item]), f"{name}_rank": ranks[item],
                               f"{name}_normalized": float(normalized[item])})
        explained[key_of[item]] = Explanation(mode="hybrid", fused=float(score), fusion=fusion,
                                              alpha=float(alpha) if fusion == "convex" else None, **values)
    return explained
