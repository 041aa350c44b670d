"""Haystack interfaces: a document store (``RetrieverDocumentStore``) and a retriever component (``HaystackRetriever``).

Needs the ``haystack`` extra (haystack-ai). Both work over a ``Retriever`` in this process or a ``Client`` of a
server, encoding with the index's own model (no embedder component is needed in the pipeline). Documents come back
as they were written (``id``, ``content``, ``meta``); the retriever sets their ``score``.

Filters are Haystack's: comparisons (``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=``) on ``meta.FIELD`` or ``id``,
joined by ``AND``; other operators, ``OR`` and ``NOT`` are refused with a one-line ``FilterError``.
``filter_documents`` lists documents through a search, so at most ``LIST_LIMIT`` (a server: its ``max_k``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retriever.extras import require_extra

require_extra("haystack", "haystack", feature="retriever.integrations.haystack")

from haystack import Document, component, default_from_dict, default_to_dict  # noqa: E402
from haystack.document_stores.errors import DuplicateDocumentError  # noqa: E402
from haystack.document_stores.types import DuplicatePolicy  # noqa: E402
from haystack.errors import FilterError  # noqa: E402

from retriever.errors import RetrieverError  # noqa: E402
from retriever.ingest import documents as records  # noqa: E402
from retriever.integrations import condition, where_list  # noqa: E402
from retriever.search.results import Hit  # noqa: E402

COMPARISONS = {"==": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
LIST_LIMIT = 10_000  # documents filter_documents returns at most (over a server: the server's max_k)
LIST_QUERY = "document"  # any text: a dense search with k >= the matches returns them all, whatever the query


class RetrieverDocumentStore:
    """A Haystack ``DocumentStore`` over a ``Retriever`` or a ``Client``; ``search_options`` apply to every search."""

    def __init__(self, searcher: Any, **search_options: Any) -> None:
        self.searcher = searcher
        self.search_options = search_options

    @classmethod
    def create(cls, index_dir: str | Path, model: str | None = None, search_options: dict[str, Any] | None = None,
               **options: Any) -> RetrieverDocumentStore:
        """An empty store in a new index at ``index_dir``; ``options`` as ``Retriever.create`` takes them."""
        from retriever.retriever import Retriever

        return cls(Retriever.create(index_dir, model=model, **options), **(search_options or {}))

    # serialisation (a pipeline's YAML): the index folder or the server's URL ------------------------------------
    def to_dict(self) -> dict[str, Any]:
        url = getattr(self.searcher, "url", None)
        where = {"url": url} if url is not None else {"index_dir": str(self.searcher.layout.root)}
        return default_to_dict(self, **where, search_options=self.search_options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrieverDocumentStore:
        params = dict(data.get("init_parameters", {}))
        if "url" in params:
            from retriever.client import Client

            searcher = Client(params.pop("url"))
        else:
            from retriever.retriever import Retriever

            searcher = Retriever.load(params.pop("index_dir"))
        return cls(searcher, **params.get("search_options", {}))

    # the DocumentStore protocol ----------------------------------------------------------------------------------
    def count_documents(self) -> int:
        return len(self.searcher)

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write documents in one commit; ``NONE`` and ``OVERWRITE`` replace a document with the same id."""
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise ValueError("write_documents takes a list of haystack Documents")
        if policy in (DuplicatePolicy.FAIL, DuplicatePolicy.SKIP):
            existing = [d.id for d in documents if self.searcher.get(d.id) is not None]
            if existing and policy == DuplicatePolicy.FAIL:
                raise DuplicateDocumentError(f"documents with ids {', '.join(existing)} already exist")
            documents = [d for d in documents if d.id not in set(existing)]
        if documents:
            self.searcher.add([records.Document(doc_id=d.id, text=d.content or "", metadata=dict(d.meta))
                               for d in documents])
        return len(documents)

    def delete_documents(self, document_ids: list[str]) -> None:
        if document_ids:
            self.searcher.remove(list(document_ids))

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """The documents matching ``filters`` (all of them without), in no particular order."""
        count = self.count_documents()
        if count == 0:
            return []
        where = where_of_filters(filters) if filters else []
        hits = self.searcher.search(LIST_QUERY, k=min(count, LIST_LIMIT), mode="dense", where=where or None)
        return [_document(hit) for hit in hits]

    # searching ------------------------------------------------------------------------------------------------------
    def search(self, query: str, top_k: int, filters: dict[str, Any] | None = None, **options: Any) -> list[Document]:
        """The ``top_k`` best documents for ``query``, each with its score."""
        options = {**self.search_options, **options}
        if filters:
            options["where"] = [*where_list(options.get("where")), *where_of_filters(filters)]
        return [_document(hit, scored=True) for hit in self.searcher.search(query, k=top_k, **options)]


@component
class HaystackRetriever:
    """A pipeline component: ``run(query)`` returns ``{"documents": [...]}``, best first, each with its score."""

    def __init__(self, document_store: RetrieverDocumentStore, top_k: int = 10, filters: dict[str, Any] | None = None,
                 **search_options: Any) -> None:
        if not isinstance(document_store, RetrieverDocumentStore):
            raise RetrieverError("HaystackRetriever needs a RetrieverDocumentStore")
        if top_k < 1:
            raise RetrieverError("top_k must be at least 1")
        self.document_store = document_store
        self.top_k = top_k
        self.filters = filters
        self.search_options = search_options

    @component.output_types(documents=list[Document])
    def run(self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None) -> dict[str, Any]:
        found = self.document_store.search(query, top_k or self.top_k, filters or self.filters, **self.search_options)
        return {"documents": found}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store.to_dict(), top_k=self.top_k,
                               filters=self.filters, **self.search_options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HaystackRetriever:
        params = data["init_parameters"]
        params["document_store"] = RetrieverDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, data)


def where_of_filters(filters: dict[str, Any]) -> list[str]:
    """Haystack filters as ``where`` conditions (comparisons joined by AND, what the engine has)."""
    if "conditions" in filters or filters.get("operator") in ("AND", "OR", "NOT"):
        if "operator" not in filters or "conditions" not in filters:
            raise FilterError("a logical filter needs 'operator' and 'conditions'")
        if filters["operator"] != "AND":
            raise FilterError(f"filter operator {filters['operator']!r} is not supported; only AND")
        return [c for item in filters["conditions"] for c in where_of_filters(item)]
    missing = [key for key in ("field", "operator", "value") if key not in filters]
    if missing:
        raise FilterError(f"a comparison filter needs 'field', 'operator' and 'value' (missing {', '.join(missing)})")
    operator, field, value = filters["operator"], filters["field"], filters["value"]
    if operator not in COMPARISONS:
        raise FilterError(f"filter operator {operator!r} is not supported; use one of {', '.join(COMPARISONS)}")
    if field == "id":
        field = "doc_id"
    elif field.startswith("meta."):
        field = field.removeprefix("meta.")
    else:
        raise FilterError(f"filter field {field!r} is not supported; use 'id' or 'meta.FIELD'")
    try:
        return [condition(field, COMPARISONS[operator], value)]
    except RetrieverError as exc:
        raise FilterError(str(exc)) from None


def _document(hit: Hit, scored: bool = False) -> Document:
    return Document(id=hit.doc_id, content=hit.text, meta=dict(hit.metadata), score=hit.score if scored else None)
