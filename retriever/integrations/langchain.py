"""A LangChain retriever: ``retriever.invoke(query)`` returns ``Document``s with metadata and score.

Needs the ``langchain`` extra (langchain-core). Each ``Document`` holds the best passage as
``page_content`` and the document id as ``id``; ``metadata`` has the record's own fields plus
``doc_id``, ``score``, ``title``, ``source``, ``start``/``end`` (offsets in the document) and
``passage_id``, what a prompt needs to cite its sources.
"""

from __future__ import annotations

from typing import Any

from retriever.extras import require_extra

require_extra("langchain", "langchain_core", feature="retriever.integrations.langchain")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402

from retriever.integrations import hit_metadata  # noqa: E402


class LangChainRetriever(BaseRetriever):
    """Searches a ``Retriever`` or a ``Client``; ``search_options`` (mode, fusion, alpha, where, ...) pass through."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Any = Field(description="A retriever.Retriever or retriever.client.Client.")
    k: int = Field(4, ge=1, description="Documents per query.")
    search_options: dict[str, Any] = Field(default_factory=dict)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.searcher.search(query, k=self.k, **self.search_options)
        return [Document(page_content=hit.text, metadata=hit_metadata(hit), id=hit.doc_id) for hit in hits]
