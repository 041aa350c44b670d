"""Request and response bodies of the HTTP API (pydantic, so that ``/docs`` shows them).

Responses are the package's own ``Hit``, ``Document`` and ``Verdict`` dataclasses, so they carry
the same fields as ``retriever search --json`` and the client rebuilds the same objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from retriever.search.filters import MAX_CONDITION_CHARS, MAX_CONDITIONS
from retriever.search.results import ContextPassage, Hit

STRICT = ConfigDict(extra="forbid", strict=True)  # JSON types as declared: no true, "5" or 5.5 for an integer

# The schema states what the engine refuses (blank text, a malformed filter, a record without an id), so
# that a client generated from it never sends a request the server turns down; the engine's own checks
# still answer such a request (400, with the engine's one-line reason).
NOT_BLANK = r"\S"  # some character that is not whitespace
FILTER_PATTERN = (  # retriever.search.filters.CONDITION, and a value that is not empty or an operator once unquoted
    r"^\s*[^\W\d][\w.-]*\s*(?:>=|<=|!=|=|>|<|~)\s*(?:[^\s'\"<>=!~]|['\"]+(?:[^\s'\"<>=!~]|\s+\S))"
)
_ID = {"anyOf": [{"type": "string", "pattern": NOT_BLANK}, {"type": "integer"}]}
RECORD_SCHEMA = {  # retriever.ingest.documents.document_from_record: '_id', else 'id' when '_id' is null or ""
    "type": "object",
    "properties": {"text": {"type": ["string", "null"]}, "title": {"type": ["string", "null"]}},
    "anyOf": [
        {"required": ["_id"], "properties": {"_id": _ID}},
        {"required": ["id"], "properties": {"id": _ID, "_id": {"enum": [None, ""]}}},
    ],
}


def _integral(value: Any) -> Any:
    """JSON Schema's "integer" is a number without a fraction, so 5.0 is one; true and "5" are not."""
    return int(value) if type(value) is float and value.is_integer() else value


PositiveInteger = Annotated[int, Field(ge=1), BeforeValidator(_integral)]
Count = Annotated[int, Field(ge=0), BeforeValidator(_integral)]
Filter = Annotated[str, Field(json_schema_extra={"pattern": FILTER_PATTERN, "maxLength": MAX_CONDITION_CHARS})]
Filters = Annotated[list[Filter], Field(json_schema_extra={"maxItems": MAX_CONDITIONS})] | Filter | None


class ErrorBody(BaseModel):
    """Every error answer: one line, no traceback, no server path."""

    error: str


class SearchSettings(BaseModel):
    """How to search; ``None`` keeps the index's defaults (hybrid, convex fusion, alpha 0.5).

    ``k`` and ``rerank`` are at most the server's ``max_k`` (100 by default; ``/openapi.json`` says the
    value this server was started with).
    """

    model_config = STRICT

    k: PositiveInteger | None = Field(None, description="Results per query (default: 10, or the server's maximum "
                                      "if lower).")
    passages: bool = Field(False, description="Raw passages instead of one result per document.")
    mode: Literal["dense", "lexical", "hybrid"] | None = None
    fusion: Literal["rrf", "convex"] | None = None
    alpha: float | None = Field(None, ge=0, le=1, description="Convex fusion: weight of the dense side.")
    where: Filters = Field(
        None, description="Filters such as 'year>=2020' or 'source~guides/*' (a source relative to the corpus root).")
    rerank: Count = Field(0, description="Rerank this many top candidates with the model's learned metric "
                        "(at most the server's maximum k).")
    diversity: float | None = Field(None, ge=0, le=1, description="Maximal marginal relevance lambda (1: pure "
                                    "relevance, lower: fewer near-copies); unset: no MMR.")
    fetch_k: PositiveInteger | None = Field(
        None, description="Candidates MMR chooses from (default max(4k, 20); below k counts as k; at most the "
        "server's maximum k times 4).")
    context: Count | Literal["document"] | None = Field(
        None, description="Widen each hit's passage by this many neighbouring passages on each side, or "
        "'document': the whole document when it has at most context_tokens tokens.")
    context_tokens: PositiveInteger = Field(
        2000, description="context 'document': the most tokens a document may have.")
    explain: bool = Field(False, description="Give each hit an 'explanation': each side's score, rank and "
                          "normalised value, the fused score, the fusion and the alpha used.")

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
            "context_tokens": self.context_tokens, "explain": self.explain,
        }


class SearchRequest(SearchSettings):
    query: str = Field(min_length=1, json_schema_extra={"pattern": NOT_BLANK})


class BatchSearchRequest(SearchSettings):
    queries: list[Annotated[str, Field(json_schema_extra={"pattern": NOT_BLANK})]]


class ContextRequest(BaseModel):
    """``Retriever.context_for``: the passages a prompt should get, within a token budget."""

    model_config = STRICT

    query: str = Field(min_length=1, json_schema_extra={"pattern": NOT_BLANK})
    max_tokens: PositiveInteger = Field(2000, le=100_000, description="Token budget (the model's tokenizer).")
    k: PositiveInteger = Field(10, description="Passages considered (at most the server's maximum k).")
    context: Count = Field(1, le=100, description="Neighbouring passages added on each side.")
    mode: Literal["dense", "lexical", "hybrid"] | None = None
    fusion: Literal["rrf", "convex"] | None = None
    alpha: float | None = Field(None, ge=0, le=1)
    where: Filters = None

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

    documents: list[Annotated[dict[str, Any], Field(json_schema_extra=RECORD_SCHEMA)]] = Field(
        description="Records: '_id' (or 'id'), 'text', 'title', any other field kept as metadata."
    )

    @field_validator("documents")
    @classmethod
    def integral_ids(cls, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An id of 5.0 is the integer 5 in JSON Schema, so it is the id "5" as 5 is."""
        for record in documents:
            for name in ("_id", "id"):
                if name in record:
                    record[name] = _integral(record[name])
        return documents


class RemoveRequest(BaseModel):
    model_config = STRICT

    ids: list[Annotated[str, Field(json_schema_extra={"pattern": NOT_BLANK})]]


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

    query: str = Field(min_length=1, json_schema_extra={"pattern": NOT_BLANK})
    doc_id: str = Field(json_schema_extra={"pattern": NOT_BLANK})


class Health(BaseModel):
    status: Literal["ok"] = "ok"
