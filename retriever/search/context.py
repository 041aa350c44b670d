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
        """Widen each hit (``keys``: its passage key) in place: text, start and end become the span's.

        Each hit must still be its key's passage, as ``hits_of`` makes it (its text, start and end are not read
        again). With N neighbours, every document's passage list is read in one lookup, then the neighbours of
        every window in another, and joined where they overlap (the document's text is read only if two
        neighbours leave a gap between them).
        """
        if self.context == DOCUMENT:
            for hit, key in zip(hits, keys):
                self._widen(hit, self.span(hit.doc_id, key, hit.start, hit.end))
            return
        neighbours = int(self.context)
        if not neighbours:
            return
        self._read_passage_lists([hit.doc_id for hit in hits])
        windows = [self._window_keys(hit.doc_id, key, neighbours) for hit, key in zip(hits, keys)]
        stored = self.snapshot.hydrate({other for window, key in zip(windows, keys) for other in window
                                        if other != key})
        for hit, key, window in zip(hits, keys, windows):
            if len(window) == 1:
                continue  # the passage alone: nothing to widen
            passages = sorted((hit if other == key else stored[other] for other in window
                               if other == key or other in stored), key=lambda p: p.start)
            joined = _joined(passages)
            if joined is None:
                self._widen(hit, (passages[0].start, max(p.end for p in passages)))
            elif (passages[0].start, joined[1]) != (hit.start, hit.end):
                hit.start, hit.end, hit.text = passages[0].start, joined[1], joined[0]

    def _read_passage_lists(self, doc_ids: Sequence[str]) -> None:
        missing = [doc_id for doc_id in dict.fromkeys(doc_ids) if doc_id not in self._keys]
        if missing:
            found = self.snapshot.passage_keys_of(missing)
            self._keys.update({doc_id: list(found.get(doc_id, [])) for doc_id in missing})

    def _widen(self, hit: Hit, span: tuple[int, int]) -> None:
        if span != (hit.start, hit.end):
            hit.start, hit.end = span
            hit.text = self.text(hit.doc_id)[span[0]:span[1]]

    def _window_keys(self, doc_id: str, key: Hashable, neighbours: int) -> list[Hashable]:
        keys = self._passages(doc_id)
        if key not in keys:
            return [key]
        at = keys.index(key)
        return keys[max(0, at - neighbours): at + neighbours + 1]

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
        stored = self.snapshot.hydrate(self._window_keys(doc_id, key, neighbours)).values()
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


def _joined(passages: Sequence[Any]) -> tuple[str, int] | None:
    """(text, end) of consecutive passages joined where they overlap; None if two leave a gap (or none given)."""
    if not passages:
        return None
    text, end = passages[0].text, passages[0].end
    for passage in passages[1:]:
        if passage.start > end:
            return None
        if passage.end > end:
            text += passage.text[end - passage.start:]
            end = passage.end
    return text, end
