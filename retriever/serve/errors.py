"""Every error a client sees is ``{"error": "one line"}``: no traceback, no path of the server's disk.

Known failures keep their meaning (400 bad input, 401, 403, 404, 413, 422, 429); anything else
is logged on the server with its traceback and answered with a bare 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        if exc.status_code in (404, 405):
            reason = f"{reason}: {request.method} {request.url.path}"
        return error(exc.status_code, redact(reason), headers=getattr(exc, "headers", None))



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
