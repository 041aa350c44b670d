"""Context expansion: a hit's passage widened to its neighbours, or to its whole document.

A passage is cut for the encoder (a few hundred tokens), not for a reader: the answer to a question is
often in the sentences around the one that matched (LlamaIndex's sentence-window and auto-merging
retrievers exist for this). ``context=N`` returns each hit's passage with up to N passages of the same
document on each side; passages overlap (the chunker's ``overlap_tokens``), so the span is taken from the
document text, from the first one's start to the last one's end, with no text repeated. ``context="document"``
returns the whole document when it fits ``context_tokens`` tokens of the model's tokenizer, else the passage
with as many neighbours as fit. Either way ``start``/``end`` are the offsets of the whole span.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from retriever.errors import RetrieverError
from retriever.search.results import Hit

DOCUMENT = "document"
DEFAULT_CONTEXT_TOKENS = 2000

Counter = Callable[[str], int]


def check_context(context: int | str | None, context_tokens: int) -> None:
    """One clear error for a context that is neither a number of neighbours nor "document"."""
    if context is not None and context != DOCUMENT:
        if isinstance(context, bool) or not isinstance(context, numbers.Integral) or context < 0:
            raise RetrieverError(f"context must be a number of neighbouring passages (0 or more) or "
                                 f"{DOCUMENT!r}, not {context!r}")
    if isinstance(context_tokens, bool) or not isinstance(context_tokens, numbers.Integral) or context_tokens < 1:
        raise RetrieverError(f"context_tokens must be a positive integer, not {context_tokens!r}")


def token_counter(tokenizer: Any) -> Counter:
    """Tokens of a text as the model counts them (no special tokens; no warning past its maximum length)."""
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return count


class ContextExpander:
    """Widens hits over one snapshot; each document's text and passage list is read once per search batch."""

    def __init__(self, snapshot: Any, context: int | str, budget: int = DEFAULT_CONTEXT_TOKENS,
                 count_tokens: Counter | None = None) -> None:
        if context == DOCUMENT and count_tokens is None:
            raise RetrieverError("context='document' needs the model's tokenizer to count tokens")
        self.snapshot, self.context, self.budget, self.count_tokens = snapshot, context, budget, count_tokens
        self._texts: dict[str, str] = {}
        self._keys: dict[str, list[Hashable]] = {}

    def expand(self, hits: Sequence[Hit], keys: Sequence[Hashable]) -> None:
        """Widen each hit (``keys``: its passage key) in place: text, start and end become the span's."""
        for hit, key in zip(hits, keys):
            span = self.span(hit.doc_id, key, hit.start, hit.end)
            if span != (hit.start, hit.end):
                hit.start, hit.end = span
                hit.text = self.text(hit.doc_id)[span[0]:span[1]]

    def span(self, doc_id: str, key: Hashable, start: int, end: int) -> tuple[int, int]:
        """(start, end) in the document of the passage ``key`` with its context."""
        if self.context == DOCUMENT:
            text = self.text(doc_id)
            if self.count_tokens(text) <= self.budget:
                return 0, len(text)
            return self._grown(doc_id, key, start, end)
        if not self.context:
            return start, end
        return self._window(doc_id, key, int(self.context), start, end)

    def text(self, doc_id: str) -> str:
        if doc_id not in self._texts:
            document = self.snapshot.document(doc_id)
            self._texts[doc_id] = document.text if document is not None else ""
        return self._texts[doc_id]

    def _passages(self, doc_id: str) -> list[Hashable]:
        if doc_id not in self._keys:
            self._keys[doc_id] = list(self.snapshot.passage_keys(doc_id))  # in passage order
        return self._keys[doc_id]

    def _window(self, doc_id: str, key: Hashable, neighbours: int, start: int, end: int) -> tuple[int, int]:
        keys = self._passages(doc_id)
        if key not in keys:
            return start, end
        at = keys.index(key)
        window = keys[max(0, at - neighbours): at + neighbours + 1]
        stored = self.snapshot.hydrate(window).values()
        return min([start, *(p.start for p in stored)]), max([end, *(p.end for p in stored)])

    def _grown(self, doc_id: str, key: Hashable, start: int, end: int) -> tuple[int, int]:
        """The widest window of neighbours around the passage (one more on each side per step) that fits."""
        best, neighbours = (start, end), 1
        while neighbours <= len(self._passages(doc_id)):
            span = self._window(doc_id, key, neighbours, start, end)
            if span == best or self.count_tokens(self.text(doc_id)[span[0]:span[1]]) > self.budget:
                break
            best, neighbours = span, neighbours + 1
        return best
