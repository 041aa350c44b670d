"""Scoring runs against relevance judgements with pytrec_eval (trec_eval itself, as a C extension).

Metrics are never computed by hand here: trec_eval implements nDCG with graded relevance (the grade as gain),
reciprocal rank, MAP and recall, and is the reference the IR literature reports with. It replaced ranx, whose
numba kernels are compiled on first use: 70-100 s of CPU on a fresh machine, which made a server's first
judgments summary wait past clients' time limits and cost the test suite minutes on every fresh CI machine.
Queries without any positive judgement are skipped and counted, since no metric is defined for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from retriever.errors import RetrieverError

Run = dict[str, dict[str, float]]  # query id -> doc id -> score
DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
# our name -> trec_eval's measure (its cut-off appended after a dot); mrr@k is reciprocal rank over the top k
TREC_MEASURES = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut", "precision": "P", "mrr": "recip_rank"}
METRIC_NAME = re.compile(r"^(ndcg|recall|map|precision|mrr)@([1-9][0-9]*)$")


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
    judged = judged_queries(qrels)
    skipped = len(qrels) - len(judged)
    if not judged:
        return Evaluation({m: 0.0 for m in metrics}, 0, skipped)
    per_metric = {metric: per_query(run, judged, metric) for metric in metrics}
    return Evaluation({m: sum(scores.values()) / len(judged) for m, scores in per_metric.items()}, len(judged),
                      skipped)


def per_query(run: Run, qrels: dict[str, dict[str, int]], metric: str = "ndcg@10") -> dict[str, float]:
    """``metric`` of each query of ``qrels`` (cross-validation needs each query's score, not only the mean);
    a query without a positive judgement, or missing from the run, scores 0."""
    import pytrec_eval

    name, cutoff = parse_metric(metric)
    judged = judged_queries(qrels)
    scores = {q: 0.0 for q in qrels}
    ranked = {q: ranking(run[q], cutoff if name == "mrr" else None) for q in judged if run.get(q)}
    if ranked:
        positive = {q: {d: int(r) for d, r in judged[q].items() if r > 0} for q in ranked}
        measure = TREC_MEASURES[name] if name == "mrr" else f"{TREC_MEASURES[name]}.{cutoff}"
        results = pytrec_eval.RelevanceEvaluator(positive, {measure}).evaluate(ranked)
        key = measure.replace(".", "_")
        scores.update({q: float(values[key]) for q, values in results.items()})
    return scores


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; an unknown name is a one-line error naming the known ones."""
    match = METRIC_NAME.match(metric)
    if match is None:
        raise RetrieverError(f"unknown metric {metric!r}: use one of {', '.join(f'{n}@K' for n in TREC_MEASURES)}")
    return match[1], int(match[2])


def ranking(scores: dict[str, float], depth: int | None = None) -> dict[str, float]:
    """A query's scores as trec_eval reads them (floats), cut to its ``depth`` best in trec_eval's own order
    (score descending, ties by document id descending) when a depth is given; trec_eval sorts the rest itself."""
    if depth is None:
        return {d: float(s) for d, s in scores.items()}
    ordered = sorted(((d, float(s)) for d, s in scores.items()), key=lambda item: (item[1], item[0]), reverse=True)
    return dict(ordered[:depth])


def write_trec_run(run: Run, path: Path, system: str) -> None:
    """A TREC run file (``qid Q0 docid rank score system``) that trec_eval can re-score."""
    with path.open("w") as handle:
        for qid in sorted(run):
            ranked = sorted(run[qid].items(), key=lambda item: -item[1])
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {system}\n")
