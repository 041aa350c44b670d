"""The context a RAG prompt should get: ``Retriever.context_for(query, max_tokens=2000)``.

From the k best passages (raw passages, not one per document: two good passages of one document both
count), best first:

- a near-copy of a passage already taken (cosine of the stored vectors >= 0.95: the same paragraph in two
  files, a page and its print version) is left out;
- each passage is widened by ``context`` neighbouring passages on each side (``retriever.search.context``);
  a span that overlaps or touches one already taken from the same document is merged into it, so no text
  is given twice (a span inside one already taken adds nothing and is left out);
- spans are taken while they fit ``max_tokens`` tokens of the model's tokenizer (separators between
  passages not counted); one that does not fit widened is taken as its bare passage, and the first passage
  that does not fit even so is cut to the tokens left, at a token boundary, and ends the context.

Each ``ContextPassage`` carries its document id, title, character range and a citation line built from them.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from retriever.errors import RetrieverError
from retriever.search.context import ContextExpander, token_counter
from retriever.search.ranking import SearchOptions, hits_of, rank
from retriever.search.results import ContextPassage, citation

NEAR_COPY = 0.95  # cosine at or above which two passages say the same thing
MIN_CUT_TOKENS = 16  # a cut passage shorter than this is not worth its citation


def check_budget(max_tokens: Any, context: Any) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Integral) or max_tokens < 1:
        raise RetrieverError(f"max_tokens must be a positive integer, not {max_tokens!r}")
    if isinstance(context, bool) or not isinstance(context, numbers.Integral) or context < 0:
        raise RetrieverError(f"context must be a number of neighbouring passages (0 or more), not {context!r}")


def assemble(queries: list[str], vectors: np.ndarray | None, options: SearchOptions, snapshot: Any, head: Any,
             tokenizer: Any, max_tokens: int, context: int = 1) -> list[ContextPassage]:
    """The context for one query (``queries`` holds it), from the planned search of ``Retriever._plan``."""
    check_budget(max_tokens, context)
    ranked = rank(queries, vectors, options, snapshot, head)[0]
    found = hits_of([ranked], queries, options, snapshot)[0]
    count = token_counter(tokenizer)
    expander = ContextExpander(snapshot, context)
    kept = _distinct(found, snapshot.vectors_of([key for key, _ in found]))
    taken: list[ContextPassage] = []
    left = max_tokens
    for key, hit in kept:
        text = expander.text(hit.doc_id)
        wide = expander.span(hit.doc_id, key, hit.start, hit.end)
        same = next((p for p in taken if p.doc_id == hit.doc_id and p.start <= wide[1] and wide[0] <= p.end), None)
        if same is not None:  # merge into the span already taken from this document
            merged = (min(same.start, wide[0]), max(same.end, wide[1]))
            if merged == (same.start, same.end):
                continue
            tokens = count(text[merged[0]:merged[1]])
            if tokens - same.tokens <= left:
                left -= tokens - same.tokens
                _set_span(same, text, merged, tokens)
            continue
        for span in (wide, (hit.start, hit.end)):
            tokens = count(text[span[0]:span[1]])
            if tokens <= left:
                taken.append(_passage(hit, text, span, tokens))
                left -= tokens
                break
        else:
            end = _cut(tokenizer, text, hit.start, hit.end, left)
            while end is not None and end > hit.start and count(text[hit.start:end]) > left:
                end -= 1  # a cut word may tokenize differently on its own: shorten until it fits
            if end is not None and end > hit.start:
                taken.append(_passage(hit, text, (hit.start, end), count(text[hit.start:end])))
            break
        if left <= 0:
            break
    return taken


def _distinct(found: list[tuple[Any, Any]], vectors: np.ndarray) -> list[tuple[Any, Any]]:
    """Hits best first, less those whose passage is a near-copy (or the same span) of a better one."""
    if not found:
        return []
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    kept: list[int] = []
    spans: set[tuple[str, int, int]] = set()
    for i, (_, hit) in enumerate(found):
        span = (hit.doc_id, hit.start, hit.end)
        if span in spans or (kept and float((unit[kept] @ unit[i]).max()) >= NEAR_COPY):
            continue
        kept.append(i)
        spans.add(span)
    return [found[i] for i in kept]


def _passage(hit: Any, text: str, span: tuple[int, int], tokens: int) -> ContextPassage:
    start, end = span
    return ContextPassage(text[start:end], hit.doc_id, hit.title, start, end,
                          citation(hit.doc_id, hit.title, start, end), hit.score, hit.source, tokens)


def _set_span(passage: ContextPassage, text: str, span: tuple[int, int], tokens: int) -> None:
    passage.start, passage.end = span
    passage.text, passage.tokens = text[span[0]:span[1]], tokens
    passage.citation = citation(passage.doc_id, passage.title, *span)


def _cut(tokenizer: Any, text: str, start: int, end: int, tokens: int) -> int | None:
    """Where a passage ends when cut to ``tokens`` tokens (None when too few are left to be worth it)."""
    if tokens < MIN_CUT_TOKENS:
        return None
    piece = text[start:end]
    if getattr(tokenizer, "is_fast", False):
        offsets = tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True,
                            verbose=False)["offset_mapping"]
        if len(offsets) <= tokens:
            return end
        return start + int(offsets[tokens - 1][1])
    ids = tokenizer(piece, add_special_tokens=False, verbose=False)["input_ids"]  # slow tokenizer: by share
    return start + int(len(piece) * min(1.0, tokens / max(1, len(ids))))
