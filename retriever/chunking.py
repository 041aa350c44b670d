"""Splitting documents into overlapping passages that fit the model's max sequence length.

Splitting is token-aware: windows are counted in the model's own tokens, so a passage never
gets truncated by the encoder, and each passage keeps character offsets into its document.
The title is prepended to every passage when it is encoded (it gives each window context),
so the window is shortened by the title's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retriever.documents import Document

SPECIAL_TOKENS = 2  # [CLS] and [SEP] added by the encoder
MAX_TITLE_SHARE = 0.5  # a title may take at most half of the window


@dataclass(frozen=True)
class Passage:
    """A window of a document's text: ``text == document.text[start:end]``."""

    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int


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
        offsets = self._offsets([d.text for d in docs])
        title_lengths = [len(o) for o in self._offsets([d.title for d in docs])]
        return [
            self._windows(doc, doc_offsets, title_len)
            for doc, doc_offsets, title_len in zip(docs, offsets, title_lengths)
        ]

    def split(self, doc: Document) -> list[Passage]:
        return self.split_many([doc])[0]

    def _offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        encoded = self.tokenizer(
            texts,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            truncation=False,
            verbose=False,
        )
        return [[tuple(span) for span in spans] for spans in encoded["offset_mapping"]]

    def _windows(
        self, doc: Document, offsets: list[tuple[int, int]], title_tokens: int
    ) -> list[Passage]:
        budget = self.max_tokens - SPECIAL_TOKENS
        title_cost = min(title_tokens + 1, int(budget * MAX_TITLE_SHARE)) if doc.title else 0
        window = max(budget - title_cost, 2 * self.overlap + 1)
        if not offsets:
            return [Passage(doc.doc_id, 0, "", 0, 0)]
        step = window - self.overlap
        passages = []
        first = 0
        while True:
            last = min(first + window, len(offsets))
            start, end = offsets[first][0], offsets[last - 1][1]
            passages.append(Passage(doc.doc_id, len(passages), doc.text[start:end], start, end))
            if last == len(offsets):
                return passages
            first += step
