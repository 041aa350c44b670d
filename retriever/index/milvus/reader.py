"""Reading an index stored in Milvus: the ``IndexReader`` of ``retriever.index.backend`` over three collections.

Passage keys are passage ids (the collection's primary key), document keys are document ids, and ``allowed`` is
a Milvus boolean expression. Vector and BM25 searches run in Milvus with the filter applied inside them.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from retriever.index.backend import store_of
from retriever.index.layout import IndexLayout, ReaderLease
from retriever.index.manifest import Manifest
from retriever.index.milvus import collections
from retriever.index.milvus.collections import DOCUMENTS, FILES, PASSAGES, PIECE_CHARS
from retriever.index.milvus.connection import connect, is_lite, reported
from retriever.index.milvus.filters import COLUMNS, expression, string_literal
from retriever.index.snapshot import LiveDocument
from retriever.index.store import StoredDocument, StoredPassage
from retriever.ingest.documents import Document

BM25_SCALE = 1.0 + 1.5  # k1 + 1, with Milvus's default k1 of 1.5 (bm25s's too)
MAX_TOPK = 16_384  # Milvus's largest limit for one search
LOOKUP = 1_000  # ids per "in [...]" expression
PASSAGE_FIELDS = ["doc_id", "ordinal", "text", "start_char", "end_char", "title", "source", "metadata"]
DOCUMENT_FIELDS = ["doc_id", "version", "content_hash", "file", "passages"]
TYPE_SAMPLE = 1_000  # passages read to tell which JSON types a filtered field holds


def json_type(value: Any) -> str:
    """SQLite's ``json_type`` name of a JSON value, as the local store reports field types."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def id_list(values: Iterable[Any]) -> str:
    """``[1, 2]`` or ``["a", "b"]`` for an ``in`` expression."""
    return "[" + ", ".join(string_literal(v) if isinstance(v, str) else str(int(v)) for v in values) + "]"


def chunks(items: Sequence[Any], size: int = LOOKUP) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def analyze(texts: Sequence[str], analyzer: str) -> list[str]:
    """What goes into (and is searched in) the BM25 field: this engine's tokens, or the raw text for Milvus's own."""
    if analyzer == "milvus":
        return list(texts)
    from retriever.index.lexical import tokenize

    return [" ".join(tokens) for tokens in tokenize(texts)]


class MilvusCatalog:
    """The file hashes of folder sync, read from the files collection once per reader."""

    def __init__(self, client: Any, name: str) -> None:
        self.client, self.name = client, name
        self._rows: dict[str, tuple[str, int]] | None = None

    def _all(self) -> dict[str, tuple[str, int]]:
        if self._rows is None:
            rows = scan(self.client, self.name, 'path != ""', ["path", "hash", "documents"])
            self._rows = {r["path"]: (r["hash"], int(r["documents"])) for r in rows}
        return self._rows

    def hashes(self) -> dict[str, str]:
        return {path: digest for path, (digest, _) in self._all().items()}

    def documents(self, path: str) -> int:
        return self._all().get(path, ("", 0))[1]

    def __len__(self) -> int:
        return len(self._all())


def scan(client: Any, name: str, condition: str, fields: list[str], batch: int = 4_096) -> list[dict[str, Any]]:
    """Every row matching ``condition`` (an iterator: a plain query stops at Milvus's result window)."""
    iterator = client.query_iterator(name, batch_size=batch, filter=condition, output_fields=fields)
    rows: list[dict[str, Any]] = []
    try:
        while True:
            page = iterator.next()
            if not page:
                return rows
            rows += page
    finally:
        iterator.close()


