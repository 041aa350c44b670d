"""``retriever train --head mlp``: fit the learned nonlinear metric (``retriever.search.rerank``).

The encoder stays frozen: documents and queries are encoded once (documents through the
embedding cache), each training query's hard negatives are its top dense results that are
not judged, and the head learns to put the positive first among them. The head is kept only
if it improves dev nDCG@10 when reranking the dense top candidates; otherwise the run says so
and the output holds no head (not even one left there by an earlier run).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retriever.encoding.cache import DEFAULT_CACHE_DIR, CachedEncoder, EmbeddingCache
from retriever.encoding.encoder import Encoder
from retriever.eval.metrics import evaluate
from retriever.search.rerank import HEAD_DIR, HeadExamples, RerankHead, train_head
from retriever.training.data import load_training_data

RERANK_DEPTH = 30  # candidates the head reorders, for training negatives and dev scoring


@dataclass
class HeadResult:
    output: Path
    kept: bool
    dev_before: float  # dev nDCG@10 of the dense ranking
    dev_after: float  # ... after reranking its top RERANK_DEPTH with the head
    seconds: float
    losses: list[float]


def _positives(qrels: dict[str, dict[str, int]], index: dict[str, int]) -> dict[str, list[int]]:
    return {q: [index[d] for d, r in docs.items() if r > 0 and d in index] for q, docs in qrels.items()}


def _dev_ndcg(head: RerankHead | None, qvecs: np.ndarray, dvecs: np.ndarray, qids: list[str], doc_ids: list[str],
              qrels: dict[str, dict[str, int]]) -> float:
    run = {}
    for qid, vector in zip(qids, qvecs):
        scores = dvecs @ vector
        top = np.argsort(-scores)[:RERANK_DEPTH]
        values = scores[top] if head is None else head.score(vector, dvecs[top])
        run[qid] = {doc_ids[i]: float(s) for i, s in zip(top, values)}
    return evaluate(run, qrels).scores["ndcg@10"]


def train_mlp_head(data: str | Path, model: str, output: str | Path, negatives: int = 7, epochs: int = 20,
                   seed: int = 42, cache: Path = DEFAULT_CACHE_DIR, progress: bool = True) -> HeadResult:
    """Train a head for ``model`` on ``data`` and write ``output``: the model plus its head."""
    started = time.perf_counter()
    training = load_training_data(data, seed=seed)
    encoder = CachedEncoder.wrap(Encoder(model), EmbeddingCache(cache))
    doc_ids = list(training.corpus)
    index = {d: i for i, d in enumerate(doc_ids)}
    dvecs = encoder.encode_documents(list(training.corpus.values()), progress=progress)
    train_pos = {q: p for q, p in _positives(training.train, index).items() if p and q in training.queries}
    train_qids = list(train_pos)
    qvecs = encoder.encode_queries([training.queries[q] for q in train_qids])
    rows_q, rows_pos, rows_neg = [], [], []
    for row, (qid, vector) in enumerate(zip(train_qids, qvecs)):
        judged = {index[d] for d in training.train[qid] if d in index}
        ranked = np.argsort(-(dvecs @ vector))[: RERANK_DEPTH + len(judged)]
        hard = [i for i in ranked if i not in judged][:negatives]
        for positive in train_pos[qid]:
            rows_q.append(row)
            rows_pos.append(positive)
            rows_neg.append(hard)
    examples = HeadExamples(qvecs[rows_q], dvecs, np.asarray(rows_pos), np.asarray(rows_neg))
    head, losses = train_head(examples, epochs=epochs, seed=seed)
    dev_qids = [q for q, p in _positives(training.dev, index).items() if p and q in training.queries]
    dev_before = dev_after = 0.0
    if dev_qids:
        dev_vecs = encoder.encode_queries([training.queries[q] for q in dev_qids])
        dev_qrels = {q: training.dev[q] for q in dev_qids}
        dev_before = _dev_ndcg(None, dev_vecs, dvecs, dev_qids, doc_ids, dev_qrels)
        dev_after = _dev_ndcg(head, dev_vecs, dvecs, dev_qids, doc_ids, dev_qrels)
    kept = not dev_qids or dev_after > dev_before
    output = Path(output)
    if output.resolve() != encoder.path.resolve():
        shutil.copytree(encoder.path, output, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint", HEAD_DIR))
    if kept:
        head.save(output)
    else:  # a head from an earlier run (or the base model's) would otherwise be used by `search --rerank`
        shutil.rmtree(output / HEAD_DIR, ignore_errors=True)
    return HeadResult(output, kept, dev_before, dev_after, time.perf_counter() - started, losses)
