"""What a search returns: ``Hit``, one result with its passage, offsets and metadata; ``ContextPassage``, a span
of a document for a prompt (``Retriever.context_for``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from retriever.index.store import StoredPassage
from retriever.search.explain import Explanation


@dataclass
class Hit:
    """One search result: a document (or passage) with its score and best-matching passage.

    ``text`` is the passage (with its neighbours when a search asks for context), ``start``/``end`` its
    character offsets in the document. ``snippet`` is the best-matching sentence(s) of the passage, and
    ``highlights`` the ``{"start", "end"}`` spans in ``text`` of the words matching the query's terms.
    """

    doc_id: str
    score: float
    text: str
    title: str = ""
    source: str | None = None
    start: int = 0
    end: int = 0
    passage_id: int = -1
    metadata: dict[str, Any] = field(default_factory=dict)
    snippet: str = ""
    highlights: list[dict[str, int]] = field(default_factory=list)
    explanation: Explanation | None = None

    def __post_init__(self) -> None:
        if isinstance(self.explanation, dict):  # a hit rebuilt from JSON (the client)
            self.explanation = Explanation(**self.explanation)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_passage(cls, passage: StoredPassage, score: float) -> Hit:
        return cls(
            doc_id=passage.doc_id,
            score=float(score),
            text=passage.text,
            title=passage.title,
            source=passage.source,
            start=passage.start,
            end=passage.end,
            passage_id=passage.id,
            metadata=passage.metadata,
        )


@dataclass
class ContextPassage:
    """A span of a document for a prompt, with where it comes from."""

    text: str
    doc_id: str
    title: str
    start: int
    end: int
    citation: str
    score: float = 0.0
    source: str | None = None
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def citation(doc_id: str, title: str, start: int, end: int) -> str:
    """``"Title" (doc-id, characters 120-890)``: enough for a reader to find the text."""
    named = f'"{title}" ({doc_id}' if title else f"({doc_id}"
    return f"{named}, characters {start}-{end})"
