"""Turning queries into ranked hits: dense, lexical or hybrid candidates, filters, reranking.

``Retriever.search_many`` delegates here with a snapshot of the index (``retriever.index.snapshot``), which
answers candidate searches for a whole batch at once. Candidates are passages; unless raw passages are asked
for, each document is represented by its best passage. Hybrid search fuses the document rankings of both sides
(``retriever.search.fusion``) over candidate lists of ``HYBRID_DEPTH``; the lexical side runs on a helper thread
while this one runs the dense side (FAISS and numpy release the GIL), so a hybrid query costs about its slower
side rather than the sum of both. Texts and metadata are loaded only for the hits returned, in one lookup per
batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from retriever.errors import RetrieverError
from retriever.machine import cores
from retriever.pools import SharedPool
from retriever.search.context import DEFAULT_CONTEXT_TOKENS, ContextExpander, check_context
from retriever.search.diversity import check_diversity, default_fetch_k, diversify
from retriever.search.explain import Explanation, explain_fusion, explain_single
from retriever.search.fusion import convex_combination, reciprocal_rank_fusion
from retriever.search.highlights import annotate
from retriever.search.results import Hit

MODES = ("dense", "lexical", "hybrid")
FUSIONS = ("rrf", "convex")
PASSAGES_PER_DOCUMENT = 4  # at most this many passages per requested document in a first search; doubled as needed
PROBE_MARGIN = 1.25  # a first search fetches this times the index's mean passages per document (at least one)
HYBRID_DEPTH = 100  # candidates per side, so a document found by one side only is still fairly placed
# one lexical side per core, so concurrent hybrid searches (a server's workers) never queue behind each other
_LEXICAL_SIDE = SharedPool("retriever-lexical", cores)


@dataclass(frozen=True)
class SearchOptions:
    """How to search; the defaults are the settings that won on the SciFact benchmark."""

    k: int = 10
    passages: bool = False
    mode: str = "hybrid"
    fusion: str = "convex"
    alpha: float = 0.5  # convex fusion: weight of the dense side (best on SciFact train queries)
    allowed: list[np.ndarray | None] | None = None  # per segment, from a metadata filter
    rerank: int = 0  # rerank this many top candidates with the model's learned metric head
    diversity: float | None = None  # MMR lambda over the candidates (1.0: pure relevance; None: no MMR)
    fetch_k: int | None = None  # MMR candidates (None: ``default_fetch_k(k)``)
    context: int | str | None = None  # neighbouring passages on each side of a hit, or "document"
    context_tokens: int = DEFAULT_CONTEXT_TOKENS  # context="document": the most tokens a whole document may have
    explain: bool = False  # attach an ``Explanation`` (the scores behind its rank) to each hit

    @property
    def depth(self) -> int:
        """Candidates each query needs: the k returned, those reranked, those MMR chooses from."""
        fetch = self.candidates if self.diversity is not None else 0
        return max(self.k, self.rerank, fetch)

    @property
    def candidates(self) -> int:
        return max(self.fetch_k, self.k) if self.fetch_k is not None else default_fetch_k(self.k)

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
        if not isinstance(self.explain, bool):
            raise RetrieverError(f"explain must be true or false, not {self.explain!r}")
        check_diversity(self.diversity, self.fetch_k)
        check_context(self.context, self.context_tokens)


Candidate = tuple[Any, Any, float]  # (passage key, document key, score)


def best_per_document(found: list[Candidate], passages: bool) -> list[Candidate]:
    """Keep each document's best passage (candidates come best first) unless raw passages are wanted."""
    if passages:
        return found
    seen: set[Any] = set()
    best = []
    for candidate in found:
        if candidate[1] not in seen:
            seen.add(candidate[1])
            best.append(candidate)
    return best


