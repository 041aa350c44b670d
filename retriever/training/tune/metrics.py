"""nDCG@10 of rankings against graded judgments, per query (unjudged documents count as not relevant).

Scored by trec_eval through ``retriever.eval.metrics.per_query``, the project's one place for metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from retriever.eval.metrics import per_query

CUTOFF = 10


def ndcg_per_query(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, dict[str, int]]) -> dict[str, float]:
    """nDCG@10 of each query's ranking (document ids, best first); 0.0 when nothing is judged relevant."""
    run = {q: {doc: float(len(ranking) - rank) for rank, doc in enumerate(ranking)}
           for q, ranking in rankings.items() if ranking}
    return per_query(run, {q: dict(qrels[q]) for q in rankings}, f"ndcg@{CUTOFF}")


def ndcg_at_10(ranking: Sequence[str], judged: dict[str, int]) -> float:
    """nDCG@10 of one ranking."""
    return ndcg_per_query({"q": ranking}, {"q": judged})["q"]
