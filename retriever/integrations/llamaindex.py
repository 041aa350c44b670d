"""A LlamaIndex retriever: ``retriever.retrieve(query)`` returns ``NodeWithScore``s.

Needs the ``llamaindex`` extra (llama-index-core). Each node is a ``TextNode`` holding the best
passage, with its character offsets in the document, the document as its source node
(``node.ref_doc_id``) and the same metadata as the LangChain adapter.
"""

from __future__ import annotations

from typing import Any

from retriever.extras import require_extra

require_extra("llamaindex", "llama_index.core", feature="retriever.integrations.llamaindex")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode  # noqa: E402

from retriever.integrations import hit_metadata  # noqa: E402
from retriever.search.results import Hit  # noqa: E402


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
