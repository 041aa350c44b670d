"""Training examples for each loss, as a ``datasets.Dataset`` whose first column is the query.

* infonce: ``query, positive[, negative_1 .. negative_n]``, one row per positive pair; the
  other rows' documents in a batch are the in-batch negatives;
* contrastive: ``query, document, label`` with label 1 for each positive and 0 for each negative;
* triplet: ``query, positive, negative``, one row per (positive, negative).

Column order matters (the loss reads the first column as the query), and the trainer sends the
``query`` column through the query tower and every other text column through the document tower.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from retriever.eval.beir import Qrels

if TYPE_CHECKING:
    from datasets import Dataset

QUERY_COLUMN = "query"
LABEL_COLUMN = "label"


def build_examples(
    loss: str,
    queries: dict[str, str],
    corpus: dict[str, str],
    qrels: Qrels,
    negatives: dict[str, list[str]],
    per_query: int,
    seed: int,
    also_judged: Qrels | None = None,
) -> Dataset:
    """Rows for ``loss`` from positive pairs in ``qrels`` and each query's ``negatives``.

    ``also_judged`` names more documents per query that random padding must not take as negatives
    (the document a part-document positive was cut from).
    """
    from datasets import Dataset

    rng = random.Random(seed)
    doc_ids = sorted(corpus)
    rows: list[dict] = []
    if loss == "infonce":  # no negatives at all: in-batch negatives only, as (query, positive) pairs
        width = per_query if any(negatives.values()) else 0
    else:  # a triplet or a contrastive query needs at least one negative
        width = max(per_query, 1)
    for qid in sorted(qrels):
        positives = sorted(d for d, r in qrels[qid].items() if r > 0)
        judged = {**qrels[qid], **(also_judged or {}).get(qid, {})}
        pool = _padded(negatives.get(qid, []), width, judged, doc_ids, rng)
        query = queries[qid]
        if loss == "contrastive":
            rows += [{QUERY_COLUMN: query, "document": corpus[d], LABEL_COLUMN: 1} for d in positives]
            rows += [{QUERY_COLUMN: query, "document": corpus[d], LABEL_COLUMN: 0} for d in pool]
            continue
        for i, pos in enumerate(positives):
            chosen = _rotate(pool, i * width, width)  # spreads extra known negatives over the positives
            if loss == "triplet":
                rows += [{QUERY_COLUMN: query, "positive": corpus[pos], "negative": corpus[n]} for n in chosen]
            else:
                row = {QUERY_COLUMN: query, "positive": corpus[pos]}
                row.update({f"negative_{j + 1}": corpus[n] for j, n in enumerate(chosen)})
                rows.append(row)
    return Dataset.from_list(rows)


def _padded(pool: list[str], size: int, judged: dict[str, int], doc_ids: list[str], rng: random.Random) -> list[str]:
    """``pool``, topped up with random unjudged documents when it has fewer than ``size``."""
    if len(pool) >= size:
        return list(pool)
    out = list(pool)
    taken = set(out) | set(judged)
    free = len(doc_ids) - len(taken)
    while len(out) < size and free > 0:
        doc = rng.choice(doc_ids)
        if doc not in taken:
            out.append(doc)
            taken.add(doc)
            free -= 1
    return out


def _rotate(pool: list[str], start: int, count: int) -> list[str]:
    if not pool or count == 0:
        return []
    return [pool[(start + j) % len(pool)] for j in range(count)]


def column_tasks(columns: list[str]) -> dict[str, str]:
    """Router task per text column: the query column goes to the query tower, the rest to documents."""
    return {c: ("query" if c == QUERY_COLUMN else "document") for c in columns if c != LABEL_COLUMN}
