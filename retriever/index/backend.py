"""The two seams of storage: what search and updates read through, and what updates write through.

Every index keeps its folder (``CURRENT``, ``generations/gen-N.json``, the writer lock); the manifest's ``store``
field says where passages, vectors and BM25 live: ``"local"`` (segments in the folder: ``Snapshot`` and
``IndexWriter``) or ``"milvus:PATH"`` / ``"milvus:http://host:19530"`` (collections in Milvus:
``retriever.index.milvus``). ``retriever.index.opening`` picks the implementation, so the facade, the
ranking code and folder sync never name a backend; this module names none either (imports run one way).

Keys are opaque to callers: a candidate is ``(passage key, document key, score)``; ``allowed`` is whatever
``IndexReader.allowed`` returned for some filter conditions (per-segment masks locally, a boolean expression in
Milvus) and is only handed back to ``available``, ``dense`` and ``lexical``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from retriever.errors import RetrieverError

if TYPE_CHECKING:
    from retriever.index.manifest import Manifest
    from retriever.index.snapshot import LiveDocument
    from retriever.index.store import StoredPassage
    from retriever.ingest.chunking import Passage
    from retriever.ingest.documents import Document

LOCAL = "local"
MILVUS_PREFIX = "milvus:"
MILVUS_INSTALL = "pip install 'retriever[milvus]'"

Candidate = tuple[Hashable, Hashable, float]  # (passage key, document key, score)


class FileHashes(Protocol):
    """The content hash and document count of each indexed file (folder sync)."""

    def hashes(self) -> dict[str, str]: ...

    def documents(self, path: str) -> int: ...


class IndexReader(Protocol):
    """One readable version of an index: what search, the facade, folder sync, calibration and bench call."""

    manifest: Manifest
    catalog: FileHashes

    @property
    def generation(self) -> str: ...

    @property
    def documents(self) -> int: ...

    @property
    def passages(self) -> int: ...

    def allowed(self, conditions: Sequence[Any]) -> Any: ...

    def available(self, allowed: Any) -> int: ...

    def dense(self, vectors: np.ndarray, k: int, allowed: Any = None, exact: bool = False) -> list[list[Candidate]]: ...

    def lexical(self, queries: Sequence[str], k: int, allowed: Any = None) -> list[list[Candidate]]: ...

    def hydrate(self, keys: Iterable[Hashable]) -> dict[Hashable, StoredPassage]: ...

    def vectors_of(self, keys: Sequence[Hashable]) -> np.ndarray: ...

    def passage_keys(self, doc_id: str) -> list[Hashable]: ...

    def passage_keys_of(self, doc_ids: Iterable[str]) -> dict[str, list[Hashable]]: ...

    def document(self, doc_id: str) -> Document | None: ...

    def live_documents(self, doc_ids: Iterable[str]) -> dict[str, LiveDocument]: ...

    def documents_of_files(self, files: Sequence[str]) -> list[LiveDocument]: ...

    def field_types(self, field: str) -> set[str]: ...

    def size_bytes(self) -> int: ...

    def ram_bytes(self) -> int: ...

    def close(self) -> None: ...


class IndexUpdater(Protocol):
    """One update of an index, under the writer lock: what folder sync, upserts and deletes call."""

    manifest: Manifest
    base: IndexReader | None
    rekind: bool

    @property
    def generation(self) -> str: ...

    @property
    def pending(self) -> bool: ...

    def add(self, doc: Document, passages: list[Passage], vectors: np.ndarray, file: str | None) -> None: ...

    def delete(self, documents: Iterable[LiveDocument]) -> None: ...

    def set_file(self, path: str, content_hash: str, documents: int) -> None: ...

    def remove_file(self, path: str) -> None: ...

    def full(self) -> bool: ...

    def commit(self, extras: dict | None = None) -> Manifest: ...

    def abort(self) -> None: ...


# where an index lives ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreSpec:
    """A parsed ``--store`` value: ``local``, or Milvus at ``uri`` (a Milvus Lite folder or a server address)."""

    kind: str
    uri: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @property
    def is_local(self) -> bool:
        return self.kind == LOCAL

    def option(self, name: str, default: str) -> str:
        return dict(self.options).get(name, default)

    def __str__(self) -> str:
        if self.is_local:
            return LOCAL
        query = "&".join(f"{name}={value}" for name, value in self.options)
        return f"{MILVUS_PREFIX}{self.uri}" + (f"?{query}" if query else "")


def parse_store(spec: str | None) -> StoreSpec:
    """``local`` (default), ``milvus:PATH`` (Milvus Lite) or ``milvus:http://host:19530`` (a Milvus server).

    Options follow a ``?``: ``milvus:PATH?analyzer=milvus`` lets Milvus analyze the text for BM25 itself instead of
    storing this engine's own tokens (see ``retriever.index.milvus``). A relative Lite path is made absolute, so
    the index opens from any working directory.
    """
    from pathlib import Path

    text = (spec or LOCAL).strip()
    if text == LOCAL:
        return StoreSpec(LOCAL)
    if not text.startswith(MILVUS_PREFIX):
        raise RetrieverError(f"unknown store {text!r}: use 'local', 'milvus:PATH' or 'milvus:http://host:19530'")
    uri, _, query = text[len(MILVUS_PREFIX):].partition("?")
    if not uri:
        raise RetrieverError("--store milvus: needs a place: 'milvus:PATH' (Milvus Lite) or 'milvus:http://host:19530'")
    options: list[tuple[str, str]] = []
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        if name != "analyzer" or value not in ("retriever", "milvus"):
            raise RetrieverError(f"unknown Milvus store option {pair!r}: the one option is analyzer=retriever|milvus")
        options.append((name, value))
    if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
        uri = str(Path(uri).expanduser().resolve())
    return StoreSpec("milvus", uri, tuple(options))


def store_of(manifest: Manifest) -> StoreSpec:
    return parse_store(manifest.store)
