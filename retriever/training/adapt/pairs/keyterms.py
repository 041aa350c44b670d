"""Key-term pseudo-queries: a document's most distinctive words are the query, the document the positive.

Words are scored by TF-IDF against the corpus (stemming-free, lower case, bm25s's English
stopwords left out) and ``TERMS`` of the best few are kept in the order they first appear, as
a keyword query would be typed.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from functools import lru_cache

from retriever.ingest.documents import Document
from retriever.training.adapt.pairs import CorpusContext, PseudoPair
from retriever.training.adapt.pairs.text import with_title

TERMS = (3, 6)
POOL = 10  # the query's terms are drawn from the document's best POOL words
_TERM = re.compile(r"[a-z][a-z0-9-]{2,}")


def terms(text: str) -> list[str]:
    """The content words of a text, lower case, in order, stopwords left out."""
    stop = _stopwords()
    return [t for t in _TERM.findall(text.lower()) if t not in stop]


def pairs(doc: Document, rng: random.Random, context: CorpusContext) -> list[PseudoPair]:
    found = terms(f"{doc.title} {doc.text}")
    counts = Counter(found)
    if len(counts) < TERMS[0]:
        return []
    n = context.documents
    score = {t: c * math.log((n + 1) / (context.document_frequency.get(t, 0) + 1)) for t, c in counts.items()}
    best = sorted(counts, key=lambda t: (-score[t], t))[:POOL]
    chosen = set(rng.sample(best, min(len(best), rng.randint(*TERMS))))
    query = " ".join(dict.fromkeys(t for t in found if t in chosen))
    return [PseudoPair(query, with_title(doc.title, doc.text), doc.doc_id, "keyterms")]


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)
