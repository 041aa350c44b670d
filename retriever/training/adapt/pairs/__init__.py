"""Pair sources: (pseudo-query, positive) pairs cut from a corpus, with no labels.

Each source is one module with one function ``pairs(doc, rng, context) -> list[PseudoPair]``:

* ``ict``: inverse cloze task: a sentence is the query, its document without that sentence the
  positive (Lee, Chang & Toutanova 2019);
* ``title``: a document's title is the query, its body the positive;
* ``crops``: two random spans of one document are each other's query and positive (Izacard et
  al. 2022, Contriever);
* ``keyterms``: the document's most distinctive words (TF-IDF against the corpus) are the query,
  the whole document the positive.

A positive is usually a *part* of its document, so a pair names the document it was cut from
(``doc_id``); mining never offers that document as a negative for the pair's query.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from retriever.ingest.documents import Document


@dataclass(frozen=True)
class PseudoPair:
    query: str
    positive: str
    doc_id: str
    source: str


@dataclass
class CorpusContext:
    """What a source may need to know about the whole corpus (document frequencies for key terms)."""

    document_frequency: dict[str, int]
    documents: int


PairSource = Callable[[Document, random.Random, CorpusContext], list[PseudoPair]]


def sources() -> dict[str, PairSource]:
    """The pair sources by name, in the order the CLI lists them."""
    from retriever.training.adapt.pairs import crops, ict, keyterms, title

    return {"ict": ict.pairs, "title": title.pairs, "crops": crops.pairs, "keyterms": keyterms.pairs}


SOURCE_NAMES = ("ict", "title", "crops", "keyterms")
