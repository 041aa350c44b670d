"""Independent cropping: two random spans of one document are a query and its positive.

Contriever (Izacard et al. 2022, "Unsupervised Dense Information Retrieval with Contrastive
Learning") samples both spans independently, so they may overlap or not; here the query span is
short (``QUERY_SHARE`` of the words, like a query) and the positive long (``POSITIVE_SHARE``),
and the positive keeps the title, as the index does.
"""

from __future__ import annotations

import random

from retriever.ingest.documents import Document
from retriever.training.adapt.pairs import CorpusContext, PseudoPair
from retriever.training.adapt.pairs.text import with_title, words

QUERY_SHARE = (0.05, 0.2)
QUERY_WORDS = (6, 32)
POSITIVE_SHARE = (0.5, 1.0)
MIN_WORDS = 40


def pairs(doc: Document, rng: random.Random, context: CorpusContext) -> list[PseudoPair]:
    tokens = words(doc.text)
    if len(tokens) < MIN_WORDS:
        return []
    query_len = min(max(round(rng.uniform(*QUERY_SHARE) * len(tokens)), QUERY_WORDS[0]), QUERY_WORDS[1])
    query = _span(tokens, query_len, rng)
    positive = _span(tokens, round(rng.uniform(*POSITIVE_SHARE) * len(tokens)), rng)
    return [PseudoPair(query, with_title(doc.title, positive), doc.doc_id, "crops")]


def _span(tokens: list[str], length: int, rng: random.Random) -> str:
    length = max(1, min(length, len(tokens)))
    start = rng.randrange(len(tokens) - length + 1)
    return " ".join(tokens[start : start + length])
