"""Hard negatives: documents that rank high for a query but are not known to be relevant.

In-batch negatives are mostly easy (random documents); a document that BM25 or the current
dense model ranks near the top teaches the encoder much more. The very top ranks are skipped,
because in sparsely judged collections they are often relevant documents nobody labelled
(false negatives, Qu et al. 2021, RocketQA); known positives are never taken. Negatives are
drawn from ranks ``[skip, depth)`` with a random generator seeded by ``seed`` and the query
id, so the same data and seed always give the same negatives, in any order of queries.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from retriever.eval.beir import Qrels

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Ranker(Protocol):
    def rank(self, texts: Sequence[str], depth: int) -> list[list[str]]:
        """Document ids, best first, ``depth`` of them (or all) for each query text."""


class Bm25Ranker:
    """BM25 (``retriever.index.lexical``: bm25s, English stemming and stopwords) over a corpus given as id -> text."""

    def __init__(self, corpus: dict[str, str]) -> None:
        from retriever.index.lexical import LexicalIndex

        self.index = LexicalIndex().index(list(corpus), list(corpus.values()))

    def rank(self, texts: Sequence[str], depth: int) -> list[list[str]]:
        if not texts:
            return []
        return [[doc_id for doc_id, _ in hits] for hits in self.index.retrieve(list(texts), k=depth, keep_zero=True)]


class DenseRanker:
    """Exact search with a sentence-transformers model (query tower for queries, document tower for documents)."""

    def __init__(self, model: SentenceTransformer, corpus: dict[str, str], batch_size: int = 32,
                 progress: bool = False) -> None:
        self.model, self.batch_size = model, batch_size
        self.ids = list(corpus)
        self.vectors = model.encode_document(list(corpus.values()), batch_size=batch_size, convert_to_numpy=True,
                                             normalize_embeddings=True, show_progress_bar=progress)

    def rank(self, texts: Sequence[str], depth: int) -> list[list[str]]:
        if not texts:
            return []
        queries = self.model.encode_query(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                          normalize_embeddings=True)
        scores = queries @ self.vectors.T
        k = min(depth, len(self.ids))
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[self.ids[int(i)] for i in row] for row in top]


def mine_negatives(
    queries: dict[str, str],
    qrels: Qrels,
    rankers: Sequence[Ranker],
    per_query: int,
    skip: int,
    depth: int,
    seed: int,
) -> dict[str, list[str]]:
    """For each query in ``qrels``: its known negatives (relevance 0), then mined ones up to ``per_query``.

    Mined negatives come from ranks ``skip`` to ``depth - 1`` (0-based) of each ranker and are never
    a document judged for the query (positive or negative).
    """
    qids = sorted(qrels)
    known = {q: sorted(d for d, r in qrels[q].items() if r <= 0) for q in qids}
    needy = [q for q in qids if len(known[q]) < per_query]
    windows: dict[str, list[str]] = {q: [] for q in needy}
    for ranker in rankers:
        for qid, ranking in zip(needy, ranker.rank([queries[q] for q in needy], depth)):
            windows[qid] += ranking[skip:depth]
    out = {}
    for qid in qids:
        judged = set(qrels[qid])
        candidates = list(dict.fromkeys(d for d in windows.get(qid, []) if d not in judged))
        wanted = max(0, per_query - len(known[qid]))
        mined = random.Random(f"{seed}:{qid}").sample(candidates, min(wanted, len(candidates)))
        out[qid] = known[qid] + mined
    return out

