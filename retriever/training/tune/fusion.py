"""Re-choosing the hybrid weight (alpha) and the fusion method on judged queries.

Cheap: each judged query is searched once per side (dense and lexical, 100 documents each, as hybrid
search does), then every setting is a re-fusion of those two lists, scored by per-query nDCG@10.
Unjudged documents count as irrelevant here, not condensed away as in the fine-tune CV: on 100 judged
SciFact train queries the condensed lists favoured alpha 0.3 (+0.0108 +/- 0.0093 held out), which loses
0.013 test hybrid nDCG@10; scored as irrelevant it showed -0.0062 +/- 0.0052
(benchmarks/tune_fusion_condensed.py, benchmarks/results/tune_fusion_condensed.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retriever.search.fusion import convex_combination, reciprocal_rank_fusion
from retriever.search.ranking import HYBRID_DEPTH
from retriever.training.tune.cv import Scores
from retriever.training.tune.metrics import ndcg_per_query

if TYPE_CHECKING:
    from retriever.retriever import Retriever

ALPHAS = tuple(a / 10 for a in range(11))  # 0.0 (lexical only) .. 1.0 (dense only)
Ranked = list[tuple[str, float]]


@dataclass(frozen=True)
class Fusion:
    """One hybrid setting: ``rrf``, or ``convex`` with weight ``alpha`` on the dense side."""

    method: str
    alpha: float

    @property
    def name(self) -> str:
        return "rrf" if self.method == "rrf" else f"convex:{self.alpha:.2f}"

    @classmethod
    def parse(cls, name: str) -> Fusion:
        if name == "rrf":
            return cls("rrf", 0.5)
        return cls("convex", float(name.split(":", 1)[1]))

    def fuse(self, dense: Ranked, lexical: Ranked) -> list[str]:
        if self.method == "rrf":
            fused = reciprocal_rank_fusion([dense, lexical])
        else:
            fused = convex_combination(dense, lexical, self.alpha)
        return [str(doc) for doc, _ in fused]


def current_fusion(retriever: Retriever) -> Fusion:
    """The setting a search uses today when it names none."""
    defaults = retriever.manifest.model.get("search_defaults", {})
    if defaults.get("fusion") == "rrf":
        return Fusion("rrf", retriever.default_alpha)
    return Fusion("convex", round(retriever.default_alpha, 2))


def candidate_fusions(current: Fusion) -> list[Fusion]:
    """The current setting first (it wins ties), then convex alphas 0.0..1.0 and RRF."""
    settings = [current] + [Fusion("convex", a) for a in ALPHAS] + [Fusion("rrf", 0.5)]
    return list({s.name: s for s in settings}.values())


def side_runs(retriever: Retriever, texts: list[str]) -> tuple[list[Ranked], list[Ranked]]:
    """Each query's dense and lexical document rankings, ``HYBRID_DEPTH`` deep (what hybrid search fuses)."""
    dense = retriever.search_many(texts, k=HYBRID_DEPTH, mode="dense")
    lexical = retriever.search_many(texts, k=HYBRID_DEPTH, mode="lexical")
    as_ranked = lambda rows: [[(h.doc_id, h.score) for h in row] for row in rows]  # noqa: E731
    return as_ranked(dense), as_ranked(lexical)


def fusion_scores(settings: list[Fusion], qids: list[str], dense: list[Ranked], lexical: list[Ranked],
                  qrels: dict[str, dict[str, int]]) -> Scores:
    """nDCG@10 of each setting on each judged query."""
    return {s.name: ndcg_per_query({q: s.fuse(d, lx) for q, d, lx in zip(qids, dense, lexical)}, qrels)
            for s in settings}


def describe(fusion: Fusion) -> dict[str, Any]:
    return {"fusion": fusion.method, "alpha": round(fusion.alpha, 3)}
