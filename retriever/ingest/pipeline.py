"""Documents -> passages -> vectors, batch by batch, so an index of any size is built in bounded memory.

``Embedder`` is the seam where encoding happens: ``LocalEmbedder`` chunks and encodes in this process; a
distributed one (Ray) yields the same tuples. The writer consumes them as they come.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from retriever.ingest.chunking import Chunker, Passage, encoding_text
from retriever.ingest.documents import Document

BATCH_PASSAGES = 1024  # passages encoded per call: large enough to batch well, small enough to stream

Embedded = tuple[Document, "str | None", list[Passage], np.ndarray]  # (document, file, passages, vectors)


class Embedder(Protocol):
    def __call__(self, documents: Iterable[tuple[Document, str | None]]) -> Iterator[Embedded]: ...


class LocalEmbedder:
    """Chunk with the index's chunker and encode with its model, in this process.

    The model and chunker are made on first use (factories), so an update that encodes nothing (a removal,
    an unchanged folder) never loads the model.
    """

    def __init__(self, encoder: Callable[[], Any], chunker: Callable[[], Chunker],
                 batch_passages: int = BATCH_PASSAGES) -> None:
        self._make_encoder, self._make_chunker, self.batch_passages = encoder, chunker, batch_passages
        self._chunker: Chunker | None = None

    def __call__(self, documents: Iterable[tuple[Document, str | None]]) -> Iterator[Embedded]:
        batch: list[tuple[Document, str | None]] = []
        estimate = 0
        for doc, file in documents:
            batch.append((doc, file))
            estimate += 1 + len(doc.text) // 1000  # a rough passage count; the chunker gives the real one
            if estimate >= self.batch_passages:
                yield from self._embed(batch)
                batch, estimate = [], 0
        if batch:
            yield from self._embed(batch)

    def _embed(self, batch: list[tuple[Document, str | None]]) -> Iterator[Embedded]:
        if self._chunker is None:
            self._chunker = self._make_chunker()
        split = self._chunker.split_many([doc for doc, _ in batch])
        texts = [encoding_text(p.title, p.text) for passages in split for p in passages]
        vectors = self._make_encoder().encode_documents(texts)
        start = 0
        for (doc, file), passages in zip(batch, split):
            yield doc, file, passages, vectors[start:start + len(passages)]
            start += len(passages)
