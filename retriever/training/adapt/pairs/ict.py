"""Inverse cloze task: a sentence of a document is the query, the rest of the document its positive.

The sentence is removed from the positive, so the pair teaches matching by meaning and context
rather than by copying; in ``KEEP_SENTENCE`` of the pairs it stays, so exact matches are not
unlearned (Lee, Chang & Toutanova 2019, "Latent Retrieval for Weakly Supervised Open Domain
Question Answering", keep 10%). Sentences that are too short to say anything, or too long to
look like a query, are not used.
"""

from __future__ import annotations

import random

from retriever.ingest.documents import Document
from retriever.training.adapt.pairs import CorpusContext, PseudoPair
from retriever.training.adapt.pairs.text import split_sentences, with_title, words

KEEP_SENTENCE = 0.1
MIN_WORDS, MAX_WORDS = 6, 48  # a query-like sentence
MIN_SENTENCES = 3  # the positive keeps at least two sentences


def pairs(doc: Document, rng: random.Random, context: CorpusContext) -> list[PseudoPair]:
    sentences = split_sentences(doc.text)
    if len(sentences) < MIN_SENTENCES:
        return []
    out = []
    for i, sentence in enumerate(sentences):
        if not MIN_WORDS <= len(words(sentence)) <= MAX_WORDS:
            continue
        rest = sentences if rng.random() < KEEP_SENTENCE else sentences[:i] + sentences[i + 1 :]
        out.append(PseudoPair(sentence, with_title(doc.title, " ".join(rest)), doc.doc_id, "ict"))
    return out
