"""The HTTP API over one index: ``create_app(index_dir)`` returns a FastAPI app for uvicorn.

Endpoints (``/docs`` has the OpenAPI page): ``POST /search``, ``POST /search/batch``, ``POST /context``,
``POST /documents`` (add or update), ``POST /documents/delete`` (several ids), ``DELETE /documents/{id}``,
``GET /documents/{id}``, ``POST /verify``, ``POST /judgments``, ``GET /judgments``, ``GET /judgments/summary``
(``serve.judgments``), ``GET /info`` and ``GET /health`` (the one endpoint open
without the API key). Searches run on the threadpool; writes on the index's own writer thread.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi

from retriever.errors import RetrieverError
from retriever.ingest.documents import Document
from retriever.search.filters import MAX_CONDITION_CHARS, parse_condition
from retriever.search.results import Hit
from retriever.serve.auth import BearerTokenAuth
from retriever.serve.body_limit import BodySizeLimit
from retriever.serve.errors import CatchAll, Redactor, RequestChecks, install_error_handlers
from retriever.serve.judgments import judgments_router
from retriever.serve.limits import FETCH_PER_K, Limits, RequestRejected
from retriever.serve.models import (
    AddRequest,
    BatchSearchRequest,
    BatchSearchResponse,
    ContextRequest,
    ContextResponse,
    ErrorBody,
    Health,
    RemoveRequest,
    SearchRequest,
    SearchResponse,
    SearchSettings,
    VerifyRequest,
    WriteResponse,
)
from retriever.serve.page import page_router
from retriever.serve.served_index import ServedIndex
from retriever.verification.verdict import Verdict

DEFAULT_K = 10  # as Retriever.search

_REASONS = {
    400: "Bad request: malformed JSON or HTTP, a bad filter, an option the index cannot serve.",
    401: "Missing or wrong API key (Authorization: Bearer KEY).",
    403: "The server is read-only.",
    404: "No such document.",
    413: "Request body over the limit.",
    422: "A field of the wrong type, out of range or over a limit.",
    429: "Too many writes queued; retry later.",
    500: "Internal error (the server's log has the details).",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route for OpenAPI: each ``{"error": "one line"}``."""
    common = (400, 401, 413, 422, 500)  # 400 too: malformed HTTP, whatever the route
    return {code: {"model": ErrorBody, "description": _REASONS[code]} for code in sorted({*common, *codes})}


