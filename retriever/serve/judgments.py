"""The judgments endpoints: grade a hit, list the grades, and how well the served engine ranks what was graded.

``POST /judgments`` stores one grade (refused with 403 under ``--read-only``), ``GET /judgments`` lists them,
``GET /judgments/summary`` says how many queries and judgments there are and the nDCG@10 of the engine as it
is served (``retriever.eval.judged``). The summary is kept per (index version, judgments revision), and the
rankings per index version, so the page can ask for it after every grade.
"""

# no ``from __future__ import annotations``: FastAPI reads the routes' annotations, and the query parameter's
# bound (the server's limit) is a local of judgments_router, which a string annotation could not name

import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, Field

from retriever.eval.judged import JudgedScorer
from retriever.judgments import JudgmentStore
from retriever.judgments.store import query_text
from retriever.serve.limits import Limits
from retriever.serve.models import NOT_BLANK, STRICT, _integral
from retriever.serve.served_index import ServedIndex

Grade = Annotated[int, Field(ge=0, le=2, description="0 not relevant, 1 relevant, 2 highly relevant."),
                  BeforeValidator(_integral)]


class JudgeRequest(BaseModel):
    model_config = STRICT

    query: str = Field(min_length=1, json_schema_extra={"pattern": NOT_BLANK},
                       description="The query as searched (surrounding whitespace is ignored).")
    doc_id: str = Field(min_length=1, json_schema_extra={"pattern": NOT_BLANK})
    grade: Grade


class JudgmentBody(BaseModel):
    query: str
    doc_id: str
    grade: int = Field(ge=0, le=2)
    judged_at: float = Field(description="Unix time of the latest grade.")


class JudgmentList(BaseModel):
    judgments: list[JudgmentBody]


class QueryScore(BaseModel):
    judged: int = Field(description="Documents judged for this query.")
    ndcg_at_10: float | None = Field(description="nDCG@10 of the served engine on this query (null: nothing "
                                     "judged relevant).")


class JudgmentSummary(BaseModel):
    queries: int = Field(description="Queries with at least one judgment.")
    judgments: int
    ndcg_at_10: float | None = Field(description="Mean nDCG@10 of the served engine (its default mode, fusion, "
                                     "alpha) over the judged queries with something relevant; null if none.")
    query: QueryScore | None = Field(None, description="The query asked about, if any.")


def judgments_router(index: ServedIndex, limits: Limits, check_writable: Callable[[], None],
                     errors: Callable[..., dict[int | str, dict[str, Any]]]) -> APIRouter:
    """The routes, bound to the served index, the server's limits and its read-only switch."""
    router = APIRouter(tags=["judgments"])
    store = JudgmentStore(index.index_dir)
    summaries = SummaryCache(store)
    QueryText = Annotated[str | None, Query(min_length=1, max_length=limits.max_query_chars, pattern=NOT_BLANK,
                                            description="One query's judgments only.")]

    @router.post("/judgments", response_model=JudgmentBody, responses=errors(400, 403))
    def judge(request: JudgeRequest) -> dict[str, Any]:
        """Grade a document for a query; the latest grade of a (query, document) pair replaces the earlier."""
        check_writable()
        limits.check_queries([request.query, request.doc_id])
        return store.judge(request.query, request.doc_id, request.grade).to_dict()

    @router.get("/judgments", response_model=JudgmentList, responses=errors(400))
    def judgments(query: QueryText = None) -> dict[str, Any]:
        """The judgments given on this index (or on one query), oldest first."""
        return {"judgments": [j.to_dict() for j in store.all(query)]}

    @router.get("/judgments/summary", response_model=JudgmentSummary, responses=errors(400))
    def summary(query: QueryText = None) -> dict[str, Any]:
        """Judged queries and judgments, and the nDCG@10 of the engine as served on them (and on ``query``)."""
        with index.reading() as reader:
            return summaries.get(reader, query)

    return router


MAX_QUERIES_KEPT = 1_000  # per-query scores kept between two writes


class SummaryCache:
    """The summary of the latest (index version, judgments revision), and the per-query scores asked for."""

    def __init__(self, store: JudgmentStore) -> None:
        self.store = store
        self.scorer = JudgedScorer()
        self._lock = threading.Lock()
        self._key: tuple[str, int] | None = None
        self._overall: dict[str, Any] = {}
        self._queries: dict[str, dict[str, Any]] = {}
        self._qrels: dict[str, dict[str, int]] = {}

    def get(self, reader: Any, query: str | None) -> dict[str, Any]:
        with self._lock:
            key = (reader.manifest.generation, self.store.revision())
            if key != self._key:
                self._qrels = self.store.qrels()
                self._overall = self.scorer.summary(reader, self._qrels).to_dict()
                self._key, self._queries = key, {}
            if len(self._queries) > MAX_QUERIES_KEPT:
                self._queries = {}
            if query is None:
                return {**self._overall, "query": None}
            text = query_text(query)
            if text not in self._queries:
                judged = self._qrels.get(text, {})
                score = self.scorer.score(reader, self._qrels, [text]) if judged else None
                self._queries[text] = {"judged": len(judged), "ndcg_at_10": score}
            return {**self._overall, "query": self._queries[text]}
