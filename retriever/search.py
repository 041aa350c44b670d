"""Turning a query into ranked hits: dense, lexical or hybrid candidates, filters, reranking.

``Retriever.search`` delegates here. Candidates are passages; unless raw passages are asked
for, each document is represented by its best passage. Hybrid search fuses the document
rankings of both sides (``retriever.fusion``) over candidate lists of ``HYBRID_DEPTH``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from retriever.errors import RetrieverError
from retriever.fusion import convex_combination, reciprocal_rank_fusion
from retriever.results import Hit, best_passage_per_document
from retriever.store import MetadataStore

MODES = ("dense", "lexical", "hybrid")
FUSIONS = ("rrf", "convex")
PASSAGES_PER_DOCUMENT = 4  # first search depth per requested document; doubled as needed
HYBRID_DEPTH = 100  # candidates per side, so a document found by one side only is still fairly placed


@dataclass(frozen=True)
class SearchOptions:
    """How to search; the defaults are the settings that won on the SciFact benchmark."""

    k: int = 10
    passages: bool = False
    mode: str = "hybrid"
    fusion: str = "convex"
    alpha: float = 0.5  # convex fusion: weight of the dense side (best on SciFact train queries)
    allowed_ids: np.ndarray | None = None  # from a metadata filter
    rerank: int = 0  # rerank this many top candidates with the model's learned metric head

    def validate(self) -> None:
        if self.k < 1:
            raise RetrieverError("k must be at least 1")
        if self.mode not in MODES:
            raise RetrieverError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.fusion not in FUSIONS:
            raise RetrieverError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise RetrieverError("alpha must be between 0 and 1")
        if self.rerank < 0:
            raise RetrieverError("rerank must be 0 or more")


def _hits(store: MetadataStore, pairs: list[tuple[int, float]]) -> list[Hit]:
    stored = store.passages(i for i, _ in pairs)
    return [Hit.from_passage(stored[i], s) for i, s in pairs if i in stored]


def dense_hits(ann: Any, store: MetadataStore, vector: np.ndarray, depth: int, passages: bool,
               allowed: np.ndarray | None) -> list[Hit]:
    """At least ``depth`` documents (or passages) by vector similarity, deepening the search as needed."""
    total = len(ann) if allowed is None else len(allowed)
    if total == 0:
        return []
    probe = depth if passages else depth * PASSAGES_PER_DOCUMENT
    while True:
        scores, ids = ann.search(vector[None, :], min(probe, total), allowed_ids=allowed)
        hits = _hits(store, [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0])
        if not passages:
            hits = best_passage_per_document(hits)
        if len(hits) >= depth or probe >= total:
            return hits[:depth]
        probe *= 2


def lexical_hits(lexical: Any, store: MetadataStore, query: str, depth: int, passages: bool,
                 allowed: np.ndarray | None) -> list[Hit]:
    probe = depth if passages else depth * PASSAGES_PER_DOCUMENT
    hits = _hits(store, [(int(i), s) for i, s in lexical.retrieve([query], k=probe, allowed_ids=allowed)[0]])
    return hits if passages else best_passage_per_document(hits)[:depth]


def fuse(dense: list[Hit], lexical: list[Hit], options: SearchOptions) -> list[Hit]:
    """One ranking from both; a document keeps its best dense passage, else its best lexical one."""
    key = (lambda h: h.passage_id) if options.passages else (lambda h: h.doc_id)
    by_key = {key(h): h for h in lexical}
    by_key.update({key(h): h for h in dense})
    dense_ranked = [(key(h), h.score) for h in dense]
    lexical_ranked = [(key(h), h.score) for h in lexical]
    if options.fusion == "rrf":
        fused = reciprocal_rank_fusion([dense_ranked, lexical_ranked])
    else:
        fused = convex_combination(dense_ranked, lexical_ranked, options.alpha)
    out = []
    for item, score in fused:
        hit = by_key[item]
        out.append(Hit(**{**hit.to_dict(), "score": float(score)}))
    return out


def rerank(hits: list[Hit], head: Any, ann: Any, query_vector: np.ndarray, top: int) -> list[Hit]:
    """Reorder the first ``top`` hits by the learned metric head's score of (query, passage)."""
    head_part, rest = hits[:top], hits[top:]
    if not head_part:
        return hits
    vectors = ann.get(np.asarray([h.passage_id for h in head_part], dtype=np.int64))
    scores = head.score(query_vector, vectors)
    rescored = [Hit(**{**h.to_dict(), "score": float(s)}) for h, s in zip(head_part, scores)]
    rescored.sort(key=lambda h: -h.score)
    return rescored + rest


def search_one(query: str, vector: np.ndarray | None, options: SearchOptions, ann: Any, lexical: Any,
               store: MetadataStore, head: Any = None) -> list[Hit]:
    """Ranked hits for one query (``vector`` is None in lexical mode: no encoding needed)."""
    depth = max(options.k, options.rerank)
    if options.mode == "dense":
        hits = dense_hits(ann, store, vector, depth, options.passages, options.allowed_ids)
    elif options.mode == "lexical":
        hits = lexical_hits(lexical, store, query, depth, options.passages, options.allowed_ids)
    else:
        wide = max(depth, HYBRID_DEPTH)
        dense = dense_hits(ann, store, vector, wide, options.passages, options.allowed_ids)
        lexical_side = lexical_hits(lexical, store, query, wide, options.passages, options.allowed_ids)
        hits = fuse(dense, lexical_side, options)
    if options.rerank and head is not None:
        if vector is None:
            raise RetrieverError("reranking needs the query vector: use --mode dense or hybrid")
        hits = rerank(hits, head, ann, vector, options.rerank)
    return hits[: options.k]
