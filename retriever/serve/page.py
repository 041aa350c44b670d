"""The search page: ``GET /`` and its script and style, shipped in the package (``serve/page/``), no build step.

The page is a client of the same HTTP API as any other (``/info``, ``/search``, ``/documents/{id}``,
``/judgments``), so it holds no index data itself: its three files are open without the API key (the page asks
for the key and sends it as ``Authorization: Bearer``, as every client does). Documents are untrusted, so the
page builds its DOM from text only, and every file is served with a strict Content-Security-Policy (no inline
script, no eval, nothing from another origin) and ``nosniff``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # a new version of the package serves its new page at once
}
PAGE_FILES = {  # path -> (file in serve/page/, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page/page.css": ("page.css", "text/css; charset=utf-8"),
}
PAGE_PATHS = frozenset(PAGE_FILES)  # open without the API key: they hold no index data


@cache
def _content(name: str) -> bytes:
    return files("retriever.serve").joinpath("page", name).read_bytes()


def page_router() -> APIRouter:
    """The page's routes, left out of the OpenAPI schema (they are not part of the API)."""
    router = APIRouter(include_in_schema=False)
    for path, (name, media_type) in PAGE_FILES.items():
        router.add_api_route(path, _responder(name, media_type), methods=["GET"], name=f"page:{name}")
    return router


def _responder(name: str, media_type: str) -> Callable[[], Response]:
    """An endpoint without parameters (a default argument would be a query parameter to FastAPI)."""
    def serve() -> Response:
        return Response(_content(name), media_type=media_type, headers=SECURITY_HEADERS)

    return serve
