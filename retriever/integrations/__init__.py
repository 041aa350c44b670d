"""Adapters for RAG frameworks: ``langchain`` (a LangChain retriever) and ``llamaindex``.

Each wraps anything with ``search(query, k=..., **options) -> list[Hit]``: a ``Retriever`` in this
process or a ``Client`` of a server. Reach them as ``langchain.as_retriever(r, k=4)`` (and ``llamaindex.``):
functions of the adapters, not methods of ``Retriever``, so that imports run one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from retriever.errors import RetrieverError
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
        "snippet": hit.snippet,  # the best-matching sentence(s), for a citation a person can check
        "highlights": hit.highlights,  # spans of the query's terms in page_content / the node's text
    }


def where_of(filters: Any) -> list[str]:
    """A framework's metadata filter as ``where`` conditions: a mapping of fields to the values they must equal,
    or conditions already in the engine's syntax (``"year>=2020"``, or a list of them)."""
    if isinstance(filters, str):
        return [filters]
    if isinstance(filters, dict):
        return [condition(field, "=", value) for field, value in filters.items()]
    if isinstance(filters, (list, tuple)) and all(isinstance(f, str) for f in filters):
        return list(filters)
    raise RetrieverError(f"a filter is a mapping of fields to values or conditions such as 'year>=2020', "
                         f"not {type(filters).__name__}")


def condition(field: str, op: str, value: Any) -> str:
    """One ``where`` condition; a value must be text, a number or a boolean (what the engine compares)."""
    if isinstance(value, bool):
        return f"{field}{op}{str(value).lower()}"
    if isinstance(value, (str, int, float)):
        return f"{field}{op}{value}"
    raise RetrieverError(f"filter on {field!r}: the value must be text, a number or a boolean, "
                         f"not {type(value).__name__}")


def where_list(where: str | Sequence[str] | None) -> list[str]:
    """``where`` as search options hold it (one condition, several, or none) as a list, to add conditions to."""
    return [] if where is None else [where] if isinstance(where, str) else list(where)
