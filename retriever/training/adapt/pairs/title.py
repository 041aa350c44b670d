"""Title to body: a document's title is the query, its text without the title the positive.

Only titles that read like a query are used: at least ``MIN_WORDS`` words, not the start of the
body, and not a file name (a plain-text file without a heading gets its file name as its title).
"""

from __future__ import annotations

import random
from pathlib import Path

from retriever.ingest.documents import Document
from retriever.training.adapt.pairs import CorpusContext, PseudoPair
from retriever.training.adapt.pairs.text import words

MIN_WORDS = 3
MIN_BODY_WORDS = 20


def pairs(doc: Document, rng: random.Random, context: CorpusContext) -> list[PseudoPair]:
    title, body = " ".join(doc.title.split()), " ".join(doc.text.split())
    if len(words(title)) < MIN_WORDS or len(words(body)) < MIN_BODY_WORDS:
        return []
    if body.lower().startswith(title.lower()) or (doc.source and title == Path(doc.source).stem):
        return []
    return [PseudoPair(title, body, doc.doc_id, "title")]
