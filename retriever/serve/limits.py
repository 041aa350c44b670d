"""Bounds on what one request may ask for, so that no client can tie up the server.

The body size is enforced by FastAPI itself (``max_body_size``, 413) before the body is read;
the rest is checked here and refused with 422 and a one-line reason naming the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FETCH_PER_K = 4  # MMR candidates (fetch_k) may go to this many times max_k


class RequestRejected(Exception):
    """A request the server will not serve: an HTTP status and a one-line reason for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """The most one request may ask for; the defaults suit a single CPU server."""

    max_body_bytes: int = 8 * 1024 * 1024  # request body, in bytes
    max_query_chars: int = 2_000  # per query (and per filter)
    max_k: int = 100  # results per query, and candidates to rerank
    max_batch: int = 64  # queries per /search/batch, ids per /documents/delete
    max_documents: int = 1_000  # documents per POST /documents
    max_pending_writes: int = 32  # writes queued behind the one running; more get 429

    def check_queries(self, queries: Sequence[str], where: Sequence[str] = ()) -> None:
        if len(queries) > self.max_batch:
            raise RequestRejected(422, f"{len(queries)} queries in one batch; at most {self.max_batch}")
        for text in (*queries, *where):
            if len(text) > self.max_query_chars:
                raise RequestRejected(
                    422, f"query or filter of {len(text)} characters; at most {self.max_query_chars}"
                )

    def check_k(self, k: int, rerank: int = 0, fetch_k: int | None = None) -> None:
        if k > self.max_k:
            raise RequestRejected(422, f"k is {k}; at most {self.max_k}")
        if rerank > self.max_k:
            raise RequestRejected(422, f"rerank is {rerank}; at most {self.max_k}")
        if fetch_k is not None and fetch_k > FETCH_PER_K * self.max_k:
            raise RequestRejected(422, f"fetch_k is {fetch_k}; at most {FETCH_PER_K * self.max_k}")

    def check_documents(self, count: int) -> None:
        if count > self.max_documents:
            raise RequestRejected(
                413, f"{count} documents in one request; at most {self.max_documents}, send them in batches"
            )

    def check_ids(self, count: int) -> None:
        if count > self.max_batch:
            raise RequestRejected(422, f"{count} ids in one request; at most {self.max_batch}")
