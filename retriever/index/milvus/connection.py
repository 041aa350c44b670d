"""Connecting to Milvus: Milvus Lite for a ``.db`` path (in this process), a server for an address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from retriever.errors import IndexBusyError, RetrieverError
from retriever.index.backend import MILVUS_INSTALL

SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")
_clients: dict[str, Any] = {}  # one client per database and process: Milvus Lite serves one process per folder


def is_lite(uri: str) -> bool:
    return not uri.startswith(SERVER_SCHEMES)


def connect(uri: str) -> Any:
    """A ``MilvusClient`` for ``uri`` (shared within the process); a one-line error if it cannot be had."""
    if uri in _clients:
        return _clients[uri]
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise RetrieverError(f"the Milvus store needs pymilvus and Milvus Lite: {MILVUS_INSTALL}") from None
    if is_lite(uri):
        if not uri.endswith(".db"):
            raise RetrieverError(f"a Milvus Lite store is a path ending in .db (milvus:indexes/docs.db), not {uri}")
        try:
            import milvus_lite  # noqa: F401
        except ImportError:
            raise RetrieverError(f"the Milvus Lite store needs milvus-lite: {MILVUS_INSTALL}") from None
    import logging

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors reach the user as one-line messages
    if is_lite(uri):  # Milvus Lite's in-process server logs the timestamp call it lacks (query iterators fall back)
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    try:
        client = MilvusClient(uri)
    except Exception as exc:  # noqa: BLE001 - pymilvus reports connection problems with several exception types
        if is_lite(uri):
            raise IndexBusyError(
                f"Milvus Lite database {uri} cannot be opened: another process has it open (Milvus Lite serves one "
                "process at a time; use a Milvus server for several)"
            ) from None
        raise RetrieverError(f"cannot reach Milvus at {uri}: {str(exc).splitlines()[0][:160]}") from None
    _clients[uri] = client
    return client


def forget(uri: str) -> None:
    """Close and drop this process's client for ``uri`` (tests, and a Lite database moved between processes)."""
    client = _clients.pop(uri, None)
    if client is not None:
        client.close()
        if is_lite(uri):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri)


@contextmanager
def reported(what: str) -> Iterator[None]:
    """Turn a Milvus refusal (a bad expression, a limit) into a one-line ``RetrieverError``."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        message = str(getattr(exc, "message", exc)).splitlines()[0][:200]
        raise RetrieverError(f"Milvus refused {what}: {message}") from None
