"""Turning a query into ranked hits: dense, lexical or hybrid candidates, filters, reranking.

``Retriever.search`` delegates here. Candidates are passages; unless raw passages are asked
for, each document is represented by its best passage. Hybrid search fuses the document
rankings of both sides (``retriever.search.fusion``) over candidate lists of ``HYBRID_DEPTH``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from retriever.errors import RetrieverError
from retriever.index.store import MetadataStore
from retriever.search.fusion import convex_combination, reciprocal_rank_fusion
from retriever.search.results import Hit

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
        for name in ("k", "rerank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise RetrieverError(f"{name} must be an integer, not {type(value).__name__} {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real):
            raise RetrieverError(f"alpha must be a number between 0 and 1, not {type(self.alpha).__name__}")
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


Candidate = tuple[int, str, float]  # (passage id, document id, score)


def _candidates(store: MetadataStore, pairs: list[tuple[int, float]], passages: bool) -> list[Candidate]:
    """Attach document ids; keep each document's best passage unless raw passages are wanted."""
    doc_of = store.doc_ids_of_passages(i for i, _ in pairs)
    found = [(i, doc_of[i], s) for i, s in pairs if i in doc_of]
    if passages:
        return found
    seen: set[str] = set()
    best = []
    for candidate in found:
        if candidate[1] not in seen:
            seen.add(candidate[1])
            best.append(candidate)
    return best


def dense_candidates(ann: Any, store: MetadataStore, vector: np.ndarray, depth: int, passages: bool,
                     allowed: np.ndarray | None) -> list[Candidate]:
    """At least ``depth`` documents (or passages) by vector similarity, deepening the search as needed."""
    total = len(ann) if allowed is None else len(allowed)
    if total == 0:
        return []
    probe = depth if passages else depth * PASSAGES_PER_DOCUMENT
    while True:
        scores, ids = ann.search(vector[None, :], min(probe, total), allowed_ids=allowed)
        found = _candidates(store, [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0], passages)
        if len(found) >= depth or probe >= total:
            return found[:depth]
        probe *= 2


def lexical_candidates(lexical: Any, store: MetadataStore, query: str, depth: int, passages: bool,
                       allowed: np.ndarray | None) -> list[Candidate]:
    probe = depth if passages else depth * PASSAGES_PER_DOCUMENT
    pairs = [(int(i), s) for i, s in lexical.retrieve([query], k=probe, allowed_ids=allowed)[0]]
    return _candidates(store, pairs, passages)[:depth]


def fuse(dense: list[Candidate], lexical: list[Candidate], options: SearchOptions) -> list[tuple[int, float]]:
    """One ranking of (passage id, score); a document keeps its best dense passage, else its best lexical one."""
    slot = 0 if options.passages else 1  # fuse passages by passage id, documents by document id
    passage_of = {c[slot]: c[0] for c in lexical}
    passage_of.update({c[slot]: c[0] for c in dense})
    dense_ranked = [(c[slot], c[2]) for c in dense]
    lexical_ranked = [(c[slot], c[2]) for c in lexical]
    if options.fusion == "rrf":
        fused = reciprocal_rank_fusion([dense_ranked, lexical_ranked])
    else:
        fused = convex_combination(dense_ranked, lexical_ranked, options.alpha)
    return [(passage_of[item], float(score)) for item, score in fused]


def rerank(ranked: list[tuple[int, float]], head: Any, ann: Any, query_vector: np.ndarray,
           top: int) -> list[tuple[int, float]]:
    """Reorder the first ``top`` (passage id, score) by the learned metric head's score of (query, passage)."""
    head_part, rest = ranked[:top], ranked[top:]
    if not head_part:
        return ranked
    vectors = ann.get(np.asarray([i for i, _ in head_part], dtype=np.int64))
    scores = head.score(query_vector, vectors)
    rescored = sorted(((i, float(s)) for (i, _), s in zip(head_part, scores)), key=lambda pair: -pair[1])
    return rescored + rest


def search_one(query: str, vector: np.ndarray | None, options: SearchOptions, ann: Any, lexical: Any,
               store: MetadataStore, head: Any = None) -> list[Hit]:
    """Ranked hits for one query (``vector`` is None in lexical mode: no encoding needed).

    Ranking works on ids and scores only; texts and metadata are loaded for the k hits returned.
    """
    depth = max(options.k, options.rerank)
    if options.mode == "dense":
        ranked = [(c[0], c[2]) for c in dense_candidates(ann, store, vector, depth, options.passages,
                                                         options.allowed_ids)]
    elif options.mode == "lexical":
        ranked = [(c[0], c[2]) for c in lexical_candidates(lexical, store, query, depth, options.passages,
                                                           options.allowed_ids)]
    else:
        wide = max(depth, HYBRID_DEPTH)
        dense = dense_candidates(ann, store, vector, wide, options.passages, options.allowed_ids)
        lexical_side = lexical_candidates(lexical, store, query, wide, options.passages, options.allowed_ids)
        ranked = fuse(dense, lexical_side, options)
    if options.rerank and head is not None:
        if vector is None:
            raise RetrieverError("reranking needs the query vector: use --mode dense or hybrid")
        ranked = rerank(ranked, head, ann, vector, options.rerank)
    ranked = ranked[: options.k]
    stored = store.passages(i for i, _ in ranked)
    return [Hit.from_passage(stored[i], score) for i, score in ranked if i in stored]