def create_app(
    index_dir: str | Path,
    api_key: str | None = None,
    read_only: bool = False,
    limits: Limits | None = None,
    model: str | None = None,
    batch_searches: bool = True,
) -> FastAPI:
    """Load the index (and its model) now, so that a bad index fails before the server listens.

    ``batch_searches`` answers concurrent searches with one batched query encoding (``batching``).
    """
    limits = limits or Limits()
    index = ServedIndex(index_dir, model=model, max_pending_writes=limits.max_pending_writes,
                        batch_searches=batch_searches)
    redact = Redactor([index_dir, index.encoder_path])

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        index.close()  # finishes the queued writes first

    app = FastAPI(
        title="retriever",
        version=_package_version(),
        description="Semantic search over one index: dense, BM25 and hybrid.",
        lifespan=lifespan,
    )
    app.state.index = index
    app.state.limits = limits
    install_error_handlers(app, redact)
    app.add_middleware(CatchAll)  # added first, so it is the innermost: what it answers still passes the others
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    if api_key:
        app.add_middleware(BearerTokenAuth, api_key=api_key)  # added last, so it runs first
    app.add_middleware(RequestChecks)  # ambiguous framing is refused before anything reads the body
    with index.reading() as reader:
        most_reranked = limits.max_k if reader.rerank_head is not None else 0
    app.openapi = lambda: _openapi(app, limits, most_reranked)  # type: ignore[method-assign]
    sources = SourcePaths(index)
    app.include_router(page_router())  # the search page at GET / (serve/page.py)

    def check_search(settings: SearchSettings, queries: list[str]) -> None:
        if settings.k is None:
            settings.k = min(DEFAULT_K, limits.max_k)
        limits.check_k(settings.k, settings.rerank, settings.fetch_k)
        limits.check_queries(queries, settings.filters())
        settings.where = [sources.filter(text) for text in settings.filters()]

    def check_writable() -> None:
        if read_only:
            raise RequestRejected(403, "this server is read-only (started with --read-only)")

    @app.get("/health", response_model=Health, tags=["server"])
    def health() -> dict[str, str]:
        """Liveness; open without the API key, and says nothing about the index."""
        return {"status": "ok"}

    @app.post("/search", response_model=SearchResponse, tags=["search"], responses=_errors(400))
    async def search(request: SearchRequest) -> dict[str, Any]:
        """The k best documents (or passages) for one query."""
        check_search(request, [request.query])
        return {"hits": _hits(await index.search(request.query, request.options()), sources)}

    @app.post("/search/batch", response_model=BatchSearchResponse, tags=["search"], responses=_errors(400))
    def search_batch(request: BatchSearchRequest) -> dict[str, Any]:
        """Several queries at once (encoded as one batch)."""
        check_search(request, request.queries)
        with index.reading() as reader:
            results = reader.search_many(request.queries, **request.options())
        return {"results": [_hits(hits, sources) for hits in results]}

    @app.post("/context", response_model=ContextResponse, tags=["search"], responses=_errors(400))
    def context_for(request: ContextRequest) -> dict[str, Any]:
        """The passages a prompt should get for one query, within a token budget, each with its citation."""
        limits.check_k(request.k)
        limits.check_queries([request.query], request.filters())
        options = {"mode": request.mode, "fusion": request.fusion, "alpha": request.alpha,
                   "where": request.filters()}
        with index.reading() as reader:
            passages = reader.context_for(request.query, max_tokens=request.max_tokens, k=request.k,
                                          context=request.context, **options)
        root = sources.root() if any(p.source for p in passages) else None
        return {"passages": [{**p.to_dict(), "source": sources(p.source, root)} for p in passages]}

    @app.post("/documents", response_model=WriteResponse, tags=["documents"], responses=_errors(400, 403, 429))
    async def add_documents(request: AddRequest) -> dict[str, Any]:
        """Add documents, or replace those whose id exists; all of them or none."""
        check_writable()
        limits.check_documents(len(request.documents))
        report = await index.add(request.documents)
        return {**_report(report), "documents": _count(index)}

    @app.post("/documents/delete", response_model=WriteResponse, tags=["documents"],
              responses=_errors(400, 403, 429))
    async def remove_documents(request: RemoveRequest) -> dict[str, Any]:
        """Remove several documents in one commit; ids not in the index are ignored."""
        check_writable()
        limits.check_ids(len(request.ids))
        removed = await index.remove(request.ids)
        return {"removed": removed, "documents": _count(index)}

    @app.delete("/documents/{doc_id:path}", response_model=WriteResponse, tags=["documents"],
                responses=_errors(400, 403, 404, 429))
    async def remove_document(doc_id: str) -> dict[str, Any]:
        """Remove one document."""
        check_writable()
        removed = await index.remove([doc_id])
        if not removed:
            raise RequestRejected(404, f"no document {doc_id!r}")
        return {"removed": removed, "documents": _count(index)}

    @app.get("/documents/{doc_id:path}", response_model=Document, tags=["documents"], responses=_errors(404))
    def get_document(doc_id: str) -> dict[str, Any]:
        """A stored document: its text put back together from its passages, title, source, metadata."""
        with index.reading() as reader:
            document = reader.get(doc_id)
        if document is None:
            raise RequestRejected(404, f"no document {doc_id!r}")
        return {**asdict(document), "source": sources(document.source)}

    # /documents/delete is also /documents/{doc_id} for the id "delete": say so, so that the schema lists every
    # method the path answers (as its Allow header does)
    @app.get("/documents/delete", response_model=Document, tags=["documents"], responses=_errors(404))
    def get_document_named_delete() -> dict[str, Any]:
        """The document whose id is "delete" (``GET /documents/{doc_id}``)."""
        return get_document("delete")

    @app.delete("/documents/delete", response_model=WriteResponse, tags=["documents"],
                responses=_errors(400, 403, 404, 429))
    async def remove_document_named_delete() -> dict[str, Any]:
        """Remove the document whose id is "delete" (``DELETE /documents/{doc_id}``)."""
        return await remove_document("delete")

    @app.post("/verify", response_model=Verdict, tags=["search"], responses=_errors(400, 404))
    def verify(request: VerifyRequest) -> dict[str, Any]:
        """Is this document a match for the query, at the index's calibrated threshold?"""
        limits.check_queries([request.query])
        with index.reading() as reader:
            if reader.get(request.doc_id) is None:
                raise RequestRejected(404, f"no document {request.doc_id!r}")
            return reader.verify(request.query, request.doc_id).to_dict()

    app.include_router(judgments_router(index, limits, check_writable, _errors))

    @app.get("/info", tags=["server"], responses=_errors())
    def info(http: Request) -> dict[str, Any]:
        """The index (model, counts, ANN, chunking, dates) and the server's state; no server paths."""
        with index.reading() as reader:
            details = reader.info()
        details["index"] = Path(index_dir).resolve().name
        details["model"] = {key: value for key, value in details["model"].items() if key != "path"}
        details["server"] = {
            "read_only": read_only,
            "pending_writes": index.pending_writes,
            "commits": index.commits,
            "searches_batched": index.batcher.searches if index.batcher else 0,
            "search_batches": index.batcher.batches if index.batcher else 0,
            "limits": vars(http.app.state.limits),
        }
        return _redact_tree(details, redact)

    return app


