"""Adapters for RAG frameworks: ``langchain`` (a LangChain retriever) and ``llamaindex``.

Each wraps anything with ``search(query, k=..., **options) -> list[Hit]``: a ``Retriever`` in this
process or a ``Client`` of a server. Reach them as ``r.as_langchain(k=4)`` / ``r.as_llamaindex(k=4)``.
"""

from __future__ import annotations

from typing import Any

from retriever.search.results import Hit


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's metadata for a framework's document: the record's own fields, then where the passage is from."""
    return {
        **hit.metadata,
        "doc_id": hit.doc_id,
        "score": hit.score,
        "title": hit.title,
        "source": hit.source,
        "start": hit.start,
        "end": hit.end,
        "passage_id": hit.passage_id,
    }
