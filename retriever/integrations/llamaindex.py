"""LlamaIndex interfaces: a retriever (``as_retriever(r)``) and a vector store (``RetrieverVectorStore``).

Needs the ``llamaindex`` extra (llama-index-core). Both search a ``Retriever`` in this process or a ``Client``
of a server, with the index's own model (LlamaIndex's embeddings are neither needed nor used).

- ``LlamaIndexRetriever``: each node is a ``TextNode`` holding the best passage, with its character offsets
  in the document, the document as its source node (``node.ref_doc_id``) and the same metadata as the
  LangChain adapter.
- ``RetrieverVectorStore``: a ``BasePydanticVectorStore`` holding one document per node (the node's id is the
  document id; the node itself is kept in its metadata, as LlamaIndex's own stores keep it), queried by text,
  with metadata filters and the default, hybrid, sparse and MMR modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from retriever.extras import require_extra

require_extra("llamaindex", "llama_index.core", feature="retriever.integrations.llamaindex")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    BaseNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import (  # noqa: E402
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402

from retriever.errors import RetrieverError  # noqa: E402
from retriever.ingest import documents as records  # noqa: E402
from retriever.integrations import condition, hit_metadata, where_list  # noqa: E402
from retriever.search.results import Hit  # noqa: E402


def as_retriever(searcher: Any, k: int = 4, **search_options: Any) -> LlamaIndexRetriever:
    """A LlamaIndex ``BaseRetriever`` over a ``Retriever`` or a ``Client``; ``search_options`` for every search.

    A function here, not a method of ``Retriever``: the engine knows nothing of the frameworks above it.
    """
    return LlamaIndexRetriever(searcher, k=k, **search_options)


class LlamaIndexRetriever(BaseRetriever):
    """Searches a ``Retriever`` or a ``Client``; ``search_options`` (mode, fusion, alpha, where, ...) pass through."""

    def __init__(self, searcher: Any, k: int = 4, **search_options: Any) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        super().__init__()
        self.searcher = searcher
        self.k = k
        self.search_options = search_options

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.searcher.search(query_bundle.query_str, k=self.k, **self.search_options)
        return [NodeWithScore(node=_node(hit), score=hit.score) for hit in hits]


def _node(hit: Hit) -> TextNode:
    return TextNode(
        id_=f"{hit.doc_id}#{hit.passage_id}",
        text=hit.text,
        metadata=hit_metadata(hit),
        start_char_idx=hit.start,
        end_char_idx=hit.end,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
    )


OPERATORS = {FilterOperator.EQ: "=", FilterOperator.NE: "!=", FilterOperator.GT: ">", FilterOperator.GTE: ">=",
             FilterOperator.LT: "<", FilterOperator.LTE: "<="}
MODES = {VectorStoreQueryMode.DEFAULT: {}, VectorStoreQueryMode.HYBRID: {"mode": "hybrid"},
         VectorStoreQueryMode.SPARSE: {"mode": "lexical"}, VectorStoreQueryMode.TEXT_SEARCH: {"mode": "lexical"},
         VectorStoreQueryMode.MMR: {}}
DEFAULT_MMR_LAMBDA = 0.5  # LlamaIndex's own default for mmr_threshold
DELETE_BATCH = 100  # documents found and removed per round by delete(ref_doc_id)


class RetrieverVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over a ``Retriever`` or a ``Client``; ``search_options`` apply to every query.

    Queries go by text (``is_embedding_query`` is False), so a ``VectorStoreIndex`` over it encodes nothing
    itself. ``RetrieverVectorStore.create(path, model=...)`` makes an empty index.
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    flat_metadata: bool = False
    _searcher: Any = PrivateAttr()
    _search_options: dict[str, Any] = PrivateAttr()

    def __init__(self, searcher: Any, **search_options: Any) -> None:
        super().__init__()
        self._searcher = searcher
        self._search_options = search_options

    @classmethod
    def create(cls, index_dir: Any, model: str | None = None, search_options: dict[str, Any] | None = None,
               **options: Any) -> RetrieverVectorStore:
        """An empty store in a new index at ``index_dir``; ``options`` as ``Retriever.create`` takes them,
        ``search_options`` (mode, fusion, alpha, where, ...) for every search of the store."""
        from retriever.retriever import Retriever

        return cls(Retriever.create(index_dir, model=model, **options), **(search_options or {}))

    @classmethod
    def class_name(cls) -> str:
        return "RetrieverVectorStore"

    @property
    def client(self) -> Any:
        """The ``Retriever`` or ``Client`` searched."""
        return self._searcher

    # writing -------------------------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Add nodes (or replace those whose id exists) in one commit; their embeddings, if any, are not used."""
        documents = [records.Document(doc_id=node.node_id, text=node.get_content(metadata_mode=MetadataMode.NONE),
                                      metadata=node_to_metadata_dict(node, remove_text=True)) for node in nodes]
        if documents:
            self._searcher.add(documents)
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every node of the source document ``ref_doc_id``."""
        where = [condition("ref_doc_id", "=", ref_doc_id)]
        removed: set[str] = set()
        while True:  # each round removes what it found, so the next finds the rest
            found = {hit.doc_id for hit in self._searcher.search(ref_doc_id, k=DELETE_BATCH, mode="dense",
                                                                 where=where)}
            if not found:
                return
            if found & removed:  # a searcher that does not see its own removals would loop for ever
                raise RetrieverError(f"nodes of {ref_doc_id!r} are still found after their removal")
            self._searcher.remove(sorted(found))
            removed |= found

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        """Remove nodes by id (``filters`` are not supported here)."""
        if filters is not None or node_ids is None:
            raise RetrieverError("delete_nodes takes node_ids; filters are not supported")
        if node_ids:
            self._searcher.remove(list(node_ids))

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                  **kwargs: Any) -> list[BaseNode]:
        """The stored nodes with these ids, in that order; ids not in the index are left out."""
        if filters is not None or node_ids is None:
            raise RetrieverError("get_nodes takes node_ids; filters are not supported")
        found = (self._searcher.get(node_id) for node_id in node_ids)
        return [_stored_node(doc.doc_id, doc.metadata, doc.text) for doc in found if doc is not None]

    # searching ---------------------------------------------------------------------------------------------------
    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` best nodes for ``query.query_str``."""
        if not query.query_str:
            raise RetrieverError("RetrieverVectorStore searches by text: the query needs query_str")
        if query.doc_ids or query.node_ids:
            raise RetrieverError("RetrieverVectorStore does not restrict a query to doc_ids or node_ids; "
                                 "use metadata filters")
        if query.mode not in MODES:
            asked = getattr(query.mode, "value", query.mode)  # the enum, or its value as a string
            raise RetrieverError(f"query mode {asked!r} is not supported; use one of "
                                 f"{', '.join(mode.value for mode in MODES)}")
        options = {**self._search_options, **MODES[query.mode], **kwargs}
        if query.mode == VectorStoreQueryMode.HYBRID and query.alpha is not None:
            options.update(fusion="convex", alpha=query.alpha)  # both: 1 is all dense, 0 all lexical
        if query.mode == VectorStoreQueryMode.MMR:
            options["diversity"] = DEFAULT_MMR_LAMBDA if query.mmr_threshold is None else query.mmr_threshold
        if query.filters is not None:
            options["where"] = [*where_list(options.get("where")), *where_of_filters(query.filters)]
        hits = self._searcher.search(query.query_str, k=query.similarity_top_k, **options)
        return VectorStoreQueryResult(nodes=[_stored_node(hit.doc_id, hit.metadata, hit.text) for hit in hits],
                                      similarities=[hit.score for hit in hits], ids=[hit.doc_id for hit in hits])


def where_of_filters(filters: MetadataFilters) -> list[str]:
    """LlamaIndex metadata filters as ``where`` conditions: comparisons joined by AND (what the engine has)."""
    conditions: list[str] = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            conditions += where_of_filters(item)
            continue
        if item.operator not in OPERATORS:
            raise RetrieverError(f"filter operator {item.operator.value!r} is not supported; use one of "
                                 f"{', '.join(op.value for op in OPERATORS)}")
        conditions.append(condition(item.key, OPERATORS[item.operator], item.value))
    if len(conditions) > 1 and filters.condition not in (None, FilterCondition.AND):
        raise RetrieverError(f"filters joined by {filters.condition.value!r} are not supported; only 'and'")
    return conditions


def _stored_node(node_id: str, metadata: dict[str, Any], text: str) -> BaseNode:
    """The node as it was added (from its metadata), holding ``text``; a document not added as a node becomes one."""
    if "_node_content" in metadata:
        return metadata_dict_to_node(metadata, text=text)
    return TextNode(id_=node_id, text=text, metadata=dict(metadata))


__all__ = ["LlamaIndexRetriever", "RetrieverVectorStore", "MetadataFilter", "where_of_filters"]
