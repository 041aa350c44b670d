"""nDCG@10 of rankings against graded judgments, per query.

Scored by trec_eval through ``retriever.eval.metrics.per_query``, the project's one place for metrics.
Two ways to treat an unjudged document: as not relevant (the default, trec_eval's), or dropped from the
ranking first (``condensed``, Sakai 2007). Tune's judgments cover only the current engine's top 10, so a
changed engine that surfaces unjudged documents is scored as if each were irrelevant, which favours the
current engine; the condensed list scores every engine on the same judged documents instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from retriever.eval.metrics import per_query

CUTOFF = 10


def condense(ranking: Sequence[str], judged: Mapping[str, int]) -> list[str]:
    """``ranking`` without the documents that have no judgment (the condensed list), order kept."""
    return [doc for doc in ranking if doc in judged]


def ndcg_per_query(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, dict[str, int]],
                   condensed: bool = False) -> dict[str, float]:
    """nDCG@10 of each query's ranking (document ids, best first); 0.0 when nothing is judged relevant.

    ``condensed``: unjudged documents are removed from each ranking before it is cut at 10.
    """
    if condensed:
        rankings = {q: condense(ranking, qrels[q]) for q, ranking in rankings.items()}
    run = {q: {doc: float(len(ranking) - rank) for rank, doc in enumerate(ranking)}
           for q, ranking in rankings.items() if ranking}
    return per_query(run, {q: dict(qrels[q]) for q in rankings}, f"ndcg@{CUTOFF}")


def ndcg_at_10(ranking: Sequence[str], judged: dict[str, int], condensed: bool = False) -> float:
    """nDCG@10 of one ranking."""
    return ndcg_per_query({"q": ranking}, {"q": judged}, condensed)["q"]
