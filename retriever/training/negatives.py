"""Hard negatives: documents that rank high for a query but are not known to be relevant.

In-batch negatives are mostly easy (random documents); a document that BM25 or the current
dense model ranks near the top teaches the encoder much more. The very top ranks are skipped,
because in sparsely judged collections they are often relevant documents nobody labelled
(false negatives, Qu et al. 2021, RocketQA); known positives are never taken. Negatives are
drawn from ranks ``[skip, depth)`` with a random generator seeded by ``seed`` and the query
id, so the same data and seed always give the same negatives, in any order of queries.

With a ``guard`` ratio, a candidate is also dropped when the ranker scores it at ``guard`` times
the query's positive or higher (both BM25 and cosine scores are positive near the top): a document
the ranker likes about as much as the positive is as likely unlabelled-relevant as not. When the
ranker does not find the positive within ``depth`` at all, none of its candidates is taken.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from retriever.eval.beir import Qrels

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


Scored = list[tuple[str, float]]  # (document id, score), best first


class Ranker(Protocol):
    def rank(self, texts: Sequence[str], depth: int) -> list[list[str]]:
        """Document ids, best first, ``depth`` of them (or all) for each query text."""

    def rank_scored(self, texts: Sequence[str], depth: int) -> list[Scored]:
        """The same rankings with the ranker's scores."""


class Bm25Ranker:
    """BM25 (``retriever.index.lexical``: bm25s, English stemming and stopwords) over a corpus given as id -> text."""

    def __init__(self, corpus: dict[str, str]) -> None:
        from retriever.index.lexical import LexicalIndex

        self.index = LexicalIndex().index(list(corpus), list(corpus.values()))

    def rank(self, texts: Sequence[str], depth: int) -> list[list[str]]:
        return [[doc_id for doc_id, _ in hits] for hits in self.rank_scored(texts, depth)]

    def rank_scored(self, texts: Sequence[str], depth: int) -> list[Scored]:
        if not texts:
            return []
        return self.index.retrieve(list(texts), k=depth, keep_zero=True)


class DenseRanker:
    """Exact search with a sentence-transformers model (query tower for queries, document tower for documents)."""

    def __init__(self, model: SentenceTransformer, corpus: dict[str, str], batch_size: int = 32,
                 progress: bool = False) -> None:
        self.model, self.batch_size = model, batch_size
        self.ids = list(corpus)
        self.vectors = model.encode_document(list(corpus.values()), batch_size=batch_size, convert_to_numpy=True,
                                             normalize_embeddings=True, show_progress_bar=progress)

    def rank(self, texts: Sequence[str], depth: int) -> list[list[str]]:
        return [[doc_id for doc_id, _ in hits] for hits in self.rank_scored(texts, depth)]

    def rank_scored(self, texts: Sequence[str], depth: int) -> list[Scored]:
        if not texts:
            return []
        queries = self.model.encode_query(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                          normalize_embeddings=True)
        scores = queries @ self.vectors.T
        k = min(depth, len(self.ids))
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[(self.ids[int(i)], float(row_scores[i])) for i in row] for row, row_scores in zip(top, scores)]


def mine_negatives(
    queries: dict[str, str],
    qrels: Qrels,
    rankers: Sequence[Ranker],
    per_query: int,
    skip: int,
    depth: int,
    seed: int,
    guard: float | None = None,
) -> dict[str, list[str]]:
    """For each query in ``qrels``: its known negatives (relevance 0), then mined ones up to ``per_query``.

    Mined negatives come from ranks ``skip`` to ``depth - 1`` (0-based) of each ranker and are never
    a document judged for the query (positive or negative), nor, with ``guard``, one scored at
    ``guard`` times the query's best positive or above.
    """
    qids = sorted(qrels)
    known = {q: sorted(d for d, r in qrels[q].items() if r <= 0) for q in qids}
    needy = [q for q in qids if len(known[q]) < per_query]
    windows: dict[str, list[str]] = {q: [] for q in needy}
    for ranker in rankers:
        texts = [queries[q] for q in needy]
        if guard is None:
            for qid, ranking in zip(needy, ranker.rank(texts, depth)):
                windows[qid] += ranking[skip:depth]
            continue
        for qid, scored in zip(needy, ranker.rank_scored(texts, depth)):
            windows[qid] += guarded_window(scored, qrels[qid], skip, depth, guard)
    out = {}
    for qid in qids:
        judged = set(qrels[qid])
        candidates = list(dict.fromkeys(d for d in windows.get(qid, []) if d not in judged))
        wanted = max(0, per_query - len(known[qid]))
        mined = random.Random(f"{seed}:{qid}").sample(candidates, min(wanted, len(candidates)))
        out[qid] = known[qid] + mined
    return out



def guarded_window(scored: Scored, judged: dict[str, int], skip: int, depth: int, guard: float) -> list[str]:
    """Ranks ``skip:depth`` without candidates scored at ``guard`` times the best positive or above."""
    positives = [score for doc_id, score in scored if judged.get(doc_id, 0) > 0]
    if not positives:  # the ranker cannot find the positive: its top documents are no safe negatives
        return []
    ceiling = guard * max(positives)
    return [doc_id for doc_id, score in scored[skip:depth] if score < ceiling]
