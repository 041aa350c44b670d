"""LangChain interfaces: a retriever (``as_retriever(r)``) and a vector store (``RetrieverVectorStore``).

Needs the ``langchain`` extra (langchain-core). Both search a ``Retriever`` in this process or a ``Client``
of a server, with the index's own model (LangChain's ``Embeddings`` are not used).

- ``LangChainRetriever``: each ``Document`` holds the best passage as ``page_content`` and the document id
  as ``id``; ``metadata`` has the record's own fields plus ``doc_id``, ``score``, ``title``, ``source``,
  ``start``/``end`` (offsets in the document) and ``passage_id``, what a prompt needs to cite its sources.
  ``invoke(query, k=1)`` and other search options given to ``invoke`` apply to that call.
- ``RetrieverVectorStore``: a ``VectorStore`` whose documents come back as they were added (``page_content``,
  ``metadata``, ``id``); a document longer than one passage comes back as its best passage.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from retriever.extras import require_extra

require_extra("langchain", "langchain_core", feature="retriever.integrations.langchain")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402

from retriever.errors import RetrieverError  # noqa: E402
from retriever.ingest import documents as records  # noqa: E402
from retriever.integrations import hit_metadata, where_list, where_of  # noqa: E402
from retriever.search.results import Hit  # noqa: E402


def as_retriever(searcher: Any, k: int = 4, **search_options: Any) -> LangChainRetriever:
    """A LangChain ``BaseRetriever`` over a ``Retriever`` or a ``Client``; ``search_options`` for every search.

    A function here, not a method of ``Retriever``: the engine knows nothing of the frameworks above it.
    """
    return LangChainRetriever(searcher=searcher, k=k, search_options=search_options)


class LangChainRetriever(BaseRetriever):
    """Searches a ``Retriever`` or a ``Client``; ``search_options`` (mode, fusion, alpha, where, ...) pass through."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Any = Field(description="A retriever.Retriever or retriever.client.Client.")
    k: int = Field(4, ge=1, description="Documents per query.")
    search_options: dict[str, Any] = Field(default_factory=dict)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, **search_options: Any) -> list[Document]:
        hits = self.searcher.search(query, k=self.k if k is None else k, **{**self.search_options, **search_options})
        return [Document(page_content=hit.text, metadata=hit_metadata(hit), id=hit.doc_id) for hit in hits]


class RetrieverVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over a ``Retriever`` or a ``Client``; ``search_options`` apply to every search.

    ``RetrieverVectorStore.create(path, model=...)`` makes an empty index; ``RetrieverVectorStore(Retriever.load(
    path))`` or ``RetrieverVectorStore(Client(url))`` uses an existing one. ``filter`` in a search is a mapping
    of fields to values (all must match) or filters as ``Retriever.search``'s ``where`` takes them.
    """

    def __init__(self, searcher: Any, **search_options: Any) -> None:
        self.searcher = searcher
        self.search_options = search_options

    @classmethod
    def create(cls, index_dir: str | Path, model: str | None = None, search_options: dict[str, Any] | None = None,
               **options: Any) -> RetrieverVectorStore:
        """An empty store in a new index at ``index_dir``; ``options`` as ``Retriever.create`` takes them,
        ``search_options`` (mode, fusion, alpha, where, ...) for every search of the store."""
        from retriever.retriever import Retriever

        return cls(Retriever.create(index_dir, model=model, **options), **(search_options or {}))

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None, metadatas: list[dict] | None = None,
                   *, ids: list[str] | None = None, index_dir: str | Path | None = None, model: str | None = None,
                   **options: Any) -> RetrieverVectorStore:
        """A new index at ``index_dir`` holding ``texts``, encoded by ``model`` (the index's own model)."""
        if embedding is not None:
            raise RetrieverError("RetrieverVectorStore encodes with the index's own model: pass model=, not embedding")
        if index_dir is None:
            raise RetrieverError("RetrieverVectorStore.from_texts needs index_dir=, the folder of the new index")
        store = cls.create(index_dir, model=model, **options)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # writing -------------------------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Add texts (or replace those whose id exists) in one commit; ids default to new UUIDs."""
        texts = list(texts)
        metadatas = [{} for _ in texts] if metadatas is None else list(metadatas)
        ids = [None] * len(texts) if ids is None else list(ids)
        if not len(texts) == len(metadatas) == len(ids):
            raise RetrieverError(f"add_texts got {len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids")
        ids = [str(i) if i is not None else str(uuid.uuid4()) for i in ids]
        if texts:
            self.searcher.add([records.Document(doc_id=doc_id, text=text, metadata=dict(metadata or {}))
                               for doc_id, text, metadata in zip(ids, texts, metadatas)])
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Remove documents by id in one commit; ids not in the index are ignored."""
        if ids is None:
            raise RetrieverError("delete needs the ids of the documents to remove")
        if ids:
            self.searcher.remove(list(ids))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in that order; ids not in the index are left out."""
        found = (self.searcher.get(doc_id) for doc_id in ids)
        return [_stored_document(doc) for doc in found if doc is not None]

    # searching ---------------------------------------------------------------------------------------------------
    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [document for document, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """Documents with the engine's score: cosine in dense mode, fused score in hybrid mode, BM25 in lexical."""
        return [(_found_document(hit), hit.score) for hit in self._search(query, k, **kwargs)]

    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                 **kwargs: Any) -> list[tuple[Document, float]]:
        relevance = self._select_relevance_score_fn()  # refuses scores that are not on a 0-1 scale
        found = self.similarity_search_with_score(query, k, **kwargs)
        return [(document, relevance(score)) for document, score in found]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Scores are relevance already: cosine in dense mode, min-max normalised fusion in hybrid convex mode
        (relative to the query's best candidates, so a threshold there keeps what is close to the best)."""
        mode = self.search_options.get("mode") or "hybrid"
        fusion = self.search_options.get("fusion") or "convex"
        if mode == "lexical" or (mode == "hybrid" and fusion != "convex"):
            raise RetrieverError(f"{mode} search{'' if mode == 'lexical' else ' with ' + fusion + ' fusion'} has no "
                                 "0-1 relevance score; use mode='dense' or hybrid with fusion='convex'")
        return _clipped

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      **kwargs: Any) -> list[Document]:
        """k documents chosen by maximal marginal relevance (the engine's ``diversity``) among ``fetch_k``."""
        hits = self._search(query, k, diversity=lambda_mult, fetch_k=max(fetch_k, k), **kwargs)
        return [_found_document(hit) for hit in hits]

    def _search(self, query: str, k: int, filter: Any = None, **kwargs: Any) -> list[Hit]:  # noqa: A002
        options = {**self.search_options, **kwargs}
        if filter is not None:
            options["where"] = [*where_list(options.get("where")), *where_of(filter)]
        return self.searcher.search(query, k=k, **options)


def _found_document(hit: Hit) -> Document:
    return Document(page_content=hit.text, metadata=dict(hit.metadata), id=hit.doc_id)


def _stored_document(doc: records.Document) -> Document:
    return Document(page_content=doc.text, metadata=dict(doc.metadata), id=doc.doc_id)


def _clipped(score: float) -> float:
    """A cosine as relevance: negative (opposed) counts as 0, and float error above 1 as 1."""
    return min(1.0, max(0.0, score))
