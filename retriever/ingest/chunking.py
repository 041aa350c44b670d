"""Splitting documents into overlapping passages that fit the model's max sequence length.

Splitting is token-aware: windows are counted in the model's own tokens, so a passage never
gets truncated by the encoder, and each passage keeps character offsets into its document.
Windows start at word boundaries, so a passage re-tokenizes to the tokens it was counted in.
The title is prepended to every passage when it is encoded (it gives each window context),
so the window is shortened by the title's tokens; a title longer than half of the window is
shortened to fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retriever.ingest.documents import Document

SPECIAL_TOKENS = 2  # [CLS] and [SEP] added by the encoder
MAX_TITLE_SHARE = 0.5  # a title may take at most half of the window


@dataclass(frozen=True)
class Passage:
    """A window of a document's text: ``text == document.text[start:end]``.

    ``title`` is the document's title as prepended when encoding (see ``encoding_text``),
    shortened if it would take more than half of the window.
    """

    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    title: str = ""


def encoding_text(title: str, passage_text: str) -> str:
    """What the encoder sees for a passage: title and text, as BEIR's dense baselines do."""
    if title and passage_text:
        return f"{title} {passage_text}"
    return title or passage_text


class Chunker:
    """Cuts documents into windows of ``max_tokens`` tokens overlapping by ``overlap`` tokens."""

    def __init__(self, tokenizer: Any, max_tokens: int, overlap: int) -> None:
        if max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if not 0 <= overlap < max_tokens // 2:
            raise ValueError("overlap must be between 0 and half of max_tokens")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def split_many(self, docs: list[Document]) -> list[list[Passage]]:
        """Passages of each document, tokenizing all texts in one batched call for speed."""
        if not docs:
            return []
        texts = self._tokens([d.text for d in docs])
        titles = self._tokens([d.title for d in docs])
        return [
            self._windows(doc, offsets, words, title_offsets)
            for doc, (offsets, words), (title_offsets, _) in zip(docs, texts, titles)
        ]

    def split(self, doc: Document) -> list[Passage]:
        return self.split_many([doc])[0]

    def _tokens(self, texts: list[str]) -> list[tuple[list[tuple[int, int]], list[int | None]]]:
        """Per text: each token's character span and the index of the word it belongs to."""
        encoded = self.tokenizer(
            texts,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            truncation=False,
            verbose=False,
        )
        return [
            ([tuple(span) for span in spans], encoded.word_ids(i))
            for i, spans in enumerate(encoded["offset_mapping"])
        ]

    def _windows(
        self,
        doc: Document,
        offsets: list[tuple[int, int]],
        words: list[int | None],
        title_offsets: list[tuple[int, int]],
    ) -> list[Passage]:
        budget = self.max_tokens - SPECIAL_TOKENS
        title, title_cost = doc.title, 0
        if title_offsets:
            title_cost = min(len(title_offsets) + 1, int(budget * MAX_TITLE_SHARE))
            kept = title_cost - 1  # one token of slack for the space joining title and text
            if kept < len(title_offsets):
                title = title[: title_offsets[kept - 1][1]]
        window = budget - title_cost
        overlap = min(self.overlap, window // 2)
        if not offsets:
            return [Passage(doc.doc_id, 0, "", 0, 0, title)]
        passages = []
        first = 0
        while True:
            last = min(first + window, len(offsets))
            start, end = offsets[first][0], offsets[last - 1][1]
            passages.append(Passage(doc.doc_id, len(passages), doc.text[start:end], start, end, title))
            if last == len(offsets):
                return passages
            first = _word_start(words, last - overlap, lowest=first + 1)


def _word_start(words: list[int | None], index: int, lowest: int) -> int:
    """The first token of the word holding token ``index``, or ``index`` if that word starts before ``lowest``.

    A window starting in the middle of a word could re-tokenize into more tokens than were counted.
    """
    start = index
    while start > lowest and words[start] is not None and words[start] == words[start - 1]:
        start -= 1
    if words[start] is not None and words[start] == words[start - 1]:
        return index
    return start