def first_probe(snapshot: Any, depth: int, passages: bool) -> int:
    """Passages a first search fetches for ``depth`` documents: the index's mean passages per document with a
    margin, between 1 and ``PASSAGES_PER_DOCUMENT`` per document.

    Fetching 4 per document in every index made hybrid search (100 documents a side) score 400 passages where
    most documents have one or two (SciFact: 1.9); ``benchmarks/first_probe.py`` measures both.
    """
    if passages:
        return depth
    mean = snapshot.passages / max(1, snapshot.documents)
    return math.ceil(depth * min(PASSAGES_PER_DOCUMENT, max(1.0, mean * PROBE_MARGIN)))


def deepening(search: Callable[[list[int], int], list[list[Candidate]]], queries: int, depth: int, passages: bool,
              total: int, probe: int) -> list[list[Candidate]]:
    """At least ``depth`` documents (or passages) per query, searching deeper for the queries that need it.

    A document can have many passages, so a first search of ``probe`` passages (``first_probe``) may still hold
    fewer than ``depth`` documents; those queries (only those) are searched again twice as deep. The documents
    returned are the same whatever the probe: only the number of searches changes.
    """
    results: list[list[Candidate]] = [[] for _ in range(queries)]
    if total == 0:
        return results
    todo = list(range(queries))
    while todo:
        found = search(todo, min(probe, total))
        again = []
        for q, candidates in zip(todo, found):
            results[q] = best_per_document(candidates, passages)[:depth]
            if len(results[q]) < depth and probe < total:
                again.append(q)
        todo, probe = again, probe * 2
    return results


def dense_candidates(snapshot: Any, vectors: np.ndarray, depth: int, passages: bool,
                     allowed: list[np.ndarray | None] | None) -> list[list[Candidate]]:
    total = snapshot.available(allowed)
    return deepening(lambda todo, k: snapshot.dense(vectors[todo], k, allowed), len(vectors), depth, passages, total,
                     first_probe(snapshot, depth, passages))


def lexical_candidates(snapshot: Any, queries: list[str], depth: int, passages: bool,
                       allowed: list[np.ndarray | None] | None) -> list[list[Candidate]]:
    total = snapshot.available(allowed)
    return deepening(lambda todo, k: snapshot.lexical([queries[q] for q in todo], k, allowed), len(queries), depth,
                     passages, total, first_probe(snapshot, depth, passages))


def fuse(dense: list[Candidate], lexical: list[Candidate], options: SearchOptions,
         explained: dict[Any, Explanation] | None = None) -> list[tuple[Any, float]]:
    """One ranking of (passage key, score); a document keeps its best dense passage, else its best lexical one.

    ``explained``, if given, receives the ``Explanation`` of each fused passage key.
    """
    slot = 0 if options.passages else 1  # fuse passages by passage key, documents by document key
    passage_of = {c[slot]: c[0] for c in lexical}
    passage_of.update({c[slot]: c[0] for c in dense})
    dense_ranked = [(c[slot], c[2]) for c in dense]
    lexical_ranked = [(c[slot], c[2]) for c in lexical]
    if options.fusion == "rrf":
        fused = reciprocal_rank_fusion([dense_ranked, lexical_ranked])
    else:
        fused = convex_combination(dense_ranked, lexical_ranked, options.alpha)
    if explained is not None:
        explained.update(explain_fusion(dense_ranked, lexical_ranked, fused, options.fusion, options.alpha,
                                        passage_of))
    return [(passage_of[item], float(score)) for item, score in fused]


def rerank(ranked: list[tuple[Any, float]], head: Any, snapshot: Any, query_vector: np.ndarray,
           top: int) -> list[tuple[Any, float]]:
    """Reorder the first ``top`` (passage key, score) by the learned metric head's score of (query, passage)."""
    head_part, rest = ranked[:top], ranked[top:]
    if not head_part:
        return ranked
    vectors = snapshot.vectors_of([key for key, _ in head_part])
    scores = head.score(query_vector, vectors)
    rescored = sorted(((key, float(s)) for (key, _), s in zip(head_part, scores)), key=lambda pair: -pair[1])
    return rescored + rest