class MilvusReader:
    """The ``IndexReader`` of an index whose passages, vectors and BM25 live in Milvus."""

    def __init__(self, layout: IndexLayout, manifest: Manifest, client: Any, lease: ReaderLease | None) -> None:
        self.layout, self.manifest, self.client, self.lease = layout, manifest, client, lease
        self.uri = store_of(manifest).uri
        self.collections = collections.names(manifest.backend)
        self.analyzer = manifest.backend.get("analyzer", "retriever")
        self.catalog = MilvusCatalog(client, self.collections[FILES])
        self._counts: dict[str, int] = {}

    @classmethod
    def open(cls, layout: IndexLayout, manifest: Manifest, lease: bool = True) -> MilvusReader:
        client = connect(store_of(manifest).uri)
        collections.check(client, manifest.backend, store_of(manifest).uri, manifest.model, layout.name)
        held = None
        if lease:
            held = layout.take_lease()
            if held is not None:
                held.hold(manifest.generation)
        return cls(layout, manifest, client, held)

    @property
    def generation(self) -> str:
        return self.manifest.generation

    def close(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    # counts (as of the last commit) ---------------------------------------------------------------------
    @property
    def documents(self) -> int:
        return int(self.manifest.counts.get("documents", 0))

    @property
    def passages(self) -> int:
        return int(self.manifest.counts.get("passages", 0))

    def size_bytes(self) -> int:
        """Bytes on disk of the collections (Milvus Lite; a server's storage is not visible: 0)."""
        if not is_lite(self.uri):
            return 0
        from pathlib import Path

        folders = [Path(self.uri) / "collections" / name for name in self.collections.values()]
        return self.layout.size_bytes(folders + [self.layout.manifest_path(self.generation)])

    def flat_scans(self) -> dict[str, int]:
        """None: Milvus searches its own index (``Snapshot.flat_scans`` reports the local segments')."""
        return {}

    def ram_bytes(self) -> int:
        """Bytes the vector index holds in memory, by Milvus's own sizing: float32 vectors, plus HNSW links."""
        kind = collections.vector_index(self.manifest.ann["requested"])[0]
        per_passage = 4 * int(self.manifest.model["dimension"])
        if kind == "HNSW":
            per_passage += collections.HNSW["M"] * 2 * 4
        elif kind == "IVF_SQ8":
            per_passage = int(self.manifest.model["dimension"])
        return per_passage * self.passages

    # filters --------------------------------------------------------------------------------------------------
    def allowed(self, conditions: Sequence[Any]) -> str | None:
        return expression(conditions) or None

    def available(self, allowed: str | None) -> int:
        if allowed is None:
            return self.passages
        if allowed not in self._counts:
            with reported(f"the filter {allowed}"):
                rows = self.client.query(self.collections[PASSAGES], filter=allowed, output_fields=["count(*)"])
            self._counts[allowed] = int(rows[0]["count(*)"])
        return self._counts[allowed]

    def field_types(self, field: str) -> set[str]:
        """The JSON types (SQLite's names, as the local store gives them) a record field holds, read from up to
        ``TYPE_SAMPLE`` documents that have it (empty: none has it); for ``filter_warnings``."""
        if field in COLUMNS:
            return {"text"}
        target = f"metadata[{json.dumps(field)}]"
        with reported(f"the field {field}"):
            rows = self.client.query(self.collections[PASSAGES], filter=f"exists {target}",
                                     output_fields=["metadata"], limit=TYPE_SAMPLE)
        return {json_type(row["metadata"].get(field)) for row in rows if isinstance(row.get("metadata"), dict)}

    # search ---------------------------------------------------------------------------------------------------
    def dense(self, vectors: np.ndarray, k: int, allowed: str | None = None,
              exact: bool = False) -> list[list[tuple[int, str, float]]]:
        """The k passages nearest each vector; ``exact`` widens the graph search (Milvus has no exact mode)."""
        if k <= 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        limit = min(k, MAX_TOPK)
        _, _, params = collections.vector_index(self.manifest.ann["requested"])
        if exact and "ef" in params:
            params = {"ef": max(limit, 1024)}
        elif "ef" in params:
            params = {"ef": max(params["ef"], limit)}
        with reported("the vector search"):
            found = self.client.search(
                self.collections[PASSAGES], data=np.asarray(vectors, dtype=np.float32).tolist(), anns_field="vector",
                limit=limit, filter=allowed or "", output_fields=["doc_id"],
                search_params={"metric_type": "IP", "params": params},
            )
        return [[(int(hit["pid"]), hit["entity"]["doc_id"], float(hit["distance"])) for hit in hits]
                for hits in found]

    def lexical(self, queries: Sequence[str], k: int, allowed: str | None = None) -> list[list[tuple[int, str, float]]]:
        """BM25 by Milvus full-text search over the analyzed field; scores are BM25 (larger is better)."""
        out: list[list[tuple[int, str, float]]] = [[] for _ in queries]
        texts = analyze(list(queries), self.analyzer)
        asked = [i for i, text in enumerate(texts) if text.strip()]
        if k <= 0 or not asked:
            return out
        with reported("the BM25 search"):
            found = self.client.search(
                self.collections[PASSAGES], data=[texts[i] for i in asked], anns_field="sparse",
                limit=min(k, MAX_TOPK), filter=allowed or "", output_fields=["doc_id"],
                search_params={"metric_type": "BM25"},
            )
        for i, hits in zip(asked, found):
            # Milvus Lite reports BM25 as a negated distance, a server as the score itself: both are |score|.
            # Milvus keeps classic BM25's constant factor (k1 + 1); without it scores equal bm25s's (Lucene's).
            out[i] = [(int(hit["pid"]), hit["entity"]["doc_id"], abs(float(hit["distance"])) / BM25_SCALE)
                      for hit in hits]
        return out

    # passages and documents ---------------------------------------------------------------------------------
    def hydrate(self, keys: Iterable[Hashable]) -> dict[Hashable, StoredPassage]:
        out: dict[Hashable, StoredPassage] = {}
        wanted = sorted({int(k) for k in keys})
        for part in chunks(wanted):
            rows = self.client.query(self.collections[PASSAGES], filter=f"pid in {id_list(part)}",
                                     output_fields=["pid", *PASSAGE_FIELDS])
            for r in rows:
                out[int(r["pid"])] = StoredPassage(
                    int(r["pid"]), r["doc_id"], int(r["ordinal"]), r["text"], int(r["start_char"]),
                    int(r["end_char"]), r["title"], r["source"] or None, dict(r["metadata"] or {}))
        return out

    def vectors_of(self, keys: Sequence[Hashable]) -> np.ndarray:
        dimension = int(self.manifest.model["dimension"])
        out = np.zeros((len(keys), dimension), dtype=np.float32)
        position = {int(k): i for i, k in enumerate(keys)}
        for part in chunks(list(position)):
            for r in self.client.query(self.collections[PASSAGES], filter=f"pid in {id_list(part)}",
                                       output_fields=["pid", "vector"]):
                out[position[int(r["pid"])]] = np.asarray(r["vector"], dtype=np.float32)
        return out

    def passage_keys(self, doc_id: str) -> list[Hashable]:
        return self.passage_keys_of([doc_id]).get(doc_id, [])

    def passage_keys_of(self, doc_ids: Iterable[str]) -> dict[str, list[Hashable]]:
        return {doc_id: list(range(found.stored.first_row, found.stored.first_row + found.stored.rows))
                for doc_id, found in self.live_documents(doc_ids).items()}

    def _documents(self, condition: str, many: bool = False) -> list[LiveDocument]:
        """Live documents matching a condition; of two versions of one id (mid-update) the newer wins.

        ``many``: there may be more than one result window of them (every document of some files).
        """
        newest: dict[str, dict[str, Any]] = {}
        condition = f"part == 0 and ({condition})"
        rows = scan(self.client, self.collections[DOCUMENTS], condition, DOCUMENT_FIELDS) if many else \
            self.client.query(self.collections[DOCUMENTS], filter=condition, output_fields=DOCUMENT_FIELDS,
                              limit=MAX_TOPK)
        for r in rows:
            if r["doc_id"] not in newest or r["version"] > newest[r["doc_id"]]["version"]:
                newest[r["doc_id"]] = r
        return [LiveDocument(self.collections[DOCUMENTS], StoredDocument(
            int(r["version"]), r["doc_id"], r["content_hash"], r["file"] or None, int(r["version"]),
            int(r["passages"]))) for r in newest.values()]

    def live_documents(self, doc_ids: Iterable[str]) -> dict[str, LiveDocument]:
        wanted = list(dict.fromkeys(str(d) for d in doc_ids))
        found: dict[str, LiveDocument] = {}
        for part in chunks(wanted):
            found.update({d.doc_id: d for d in self._documents(f"doc_id in {id_list(part)}")})
        return found

    def documents_of_files(self, files: Sequence[str]) -> list[LiveDocument]:
        out: list[LiveDocument] = []
        for part in chunks(list(files)):
            out += self._documents(f"file in {id_list(part)}", many=True)
        return out

    def document(self, doc_id: str) -> Document | None:
        found = self.live_documents([doc_id]).get(doc_id)
        if found is None:
            return None
        version = found.stored.first_row
        rows = self.client.query(self.collections[DOCUMENTS], filter=f"version == {version}",
                                 output_fields=["part", "text", "title", "source", "metadata"], limit=MAX_TOPK)
        rows.sort(key=lambda r: r["part"])
        head = rows[0]
        return Document(doc_id, "".join(r["text"] for r in rows), head["title"], head["source"] or None,
                        dict(head["metadata"] or {}))


def text_pieces(text: str) -> list[str]:
    """A document's text in pieces that each fit a Milvus VARCHAR."""
    return [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]
