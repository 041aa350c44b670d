"""``retriever ui``: the search page of one index, served on this machine and opened in the browser.

The same server as ``retriever serve`` (``create_app``), always on 127.0.0.1; the page's URL is printed once the
server accepts connections, then opened with ``webbrowser`` (unless ``open_browser`` is false: tests, headless).
"""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retriever.errors import RetrieverError
from retriever.serve.limits import Limits
from retriever.serve.sockets import listening_socket

HOST = "127.0.0.1"


def page_server(index_dir: Path, port: int = 0, api_key: str | None = None, read_only: bool = False,
                limits: Limits | None = None) -> tuple[Any, socket.socket, str]:
    """A uvicorn server for the index, its listening socket on 127.0.0.1 (``port`` 0: a free one) and the page's URL.

    Run it with ``server.run(sockets=[sock])``; the index and its model are loaded now, so a bad index fails here.
    """
    import uvicorn

    from retriever.serve.app import create_app
    from retriever.serve.errors import JsonErrorH11Protocol

    try:
        sock = listening_socket(HOST, port)  # before loading anything: a busy port fails at once
    except OSError as exc:
        raise RetrieverError(f"cannot listen on {HOST}:{port} ({exc.strerror}); choose another --port") from None
    try:
        app = create_app(index_dir, api_key=api_key, read_only=read_only, limits=limits)
    except BaseException:
        sock.close()
        raise
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    config = uvicorn.Config(app, log_level="warning", server_header=False, http=JsonErrorH11Protocol)
    return uvicorn.Server(config), sock, url


def run_ui(index_dir: Path, port: int = 0, open_browser: bool = True, api_key: str | None = None,
           read_only: bool = False, announce: Callable[[str], None] = print) -> None:
    """Serve the index and its page until Ctrl-C, saying where (and opening it) once it listens."""
    server, sock, url = page_server(index_dir, port, api_key=api_key, read_only=read_only)

    def when_started() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            announce(f"search page: {url}  (Ctrl-C stops it)")
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=when_started, name="retriever-ui-open", daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: stopping is the normal way out
        pass
