"""From documents to ``TrainingData``: pair pools per source, held-out documents, the sample to train on.

Held-out documents (``DEV_SHARE`` of the corpus, at most ``DEV_MAX_QUERIES``) give one pseudo-pair
each and never a training positive; the dev set searches them *as cut* (an ICT document without
its query sentence), so a dev query cannot be answered by copying. Training takes at most one pair
per document per round, the sources taking turns, so that two pairs of one document rarely meet in
a batch, where each would be the other's false negative.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from retriever.errors import RetrieverError
from retriever.ingest.chunking import encoding_text
from retriever.ingest.documents import Document
from retriever.training.adapt.pairs import CorpusContext, PseudoPair, sources
from retriever.training.adapt.pairs.keyterms import terms
from retriever.training.data import TrainingData

DEV_SHARE = 0.1
DEV_MAX_QUERIES = 200
PART_SEPARATOR = "#"  # part-document positive ids: "<doc id>#<source>"


def pair_pools(docs: Sequence[Document], names: Sequence[str], seed: int) -> dict[str, dict[str, list[PseudoPair]]]:
    """For each source, each document's candidate pairs (documents with none are left out)."""
    table = sources()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise RetrieverError(f"unknown pair source(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    context = CorpusContext(corpus_frequencies(docs), len(docs)) if "keyterms" in names else CorpusContext({}, 0)
    pools: dict[str, dict[str, list[PseudoPair]]] = {}
    for name in names:
        rng = random.Random(f"{seed}:{name}")
        pools[name] = {d.doc_id: found for d in docs if (found := table[name](d, rng, context))}
    return pools


def corpus_frequencies(docs: Sequence[Document]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for doc in docs:
        counts.update(set(terms(f"{doc.title} {doc.text}")))
    return dict(counts)


def build_adapt_data(
    docs: Sequence[Document],
    pools: dict[str, dict[str, list[PseudoPair]]],
    train_pairs: int,
    seed: int,
    source: Path,
) -> TrainingData:
    """Training and dev pairs: up to ``train_pairs`` for training, one per held-out document for dev."""
    rng = random.Random(seed)
    usable = sorted({d for pool in pools.values() for d in pool})
    if len(usable) < 2:
        raise RetrieverError(
            f"{source}: too little text to adapt to ({len(usable)} document(s) yield pairs; "
            f"sources tried: {', '.join(pools)})"
        )
    dev_size = min(DEV_MAX_QUERIES, max(1, round(DEV_SHARE * len(usable))))
    held_out = set(rng.sample(usable, dev_size))
    corpus = {d.doc_id: encoding_text(d.title, d.text) for d in docs}
    queries: dict[str, str] = {}
    data = TrainingData(source, "corpus", queries, corpus, {})
    names = list(pools)
    for i, doc_id in enumerate(sorted(held_out)):  # dev: the sources take turns
        name = _turn(names, i, pools, doc_id)
        pair = rng.choice(pools[name][doc_id])
        qid = f"dev:{len(data.dev)}"
        queries[qid] = pair.query
        data.dev[qid] = {doc_id: 1}
        corpus[doc_id] = pair.positive  # searched as cut: the answer is not in it verbatim
    chosen = sample_pairs(pools, held_out, train_pairs, rng)
    for pair in chosen:
        qid = f"q{len(queries)}"
        part = f"{pair.doc_id}{PART_SEPARATOR}{pair.source}:{qid}"
        queries[qid] = pair.query
        data.train[qid] = {part: 1}
        data.part_texts[part] = pair.positive
        data.part_of[part] = pair.doc_id
    if not data.train:
        raise RetrieverError(f"{source}: no training pairs could be made outside the held-out documents")
    data.dev_source = f"{len(data.dev)} held-out documents, one pseudo-query each"
    data.notes = {
        "pair_sources": names,
        "train_pairs_by_source": dict(Counter(p.source for p in chosen)),
        "dev_pairs": len(data.dev),
        "documents_with_pairs": len(usable),
    }
    return data


def sample_pairs(
    pools: dict[str, dict[str, list[PseudoPair]]], held_out: set[str], count: int, rng: random.Random
) -> list[PseudoPair]:
    """``count`` pairs: rounds of at most one pair per document, the sources taking turns over documents."""
    names = list(pools)
    remaining = {n: {d: list(ps) for d, ps in pool.items() if d not in held_out} for n, pool in pools.items()}
    chosen: list[PseudoPair] = []
    while len(chosen) < count and any(any(p for p in pool.values()) for pool in remaining.values()):
        docs = sorted({d for pool in remaining.values() for d, ps in pool.items() if ps})
        rng.shuffle(docs)
        for i, doc_id in enumerate(docs):
            if len(chosen) >= count:
                break
            name = _turn(names, i, remaining, doc_id)
            if name is None:
                continue
            options = remaining[name][doc_id]
            chosen.append(options.pop(rng.randrange(len(options))))
    return chosen


def _turn(names: list[str], i: int, pools: dict[str, dict[str, list[PseudoPair]]], doc_id: str) -> str | None:
    """The ``i``-th source in turn if it has a pair left for the document, else the next one that has."""
    order = names[i % len(names):] + names[: i % len(names)]
    return next((n for n in order if pools[n].get(doc_id)), None)
