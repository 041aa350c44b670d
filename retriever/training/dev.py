"""The dev evaluation that decides which checkpoint is kept: nDCG@10 on held-out queries.

Encoding a whole corpus after every epoch is too slow on a CPU, so the dev queries are searched
in a sub-corpus: every dev positive, the BM25 top ``depth`` of every dev query (the documents
that make retrieval hard) and a seeded sample of other documents, ``max_docs`` in all. Scores
are therefore higher than on the full corpus but move the same way. Search is exact: normalised
dot products, as in the index; metrics come from ``retriever.eval.metrics`` (trec_eval).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retriever.eval.beir import Qrels
from retriever.eval.metrics import Run, evaluate

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retriever.training.negatives import Ranker

DEV_METRIC = "ndcg@10"
DEV_METRICS = ("ndcg@10", "recall@100", "mrr@10")
RUN_DEPTH = 100


@dataclass
class DevSet:
    queries: dict[str, str]
    qrels: Qrels
    docs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "qrels": self.qrels, "docs": self.docs}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DevSet:
        return cls(values["queries"], values["qrels"], values["docs"])


def build_dev_set(
    queries: dict[str, str],
    corpus: dict[str, str],
    qrels: Qrels,
    ranker: Ranker | None,
    max_docs: int,
    depth: int,
    seed: int,
) -> DevSet | None:
    """The dev queries with at least one positive, and their sub-corpus; None if there are none."""
    judged = {q: d for q, d in qrels.items() if any(r > 0 for r in d.values())}
    if not judged:
        return None
    chosen = list(dict.fromkeys(d for q in sorted(judged) for d, r in judged[q].items() if r > 0))
    positives = len(chosen)
    if ranker is not None:  # rank by rank over all dev queries, so that a cut keeps every query's top
        qids = sorted(judged)
        rankings = ranker.rank([queries[q] for q in qids], depth)
        chosen += [ranking[rank] for rank in range(depth) for ranking in rankings if rank < len(ranking)]
    chosen = list(dict.fromkeys(chosen))[: max(max_docs, positives)]  # positives come first
    rest = sorted(set(corpus) - set(chosen))
    chosen += random.Random(seed).sample(rest, min(len(rest), max(0, max_docs - len(chosen))))
    return DevSet({q: queries[q] for q in judged}, judged, {d: corpus[d] for d in chosen})


def score_dev(model: SentenceTransformer, dev: DevSet, batch_size: int = 32) -> dict[str, float]:
    """Dev metrics of ``model`` (query tower for queries, document tower for documents)."""
    return score_run(dev_run(model, dev, batch_size), dev)


def score_run(run: Run, dev: DevSet) -> dict[str, float]:
    """Dev metrics of a dev run."""
    return evaluate(run, dev.qrels, DEV_METRICS).scores


def dev_run(model: SentenceTransformer, dev: DevSet, batch_size: int = 32) -> Run:
    """The top ``RUN_DEPTH`` dev documents of each dev query by cosine, with their scores."""
    import torch

    was_training = model.training
    qids, dids = list(dev.queries), list(dev.docs)
    with torch.no_grad():
        q = model.encode_query([dev.queries[i] for i in qids], batch_size=batch_size, convert_to_tensor=True,
                               normalize_embeddings=True)
        d = model.encode_document([dev.docs[i] for i in dids], batch_size=batch_size, convert_to_tensor=True,
                                  normalize_embeddings=True)
        scores, rows = (q @ d.T).topk(min(RUN_DEPTH, len(dids)), dim=1)
    model.train(was_training)
    return {
        qid: {dids[int(j)]: float(s) for s, j in zip(score_row, row)}
        for qid, score_row, row in zip(qids, scores.tolist(), rows.tolist())
    }