class SourcePaths:
    """A hit's ``source`` as the client sees it: relative to the corpus root, never a path of the server's disk.

    Files are indexed (and their sources kept) as absolute paths; the root is the folder all the indexed
    files (the file catalog) share, worked out again when a write changes the version served. A source
    outside it shows its file name only.
    """

    def __init__(self, index: ServedIndex) -> None:
        self._index = index
        self._generation: str | None = None
        self._root: str | None = None

    def root(self) -> str | None:
        with self._index.reading() as reader:
            snapshot = reader.snapshot
            if snapshot.generation != self._generation:
                folders = [os.path.dirname(path) for path in snapshot.catalog.hashes() if os.path.isabs(path)]
                self._root = os.path.commonpath(folders) if folders else None
                self._generation = snapshot.generation
        return self._root

    def __call__(self, source: str | None, root: str | None = None) -> str | None:
        """``source`` as shown; ``root`` saves looking it up again for each hit of one answer."""
        if not source or not os.path.isabs(source):
            return source
        root = root or self.root()
        if root is not None:
            relative = os.path.relpath(source, root)
            if not relative.startswith(".."):
                return Path(relative).as_posix()
        return Path(source).name


    def filter(self, text: str) -> str:
        """A ``source`` filter as the client means it: a relative path (as hits show it) is relative to the corpus
        root, so ``source~notes/*`` is ``ROOT/notes/*``, not any path with a folder ``notes``."""
        try:
            condition = parse_condition(text)
        except RetrieverError:
            return text  # the search refuses it, with the engine's reason
        root = self.root() if condition.field == "source" else None
        if root is None or condition.value.startswith(("/", "*")):
            return text
        if condition.op == "~":
            root = re.sub(r"([*?\[])", r"[\1]", root)  # the root's own glob characters match themselves
        return f"source{condition.op}{root}/{condition.value}"


def _hits(hits: list[Hit], sources: SourcePaths) -> list[dict[str, Any]]:
    root = sources.root() if any(hit.source for hit in hits) else None
    return [{**hit.to_dict(), "source": sources(hit.source, root)} for hit in hits]


def _openapi(app: FastAPI, limits: Limits, rerank: int) -> dict[str, Any]:
    """FastAPI's schema, with the limits this server was started with, so that it states every bound it enforces.

    ``rerank`` is the most candidates a search may rerank: ``max_k``, or 0 for a model without a learned metric head.
    """
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        models = schema.get("components", {}).get("schemas", {})
        text = {"maxLength": limits.max_query_chars}
        for name in ("SearchRequest", "BatchSearchRequest", "ContextRequest"):
            properties = models.get(name, {}).get("properties", {})
            _bound(properties.get("k", {}), "integer", maximum=limits.max_k)
            _bound(properties.get("rerank", {}), "integer", maximum=rerank)
            _bound(properties.get("fetch_k", {}), "integer", maximum=FETCH_PER_K * limits.max_k)
            _bound(properties.get("where", {}), "string",
                   maxLength=min(limits.max_query_chars, MAX_CONDITION_CHARS))
            _bound(properties.get("query", {}), "string", **text)
            _bound(properties.get("queries", {}), "array", maxItems=limits.max_batch)
            _bound(properties.get("queries", {}), "string", **text)
        _bound(models.get("VerifyRequest", {}).get("properties", {}).get("query", {}), "string", **text)
        for field in ("query", "doc_id"):
            _bound(models.get("JudgeRequest", {}).get("properties", {}).get(field, {}), "string", **text)
        _bound(models.get("RemoveRequest", {}).get("properties", {}).get("ids", {}), "array",
               maxItems=limits.max_batch)
        _bound(models.get("AddRequest", {}).get("properties", {}).get("documents", {}), "array",
               maxItems=limits.max_documents)
        app.openapi_schema = schema
    return app.openapi_schema


def _bound(prop: dict[str, Any], kind: str, **keywords: int) -> None:
    """Set ``keywords`` on every part of a property's schema of JSON type ``kind`` (options and list items too)."""
    if prop.get("type") == kind:
        prop.update(keywords)
    for option in prop.get("anyOf", []):
        _bound(option, kind, **keywords)
    if isinstance(prop.get("items"), dict):
        _bound(prop["items"], kind, **keywords)


def _report(report: Any) -> dict[str, Any]:
    fields = ("added", "updated", "removed", "unchanged", "passages_encoded", "duplicate_ids", "seconds")
    return {name: getattr(report, name) for name in fields}


def _count(index: ServedIndex) -> int:
    with index.reading() as reader:
        return len(reader)


def _redact_tree(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_tree(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_tree(item, redact) for item in value]
    return value


def _package_version() -> str:
    try:
        return version("retriever")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
