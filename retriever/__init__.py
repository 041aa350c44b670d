"""retriever: semantic document retrieval with twin (Siamese) transformer encoders.

``from retriever import Retriever`` is all a RAG pipeline needs. Heavy modules load lazily
so that importing the package (and ``retriever --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Retriever", "Hit", "ContextPassage", "Document", "RetrieverError"]

if TYPE_CHECKING:
    from retriever.errors import RetrieverError
    from retriever.ingest.documents import Document
    from retriever.retriever import Retriever
    from retriever.search.results import ContextPassage, Hit

_HOMES = {
    "Retriever": "retriever.retriever",
    "Hit": "retriever.search.results",
    "ContextPassage": "retriever.search.results",
    "Document": "retriever.ingest.documents",
    "RetrieverError": "retriever.errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'retriever' has no attribute {name!r}")
