"""Scoring runs against relevance judgements with ranx (a well-kept IR metrics library).

Metrics are never computed by hand here: ranx implements nDCG with graded relevance, MRR,
MAP and recall the way trec_eval does. Queries without any positive judgement are skipped
and counted, since no metric is defined for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

Run = dict[str, dict[str, float]]  # query id -> doc id -> score
DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")


@dataclass
class Evaluation:
    scores: dict[str, float]
    queries_scored: int
    queries_skipped: int  # no positive judgement: cannot be scored


def judged_queries(qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Qrels of the queries that have at least one relevant document."""
    return {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}


def evaluate(run: Run, qrels: dict[str, dict[str, int]], metrics: tuple[str, ...] = DEFAULT_METRICS) -> Evaluation:
    """Mean of each metric over judged queries; a judged query missing from the run scores 0."""
    from ranx import Qrels
    from ranx import Run as RanxRun
    from ranx import evaluate as ranx_evaluate

    judged = judged_queries(qrels)
    skipped = len(qrels) - len(judged)
    if not judged:
        return Evaluation({m: 0.0 for m in metrics}, 0, skipped)
    full_run = {q: (run.get(q) or {"__no_result__": 0.0}) for q in judged}
    positive = {q: {d: r for d, r in docs.items() if r > 0} for q, docs in judged.items()}
    scores = ranx_evaluate(Qrels(positive), RanxRun(full_run), list(metrics), make_comparable=True)
    if isinstance(scores, float):
        scores = {metrics[0]: scores}
    return Evaluation({m: float(scores[m]) for m in metrics}, len(judged), skipped)


def per_query(run: Run, qrels: dict[str, dict[str, int]], metric: str = "ndcg@10") -> dict[str, float]:
    """``metric`` of each query of ``qrels`` (cross-validation needs each query's score, not only the mean);
    a query without a positive judgement, or missing from the run, scores 0."""
    from ranx import Qrels
    from ranx import Run as RanxRun
    from ranx import evaluate as ranx_evaluate

    judged = judged_queries(qrels)
    scores = {q: 0.0 for q in qrels}
    if judged:
        full_run = RanxRun({q: (run.get(q) or {"__no_result__": 0.0}) for q in judged})
        positive = {q: {d: r for d, r in docs.items() if r > 0} for q, docs in judged.items()}
        ranx_evaluate(Qrels(positive), full_run, metric, make_comparable=True)
        scores.update({q: float(v) for q, v in full_run.scores[metric].items()})
    return scores


def write_trec_run(run: Run, path: Path, system: str) -> None:
    """A TREC run file (``qid Q0 docid rank score system``) that trec_eval can re-score."""
    with path.open("w") as handle:
        for qid in sorted(run):
            ranked = sorted(run[qid].items(), key=lambda item: -item[1])
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {system}\n")
