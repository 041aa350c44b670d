"""Request and response bodies of the HTTP API (pydantic, so that ``/docs`` shows them).

Responses are the package's own ``Hit``, ``Document`` and ``Verdict`` dataclasses, so they carry
the same fields as ``retriever search --json`` and the client rebuilds the same objects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from retriever.search.results import ContextPassage, Hit

STRICT = ConfigDict(extra="forbid", strict=True)  # JSON types as declared: no true, "5" or 5.0 for an integer


class ErrorBody(BaseModel):
    """Every error answer: one line, no traceback, no server path."""

    error: str


class SearchSettings(BaseModel):
    """How to search; ``None`` keeps the index's defaults (hybrid, convex fusion, alpha 0.5).

    ``k`` and ``rerank`` are at most the server's ``max_k`` (100 by default; ``/openapi.json`` says the
    value this server was started with).
    """

    model_config = STRICT

    k: int | None = Field(None, ge=1, description="Results per query (default: 10, or the server's maximum if lower).")
    passages: bool = Field(False, description="Raw passages instead of one result per document.")
    mode: Literal["dense", "lexical", "hybrid"] | None = None
    fusion: Literal["rrf", "convex"] | None = None
    alpha: float | None = Field(None, ge=0, le=1, description="Convex fusion: weight of the dense side.")
    where: list[str] | str | None = Field(None, description="Filters such as 'year>=2020' or 'source~guides/*'.")
    rerank: int = Field(0, ge=0, description="Rerank this many top candidates with the model's learned metric "
                        "(at most the server's maximum k).")
    diversity: float | None = Field(None, ge=0, le=1, description="Maximal marginal relevance lambda (1: pure "
                                    "relevance, lower: fewer near-copies); unset: no MMR.")
    fetch_k: int | None = Field(None, ge=1, description="Candidates MMR chooses from (default max(4k, 20); at most "
                                "the server's maximum k times 4).")
    context: int | Literal["document"] | None = Field(
        None, description="Widen each hit's passage by this many neighbouring passages on each side, or "
        "'document': the whole document when it has at most context_tokens tokens.")
    context_tokens: int = Field(2000, ge=1, description="context 'document': the most tokens a document may have.")

    def filters(self) -> list[str]:
        if self.where is None:
            return []
        return [self.where] if isinstance(self.where, str) else list(self.where)

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``Retriever.search`` / ``search_many``."""
        return {
            "k": self.k, "passages": self.passages, "mode": self.mode, "fusion": self.fusion,
            "alpha": self.alpha, "where": self.filters(), "rerank": self.rerank,
            "diversity": self.diversity, "fetch_k": self.fetch_k, "context": self.context,
            "context_tokens": self.context_tokens,
        }


class SearchRequest(SearchSettings):
    query: str = Field(min_length=1)


class BatchSearchRequest(SearchSettings):
    queries: list[str]


class ContextRequest(BaseModel):
    """``Retriever.context_for``: the passages a prompt should get, within a token budget."""

    model_config = STRICT

    query: str = Field(min_length=1)
    max_tokens: int = Field(2000, ge=1, le=100_000, description="Token budget (the model's tokenizer).")
    k: int = Field(10, ge=1, description="Passages considered (at most the server's maximum k).")
    context: int = Field(1, ge=0, le=100, description="Neighbouring passages added on each side.")
    mode: Literal["dense", "lexical", "hybrid"] | None = None
    fusion: Literal["rrf", "convex"] | None = None
    alpha: float | None = Field(None, ge=0, le=1)
    where: list[str] | str | None = None

    def filters(self) -> list[str]:
        if self.where is None:
            return []
        return [self.where] if isinstance(self.where, str) else list(self.where)


class ContextResponse(BaseModel):
    passages: list[ContextPassage]


class SearchResponse(BaseModel):
    hits: list[Hit]


class BatchSearchResponse(BaseModel):
    results: list[list[Hit]]


class AddRequest(BaseModel):
    model_config = STRICT

    documents: list[dict[str, Any]] = Field(
        description="Records: '_id' (or 'id'), 'text', 'title', any other field kept as metadata."
    )


class RemoveRequest(BaseModel):
    model_config = STRICT

    ids: list[str]


class WriteResponse(BaseModel):
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    passages_encoded: int = 0
    duplicate_ids: list[str] = []
    seconds: float = 0.0
    documents: int = Field(description="Documents in the index after the write.")


class VerifyRequest(BaseModel):
    model_config = STRICT

    query: str = Field(min_length=1)
    doc_id: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
