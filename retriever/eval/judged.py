"""How well the engine, as it searches now, ranks what a person judged: nDCG@10 over the judged queries.

Each judged query is searched with the engine's defaults (mode, fusion, alpha, no reranking: what a plain
``search`` or ``POST /search`` does), its top 10 scored with trec_eval against the judgments (``metrics.evaluate``),
a hit nobody judged counting as not relevant. A query whose judgments are all 0 has no nDCG (nothing relevant
to find): it is counted among the judged queries but not in the mean.

The rankings depend only on the index version, so they are kept per generation: grading one more hit re-scores
without searching again, and a new version (a write, ``retriever tune``) searches again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retriever.eval.metrics import evaluate

if TYPE_CHECKING:
    from retriever.retriever import Retriever

CUTOFF = 10
METRIC = f"ndcg@{CUTOFF}"
SEARCH_BATCH = 64  # queries per search_many call


@dataclass(frozen=True)
class JudgedScore:
    queries: int  # queries with at least one judgment
    judgments: int
    ndcg_at_10: float | None  # mean over the judged queries with something relevant; None if there is none

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "judgments": self.judgments, "ndcg_at_10": self.ndcg_at_10}


class JudgedScorer:
    """Scores judgments against one engine's rankings, searching each query once per index version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._rankings: dict[str, dict[str, float]] = {}  # query -> doc id -> rank score (higher first)

    def score(self, retriever: Retriever, qrels: dict[str, dict[str, int]],
              queries: list[str] | None = None) -> float | None:
        """Mean nDCG@10 over ``queries`` (default: all judged) that have a relevant judgment, else None."""
        wanted = list(qrels) if queries is None else [q for q in queries if q in qrels]
        judged = {q: qrels[q] for q in wanted if any(grade > 0 for grade in qrels[q].values())}
        if not judged:
            return None
        run = self.rankings(retriever, list(judged))
        return evaluate(run, judged, (METRIC,)).scores[METRIC]

    def summary(self, retriever: Retriever, qrels: dict[str, dict[str, int]]) -> JudgedScore:
        """Counts, and the mean nDCG@10."""
        score = self.score(retriever, qrels)
        return JudgedScore(len(qrels), sum(len(docs) for docs in qrels.values()), score)

    def rankings(self, retriever: Retriever, queries: list[str]) -> dict[str, dict[str, float]]:
        """The engine's top 10 of each query, as rank scores (so that trec_eval ranks them exactly as it did)."""
        with self._lock:
            generation = retriever.manifest.generation
            if generation != self._generation:
                self._generation, self._rankings = generation, {}
            missing = [q for q in dict.fromkeys(queries) if q not in self._rankings]
            for start in range(0, len(missing), SEARCH_BATCH):
                batch = missing[start:start + SEARCH_BATCH]
                for query, hits in zip(batch, retriever.search_many(batch, k=CUTOFF)):
                    self._rankings[query] = {hit.doc_id: float(CUTOFF - rank) for rank, hit in enumerate(hits)}
            return {q: self._rankings[q] for q in queries}
