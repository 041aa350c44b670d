"""What a search returns: ``Hit``, one result with its passage, offsets and metadata; ``ContextPassage``, a span
of a document for a prompt (``Retriever.context_for``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from retriever.index.store import StoredPassage
from retriever.search.explain import Explanation


class _MarkedOnRead:
    """``Hit.snippet`` and ``Hit.highlights``: worked out on first read, from the query ``annotate`` left with the hit.

    Marking ten long abstracts costs ~1.2 ms (a regular expression and a stemmer call per hit), a sixth of a dense
    search on SciFact; a RAG pipeline that reads only ``text`` never pays it. Reading either field (or
    ``to_dict``, ``repr``, ``==``) marks the hit once; a value given to ``Hit(...)`` or assigned is kept as it is.
    """

    def __init__(self, default: str | tuple[()], empty: Callable[[], Any]) -> None:
        self.default, self.empty = default, empty  # an immutable default for the dataclass, a fresh value per hit

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = name  # kept in the hit's __dict__ under its own name, where pydantic's validation writes it

    def __get__(self, hit: Any, owner: type | None = None) -> Any:
        if hit is None:
            return self.default  # the dataclass field's default
        if self.slot not in hit.__dict__:
            mark = hit.__dict__.get("_mark")
            if mark is not None:  # forgotten only once marked: a second thread reading now marks alike, never empty
                mark(hit)  # sets both fields
                hit.__dict__.pop("_mark", None)
            if self.slot not in hit.__dict__:
                hit.__dict__[self.slot] = self.empty()
        return hit.__dict__[self.slot]

    def __set__(self, hit: Any, value: Any) -> None:
        hit.__dict__[self.slot] = self.empty() if value is self.default else value


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
    snippet: str = _MarkedOnRead("", str)  # type: ignore[assignment]
    highlights: list[dict[str, int]] = _MarkedOnRead((), list)  # type: ignore[assignment]
    explanation: Explanation | None = None

    def __post_init__(self) -> None:
        if isinstance(self.explanation, dict):  # a hit rebuilt from JSON (the client)
            self.explanation = Explanation(**self.explanation)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def mark_on_read(self, mark: Callable[[Hit], None]) -> None:
        """Have ``mark(self)`` set ``snippet`` and ``highlights`` when one of them is first read."""
        self.__dict__.pop("snippet", None)
        self.__dict__.pop("highlights", None)
        self.__dict__["_mark"] = mark

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
