"""The listening socket of a server this package starts in-process (``retriever ui``, and the tests' servers).

A socket made as ``socket.socket(AF_INET, SOCK_STREAM)`` has protocol number 0, and asyncio turns Nagle's algorithm
off (TCP_NODELAY) only on accepted sockets whose protocol is ``IPPROTO_TCP``. uvicorn writes a response's head and
body separately, so on a kept-alive connection the body then waited for the client's delayed ACK: every request
after a connection's first took ~44 ms instead of ~1.5 ms (``GET /health`` on 127.0.0.1). ``retriever serve`` lets
uvicorn bind its own socket and was not affected.
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` (port 0: a free one) whose accepted connections send at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
