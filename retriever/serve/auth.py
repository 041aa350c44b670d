"""The bearer token: with an API key set, every request but ``GET /health`` (and the search page's files) must carry it.

A plain ASGI middleware rather than a per-route dependency, so that nothing is left open by
accident: the OpenAPI schema and ``/docs`` need the key too, and so do unknown paths.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from retriever.serve.page import PAGE_PATHS

OPEN_PATHS = frozenset({"/health"}) | PAGE_PATHS  # the search page's files hold no data; it asks for the key


class BearerTokenAuth:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"error": "missing or wrong API key: send the header 'Authorization: Bearer <key>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        # compare_digest takes as long whatever the token, so timing reveals nothing of the key
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
