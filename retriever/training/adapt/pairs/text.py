"""Sentence and word splitting shared by the pair sources: plain regular expressions, no model.

A sentence ends at ., ! or ? followed by whitespace and an upper-case letter, a digit or an
opening bracket; abbreviations such as "e.g." or "et al." (followed by a lower-case word) do not
end one. Good enough for abstracts and documentation, and it needs nothing downloaded.
"""

from __future__ import annotations

import re

from retriever.ingest.chunking import encoding_text

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_WORD = re.compile(r"\S+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def with_title(title: str, body: str) -> str:
    """The text the encoder sees for a document, as the index builds it."""
    return encoding_text(title, body)
