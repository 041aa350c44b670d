"""Every error a client sees is ``{"error": "one line"}``: no traceback, no path of the server's disk.

Known failures keep their meaning (400 bad input or malformed HTTP, 401, 403, 404, 405, 413, 422, 429); anything else
is logged on the server with its traceback and answered with a bare 500.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:  # uvicorn and h11 come with the 'serve' extra, as FastAPI does
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError:  # pragma: no cover
    H11Protocol = object  # type: ignore[assignment,misc]

from retriever.errors import CorruptIndexError, ModelLoadError, ModelMismatchError, RetrieverError
from retriever.serve.limits import RequestRejected

log = logging.getLogger("retriever.serve")

# an absolute path of two or more parts, not inside a URL or a relative path
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s'\"/]+/)+([^\s'\"/]*)")
_SERVER_SIDE = (CorruptIndexError, ModelLoadError, ModelMismatchError)  # the index or model, not the request


class Redactor:
    """Turns a message into one line without the server's paths: known ones become their last part."""

    def __init__(self, paths: Iterable[str | Path]) -> None:
        names: dict[str, str] = {}
        for path in paths:
            for form in {str(path), str(Path(path).resolve())}:
                names[form] = Path(path).resolve().name
        self._known = sorted(names.items(), key=lambda item: -len(item[0]))  # longest first

    def __call__(self, message: str) -> str:
        for path, name in self._known:
            message = message.replace(path, name)
        message = _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "…", message)
        return " ".join(message.split())


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, redact: Redactor) -> None:
    @app.exception_handler(RequestRejected)
    async def rejected(_: Request, exc: RequestRejected) -> JSONResponse:
        return error(exc.status, redact(exc.message))

    @app.exception_handler(RetrieverError)
    async def retriever_error(_: Request, exc: RetrieverError) -> JSONResponse:
        return error(500 if isinstance(exc, _SERVER_SIDE) else 400, redact(str(exc)))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "the request body is not valid JSON")
        parts = []
        for problem in problems[:3]:
            where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
            parts.append(f"{where}: {problem.get('msg', 'invalid')}")
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return error(422, redact("; ".join(parts) + more))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        reason = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code in (404, 405):
            reason = f"{reason}: {request.method} {request.url.path}"
        if exc.status_code == 405:  # Starlette names the methods of the first route of the path only
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error(exc.status_code, redact(reason), headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path (GET and DELETE for ``/documents/{id}``)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


class RequestChecks:
    """Refuses, as JSON 400, a request whose body length is ambiguous before anything reads it.

    ``Content-Length`` with ``Transfer-Encoding`` (or two different lengths) is how requests are smuggled
    past a proxy that reads the other header; RFC 9112 says such a message must be refused and the
    connection closed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            lengths = {value.strip() for name, value in headers if name == b"content-length"}
            chunked = any(name == b"transfer-encoding" for name, _ in headers)
            problem = None
            if lengths and chunked:
                problem = "both Content-Length and Transfer-Encoding; send one of them"
            elif len(lengths) > 1:
                problem = "several different Content-Length values"
            if problem:
                response = error(400, f"bad request: {problem}", headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering the requests it refuses itself (bad framing, a bad request line or
    header) in the API's JSON shape instead of plain text. ``uvicorn.run(..., http=JsonErrorH11Protocol)``."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": f"bad request: {' '.join(msg.split()) or 'malformed HTTP'}"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()



class CatchAll:
    """Any other exception: logged here with its traceback, answered with a bare 500.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then drops the
    connection; answering here keeps the client's connection usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("internal error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # too late for another answer; the server closes the connection
            await error(500, "internal server error (the server's log has the details)")(scope, receive, send)
