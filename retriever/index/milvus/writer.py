"""Writing an index stored in Milvus: the ``IndexUpdater`` of ``retriever.index.backend``.

Passages are inserted in batches as documents stream in (bounded memory); a commit flushes them, writes the
generation's manifest (its counts, and the deletions and file hashes it makes, as ``backend.pending``), switches
``CURRENT``, and only then applies those deletions and file hashes. A writer that starts finds the live manifest
and (1) deletes every passage and document row at or above its ``next_passage_id`` (inserted by an update that
never committed) and (2) applies its ``pending`` again (a commit interrupted after its switch), so a failure at
any point leaves the last committed version, as in the local store.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from retriever.errors import RetrieverError
from retriever.index.backend import store_of
from retriever.index.layout import IndexLayout, generation_name, generation_number
from retriever.index.manifest import Manifest, now_iso
from retriever.index.milvus import collections
from retriever.index.milvus.collections import DOCUMENTS, FILES, PART_BITS, PASSAGES, PLACEHOLDER, VARCHAR_BYTES
from retriever.index.milvus.connection import connect
from retriever.index.milvus.reader import analyze, chunks, id_list, text_pieces
from retriever.index.snapshot import LiveDocument
from retriever.ingest.chunking import Passage, encoding_text
from retriever.ingest.documents import Document

INSERT_ROWS = 512  # passages per insert call


class MilvusWriter:
    """One update of a Milvus-stored index: add documents, delete live ones, record files, commit."""

    def __init__(self, layout: IndexLayout, manifest: Manifest, base: Any, segment_rows: int | None = None) -> None:
        from retriever.index.writer import SEGMENT_ROWS

        self.layout, self.base, self.segment_rows = layout, base, segment_rows or SEGMENT_ROWS
        self.manifest = copy.deepcopy(manifest)
        self.uri = store_of(manifest).uri
        self.client = connect(self.uri)
        self.rekind = False
        self.commits = 0
        self.started = time.perf_counter()
        self._passages: list[dict[str, Any]] = []
        self._documents: list[dict[str, Any]] = []
        self._added_documents = self._added_passages = 0
        self._deleting: dict[int, int] = {}  # document version (first passage id) -> its passages
        self._files: dict[str, tuple[str, int]] = {}
        self._removed_files: set[str] = set()
        self._new = not manifest.generation
        if self._new:
            backend = self.manifest.backend
            backend.setdefault("collection", collections.new_prefix(layout.root))
            backend.setdefault("analyzer", store_of(manifest).option("analyzer", "retriever"))
            collections.drop(self.client, backend)  # leftovers of this very build's failed first attempt only
            collections.create(self.client, backend, self.uri, int(self.manifest.model["dimension"]),
                               self.manifest.ann["requested"], self.manifest.model)
            self._known_files: set[str] = set()
        else:
            collections.check(self.client, self.manifest.backend, self.uri, self.manifest.model, layout.name)
            self._rollback(self.manifest.next_passage_id)
            self._apply(self.manifest.backend.get("pending") or {})
            self._known_files = set(base.catalog.hashes()) if base is not None else set()
        self.names = collections.names(self.manifest.backend)
        self._watermark = self.manifest.next_passage_id  # ids below it are committed

    @property
    def generation(self) -> str:
        return self.manifest.generation

    # changes ------------------------------------------------------------------------------------------------
    def add(self, doc: Document, passages: list[Passage], vectors: np.ndarray, file: str | None,
            passage_ids: Sequence[int] | None = None) -> None:
        """Queue a document's rows (inserted every ``INSERT_ROWS`` passages); its version is its first passage id."""
        if len(passages) != len(vectors):
            raise ValueError("each passage needs one vector")
        version = self.manifest.next_passage_id
        self.manifest.next_passage_id += len(passages)
        metadata = json.loads(json.dumps(doc.metadata, default=str))
        # float16 precision, as the local store keeps vectors: both stores then score exactly alike
        vectors = np.asarray(vectors, dtype=np.float16).astype(np.float32)
        for offset, (passage, vector) in enumerate(zip(passages, vectors)):
            self._passages.append({
                "pid": version + offset, "version": version, "doc_id": doc.doc_id, "ordinal": passage.ordinal,
                "start_char": passage.start, "end_char": passage.end, "title": doc.title, "source": doc.source or "",
                "metadata": metadata, "text": passage.text, "lexical": encoding_text(doc.title, passage.text),
                "vector": vector.tolist(),
            })
        for part, piece in enumerate(text_pieces(doc.text)):
            head = part == 0
            self._documents.append({
                "key": (version << PART_BITS) | part, "version": version, "part": part, "doc_id": doc.doc_id,
                "text": piece, "title": doc.title if head else "", "source": (doc.source or "") if head else "",
                "metadata": metadata if head else {}, "content_hash": doc.content_hash() if head else "",
                "file": file or "", "passages": len(passages), "unused": PLACEHOLDER,
            })
        self._added_documents += 1
        self._added_passages += len(passages)
        if len(self._passages) >= INSERT_ROWS:
            self._insert()

    def delete(self, documents: Iterable[LiveDocument]) -> None:
        for doc in documents:
            self._deleting[int(doc.stored.ord)] = int(doc.stored.rows)

    def set_file(self, path: str, content_hash: str, documents: int) -> None:
        self._files[path] = (content_hash, documents)
        self._removed_files.discard(path)

    def remove_file(self, path: str) -> None:
        self._removed_files.add(path)
        self._files.pop(path, None)

    def full(self) -> bool:
        return self._added_passages >= self.segment_rows

    @property
    def pending(self) -> bool:
        return bool(self._added_documents or self._deleting or self._files or self._removed_files)

    # commits ------------------------------------------------------------------------------------------------------
    def commit(self, extras: dict | None = None) -> Manifest:
        """Make everything so far one new generation: flush inserts, write the manifest, then apply its deletions."""
        self._insert()
        manifest = self.manifest
        pending = {
            "deleting": sorted(self._deleting),
            "files": {path: [digest, count] for path, (digest, count) in sorted(self._files.items())},
            "removed_files": sorted(self._removed_files),
        }
        known = (self._known_files | set(self._files)) - self._removed_files
        counts = manifest.counts
        manifest.counts = {
            "documents": counts.get("documents", 0) + self._added_documents - len(self._deleting),
            "passages": counts.get("passages", 0) + self._added_passages - sum(self._deleting.values()),
            "files": len(known),
        }
        if self.rekind:
            collections.rebuild_vector_index(self.client, manifest.backend, manifest.ann["requested"])
            self.rekind = False
        for name in (self.names[PASSAGES], self.names[DOCUMENTS]):
            self.client.flush(name)  # durable and indexed before the manifest calls them committed
        generation = generation_name(generation_number(manifest.generation) + 1 if manifest.generation else 1)
        manifest.backend["pending"] = pending
        if extras:
            manifest.extras.update(extras)
        manifest.base, manifest.generation = manifest.generation or None, generation
        manifest.updated_at = now_iso()
        manifest.last_build_seconds = round(time.perf_counter() - self.started, 3)
        manifest.save(self.layout.manifest_path(generation))
        self.layout.switch(generation, manifest.base)
        self._apply(pending)
        self._watermark = manifest.next_passage_id
        self._known_files = known
        self._deleting, self._files, self._removed_files = {}, {}, set()
        self._added_documents = self._added_passages = 0
        self._new = False
        self.commits += 1
        return copy.deepcopy(manifest)

    def abort(self) -> None:
        """Undo what this update inserted since its last commit (a new index that never committed is dropped)."""
        self._passages, self._documents = [], []
        try:
            if self._new:
                collections.drop(self.client, self.manifest.backend)
            else:
                self._rollback(self._watermark)
        except Exception:  # noqa: BLE001 - the next writer rolls back what this one could not
            pass

    def compact(self) -> None:
        """Ask Milvus to merge its segments and purge deleted rows (``retriever optimize``)."""
        for name in self.names.values():
            self.client.compact(name)

    # internals ------------------------------------------------------------------------------------------------
    def _insert(self) -> None:
        if self._passages:
            rows, self._passages = self._passages, []
            for row, text in zip(rows, analyze([r["lexical"] for r in rows], self.manifest.backend["analyzer"])):
                row["lexical"] = text
                _check_sizes(row, ("doc_id", "title", "source", "text", "lexical"))
            self.client.insert(self.names[PASSAGES], rows)
        if self._documents:
            rows, self._documents = self._documents, []
            for row in rows:
                _check_sizes(row, ("doc_id", "text", "title", "source", "file"))
            self.client.insert(self.names[DOCUMENTS], rows)

    def _rollback(self, watermark: int) -> None:
        """Delete rows inserted at or above ``watermark`` (never committed)."""
        names = collections.names(self.manifest.backend)
        self.client.delete(names[PASSAGES], filter=f"pid >= {watermark}")
        self.client.delete(names[DOCUMENTS], filter=f"version >= {watermark}")

    def _apply(self, pending: dict[str, Any]) -> None:
        """Apply a commit's deletions and file records (idempotent: a later writer may apply them again)."""
        names = collections.names(self.manifest.backend)
        for part in chunks(pending.get("deleting", [])):
            self.client.delete(names[PASSAGES], filter=f"version in {id_list(part)}")
            self.client.delete(names[DOCUMENTS], filter=f"version in {id_list(part)}")
        files = pending.get("files", {})
        if files:
            self.client.upsert(names[FILES], [{"path": path, "hash": digest, "documents": int(count),
                                               "unused": PLACEHOLDER} for path, (digest, count) in files.items()])
        for part in chunks(pending.get("removed_files", [])):
            self.client.delete(names[FILES], filter=f"path in {id_list(part)}")


def _check_sizes(row: dict[str, Any], fields: Sequence[str]) -> None:
    for name in fields:
        if len(row[name].encode("utf-8")) > VARCHAR_BYTES:
            raise RetrieverError(
                f"document {row['doc_id'][:80]!r}: its {name} is longer than Milvus's {VARCHAR_BYTES:,}-byte text "
                "field; shorten it or use the local store"
            )
