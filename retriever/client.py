"""``Client``: a ``retriever serve`` server used like an in-process ``Retriever``.

The same ``search`` / ``search_many`` / ``add`` / ``remove`` / ``get`` / ``verify`` / ``info`` calls
return the same ``Hit``, ``IndexReport``, ``Document`` and ``Verdict`` objects, so a RAG pipeline
moves between in-process and remote by changing one line::

    r = Retriever.load("indexes/docs")               # in this process
    r = Client("http://127.0.0.1:8000", api_key=...)  # behind 'retriever serve'

Needs the ``serve`` extra (httpx). Errors are ``RemoteError``s carrying the server's one-line reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import quote, urlencode

from retriever.errors import RemoteError
from retriever.extras import require_extra
from retriever.ingest.documents import Document
from retriever.ingest.sync import IndexReport
from retriever.judgments import Judgment
from retriever.search.results import ContextPassage, Hit
from retriever.verification.verdict import Verdict

_REPORT_FIELDS = {f.name for f in fields(IndexReport)}


class Client:
    """A connection to a retriever server; ``api_key`` defaults to ``$RETRIEVER_API_KEY``."""

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 60.0) -> None:
        require_extra("serve", "httpx", feature="retriever.client")
        import httpx

        self.url = url.rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("RETRIEVER_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    # searching -------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, passages: bool = False, **options: Any) -> list[Hit]:
        """The k best documents (or passages) for a query; options as ``Retriever.search``."""
        body = self._call("POST", "/search", {"query": query, "k": k, "passages": passages, **_options(options)})
        return [Hit(**hit) for hit in body["hits"]]

    def search_many(self, queries: Sequence[str], k: int = 10, passages: bool = False,
                    **options: Any) -> list[list[Hit]]:
        if isinstance(queries, str):
            raise TypeError("search_many takes a list of queries; use search() for one")
        payload = {"queries": list(queries), "k": k, "passages": passages, **_options(options)}
        body = self._call("POST", "/search/batch", payload)
        return [[Hit(**hit) for hit in hits] for hits in body["results"]]

    def context_for(self, query: str, max_tokens: int = 2000, k: int = 10, context: int = 1,
                    **options: Any) -> list[ContextPassage]:
        """The passages a prompt should get, within ``max_tokens``; as ``Retriever.context_for``."""
        known = {"mode", "fusion", "alpha", "where"}
        if set(options) - known:
            raise TypeError(f"unknown context option(s): {', '.join(sorted(set(options) - known))}")
        payload = {"query": query, "max_tokens": max_tokens, "k": k, "context": context, **_options(options)}
        return [ContextPassage(**p) for p in self._call("POST", "/context", payload)["passages"]]

    def verify(self, query: str, doc_id: str) -> Verdict:
        return Verdict(**self._call("POST", "/verify", {"query": query, "doc_id": doc_id}))

    # documents ---------------------------------------------------------------------------------------
    def add(self, records: Iterable[dict[str, Any] | Document]) -> IndexReport:
        """Add or replace documents (records or ``Document``s) in one commit on the server."""
        documents = [_record(r) for r in records]
        body = self._call("POST", "/documents", {"documents": documents})
        return IndexReport(**{key: value for key, value in body.items() if key in _REPORT_FIELDS})

    def remove(self, ids: Iterable[str]) -> int:
        """Remove documents by id in one commit; returns how many existed."""
        return int(self._call("POST", "/documents/delete", {"ids": [str(i) for i in ids]})["removed"])

    def get(self, doc_id: str) -> Document | None:
        try:
            return Document(**self._call("GET", f"/documents/{quote(str(doc_id), safe='')}"))
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info")

    def __len__(self) -> int:
        return int(self.info()["counts"].get("documents", 0))

    # judgments ---------------------------------------------------------------------------------------
    def judge(self, query: str, doc_id: str, grade: int) -> Judgment:
        """Grade a document for a query (0, 1 or 2), as ``Retriever.judge``."""
        return Judgment(**self._call("POST", "/judgments", {"query": query, "doc_id": doc_id, "grade": grade}))

    def judgments(self, query: str | None = None) -> list[Judgment]:
        body = self._call("GET", "/judgments" + (f"?{urlencode({'query': query})}" if query is not None else ""))
        return [Judgment(**j) for j in body["judgments"]]

    def judgment_summary(self, query: str | None = None) -> dict[str, Any]:
        """Judged queries, judgments, and the served engine's nDCG@10 on them (and on ``query``)."""
        return self._call("GET", "/judgments/summary" + (f"?{urlencode({'query': query})}" if query is not None
                                                          else ""))

    # plumbing ------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, json=payload)
        except httpx.HTTPError as exc:
            raise RemoteError(f"no answer from the retriever server at {self.url}: {exc}") from None
        if response.is_success:
            return response.json()
        try:
            reason = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            reason = response.text.strip()[:200] or response.reason_phrase
        raise RemoteError(f"server answered {response.status_code}: {reason}", status=response.status_code)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """Search options as the API takes them: unset ones left out, filters as a list."""
    known = {"mode", "fusion", "alpha", "where", "rerank", "diversity", "fetch_k", "context", "context_tokens",
             "explain"}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown search option(s): {', '.join(sorted(unknown))}")
    out = {key: value for key, value in options.items() if value is not None}
    if "where" in out and not isinstance(out["where"], str):
        out["where"] = list(out["where"])
    return out


def _record(record: dict[str, Any] | Document) -> dict[str, Any]:
    if not isinstance(record, Document):
        return dict(record)
    return {**record.metadata, "_id": record.doc_id, "title": record.title, "text": record.text}