def search_batch(queries: list[str], vectors: np.ndarray | None, options: SearchOptions, snapshot: Any,
                 head: Any = None, count_tokens: Callable[[str], int] | None = None) -> list[list[Hit]]:
    """Ranked hits for a batch of queries (``vectors`` is None in lexical mode: no encoding needed).

    ``count_tokens``: the model's token count of a text, needed by ``context="document"`` only.
    """
    explained: list[dict[Any, Explanation]] | None = [] if options.explain else None
    ranked = rank(queries, vectors, options, snapshot, head, explained)
    found = hits_of(ranked, queries, options, snapshot, count_tokens)
    if explained is not None:
        for pairs, explanations in zip(found, explained):
            for key, hit in pairs:
                hit.explanation = explanations[key]
    return [[hit for _, hit in pairs] for pairs in found]


def rank(queries: list[str], vectors: np.ndarray | None, options: SearchOptions, snapshot: Any,
         head: Any = None, explained: list[dict[Any, Explanation]] | None = None) -> list[list[tuple[Any, float]]]:
    """The k best (passage key, score) of each query: candidates, fusion, reranking, diversity.

    ``explained``, if given (a list), receives per query the ``Explanation`` of each passage key ranked.
    """
    depth = options.depth
    allowed = options.allowed
    if options.mode == "dense":
        ranked = [[(c[0], c[2]) for c in found]
                  for found in dense_candidates(snapshot, vectors, depth, options.passages, allowed)]
    elif options.mode == "lexical":
        ranked = [[(c[0], c[2]) for c in found]
                  for found in lexical_candidates(snapshot, queries, depth, options.passages, allowed)]
    else:
        wide = max(depth, HYBRID_DEPTH)
        lexical_side = _LEXICAL_SIDE.get().submit(lexical_candidates, snapshot, queries, wide, options.passages,
                                                  allowed)
        dense = dense_candidates(snapshot, vectors, wide, options.passages, allowed)
        lexical = lexical_side.result()
        if explained is not None:
            explained.extend({} for _ in queries)
        ranked = [fuse(d, lx, options, explained[q] if explained is not None else None)
                  for q, (d, lx) in enumerate(zip(dense, lexical))]
    if explained is not None and options.mode != "hybrid":
        explained.extend(explain_single(options.mode, r) for r in ranked)
    if options.rerank and head is not None:
        if vectors is None:
            raise RetrieverError("reranking needs the query vector: use --mode dense or hybrid")
        ranked = [rerank(r, head, snapshot, v, options.rerank) for r, v in zip(ranked, vectors)]
        for q, r in enumerate(ranked if explained is not None else []):
            for key, score in r[: options.rerank]:
                explained[q][key].reranked = score
    if options.diversity is not None:
        ranked = [diversify(r[: options.candidates], snapshot.vectors_of, options.k, options.diversity)
                  for r in ranked]
    return [r[: options.k] for r in ranked]


def hits_of(ranked: list[list[tuple[Any, float]]], queries: list[str], options: SearchOptions, snapshot: Any,
            count_tokens: Callable[[str], int] | None = None) -> list[list[tuple[Any, Hit]]]:
    """(passage key, hit) of each ranked key: texts loaded in one lookup, context added, matches marked."""
    stored = snapshot.hydrate({key for r in ranked for key, _ in r})
    ranked = [[(key, score) for key, score in r if key in stored] for r in ranked]
    hits = [[Hit.from_passage(stored[key], score) for key, score in r] for r in ranked]
    matched = [[hit.text for hit in found] for found in hits]  # the passages, before any context widens them
    if options.context:
        expander = ContextExpander(snapshot, options.context, options.context_tokens, count_tokens)
        for found, r in zip(hits, ranked):
            expander.expand(found, [key for key, _ in r])
    for found, query, texts in zip(hits, queries, matched):
        annotate(found, query, texts)
    return [[(key, hit) for (key, _), hit in zip(r, found)] for r, found in zip(ranked, hits)]
