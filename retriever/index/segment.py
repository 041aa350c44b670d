"""One immutable segment: written once (documents, passages, vectors, BM25 postings), then only read.

A segment folder holds ``store.sqlite`` (documents and passages), ``vectors/`` (float16 vectors, memory-mapped,
and the ANN over them), ``lexical/`` (BM25 postings), ``doc_of_row.npy`` and ``passage_ids.npy`` (row -> document
ordinal and row -> global passage id, memory-mapped so ranking needs no SQL). Which of its rows are deleted is
not part of the segment: each generation names its own deletion file, so deleting costs the deletion only.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import CorruptIndexError, RetrieverError
from retriever.index.layout import STAGING_MARKER, IndexLayout
from retriever.index.lexical import LexicalSegment
from retriever.index.manifest import SegmentEntry
from retriever.index.store import SegmentStore, StoreWriter
from retriever.index.vectors import SegmentVectors
from retriever.ingest.chunking import Passage
from retriever.ingest.documents import Document

STORE = "store.sqlite"
VECTORS = "vectors"
LEXICAL = "lexical"
DOC_OF_ROW = "doc_of_row.npy"
PASSAGE_IDS = "passage_ids.npy"


class SegmentBuilder:
    """Collects documents with their passages and vectors in a staging folder, then publishes a segment.

    Texts go to SQLite as they arrive; vectors are kept as float16 (half the memory) until ``finish``.
    """

    def __init__(self, layout: IndexLayout, name: str, ann: dict[str, Any], dimension: int) -> None:
        self.layout, self.name, self.ann, self.dimension = layout, name, ann, dimension
        self.staging = layout.staging_dir()
        self.store = StoreWriter(self.staging / STORE)
        self._vectors: list[np.ndarray] = []
        self._doc_of_row: list[np.ndarray] = []
        self._passage_ids: list[int] = []
        self.files: set[str] = set()

    @property
    def rows(self) -> int:
        return self.store.rows

    @property
    def documents(self) -> int:
        return self.store.documents

    def add(self, doc: Document, passages: list[Passage], vectors: np.ndarray, file: str | None,
            passage_ids: Sequence[int]) -> None:
        if len(passages) != len(vectors) or len(passages) != len(passage_ids):
            raise ValueError("each passage needs one vector and one id")
        self._doc_of_row.append(np.full(len(passages), self.store.documents, dtype=np.int64))
        self.store.add(doc, passages, file, passage_ids)
        self._vectors.append(np.asarray(vectors, dtype=np.float16))
        self._passage_ids += [int(i) for i in passage_ids]
        if file is not None:
            self.files.add(file)

    def finish(self) -> SegmentEntry:
        """Write the vectors, postings and row maps, fsync, and rename the folder into ``segments/``."""
        texts = list(self.store.encoding_texts())
        self.store.finish()
        lexical_meta = LexicalSegment.write(self.staging / LEXICAL, texts)
        del texts
        vectors = (np.concatenate(self._vectors) if self._vectors
                   else np.zeros((0, self.dimension), dtype=np.float16)).astype(np.float32)
        self._vectors = []
        vector_meta = SegmentVectors.write(self.staging / VECTORS, vectors, self.ann["requested"],
                                           self.ann.get("params") or None)
        del vectors
        doc_of_row = np.concatenate(self._doc_of_row) if self._doc_of_row else np.zeros(0, dtype=np.int64)
        np.save(self.staging / DOC_OF_ROW, doc_of_row.astype(np.int64), allow_pickle=False)
        np.save(self.staging / PASSAGE_IDS, np.asarray(self._passage_ids, dtype=np.int64), allow_pickle=False)
        written = [p for p in sorted(self.staging.rglob("*")) if p.is_file() and p.name != STAGING_MARKER]
        files = {p.relative_to(self.staging).as_posix(): p.stat().st_size for p in written}
        checksums = {p.relative_to(self.staging).as_posix(): file_sha256(p) for p in written}
        self.layout.publish(self.staging, self.name)
        return SegmentEntry(
            name=self.name, rows=self.store.rows, documents=self.store.documents, vectors=vector_meta,
            lexical=lexical_meta, files=files, checksums=checksums,
            first_passage_id=min(self._passage_ids) if self._passage_ids else 0,
        )

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.store.abort()
        shutil.rmtree(self.staging, ignore_errors=True)


class OpenSegment:
    """A published segment opened for reading; shared by every generation that lists it."""

    def __init__(self, folder: Path, entry: SegmentEntry, store: SegmentStore, vectors: Any, lexical: Any,
                 doc_of_row: np.ndarray, passage_ids: np.ndarray) -> None:
        self.folder, self.entry = folder, entry
        self.store, self.vectors, self.lexical = store, vectors, lexical
        self.doc_of_row, self.passage_ids = doc_of_row, passage_ids

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def rows(self) -> int:
        return self.entry.rows

    @classmethod
    def open(cls, layout: IndexLayout, entry: SegmentEntry) -> OpenSegment:
        """Open every part now (so later commits cannot pull files from under this reader); damage is named."""
        folder = layout.segment_dir(entry.name)

        def corrupt(part: str, why: str) -> CorruptIndexError:
            return CorruptIndexError(f"index {layout.name} is corrupt: segment {entry.name}: {part} {why}")

        if not folder.is_dir():
            raise corrupt("folder", "is missing")
        for file, size in entry.files.items():
            path = folder / file
            try:
                actual = path.stat().st_size
            except OSError:
                raise corrupt(file, "is missing") from None
            if actual != size:
                raise corrupt(file, f"has {actual} bytes, {size} were written")
        try:
            store = SegmentStore(folder / STORE)
        except Exception as exc:  # noqa: BLE001 - sqlite reports damage in many ways
            raise corrupt(STORE, f"is unreadable ({str(exc)[:80]})") from None
        try:
            vectors = SegmentVectors.open(folder / VECTORS, entry.vectors)
        except Exception as exc:  # noqa: BLE001 - numpy and FAISS report damage in many ways
            store.close()
            if isinstance(exc, RetrieverError) and not isinstance(exc, CorruptIndexError):
                raise  # the user's setting (RETRIEVER_FLAT_SCAN), not the files: the index is fine
            raise corrupt(VECTORS, f"are unreadable ({str(exc)[:80]})") from None
        try:
            lexical = LexicalSegment.open(folder / LEXICAL)
        except Exception as exc:  # noqa: BLE001
            store.close()
            raise corrupt(LEXICAL, f"is unreadable ({str(exc)[:80]})") from None
        try:
            # plain views of the mappings: indexing a np.memmap costs ~6 us of Python per item, and a search
            # looks up the document of every candidate (0.8 ms a hybrid query at 100k passages, profiled)
            doc_of_row = np.load(folder / DOC_OF_ROW, mmap_mode="r", allow_pickle=False).view(np.ndarray)
            passage_ids = np.load(folder / PASSAGE_IDS, mmap_mode="r", allow_pickle=False).view(np.ndarray)
        except Exception as exc:  # noqa: BLE001
            store.close()
            raise corrupt("row maps", f"are unreadable ({str(exc)[:80]})") from None
        if len(doc_of_row) != entry.rows or len(passage_ids) != entry.rows or len(vectors) != entry.rows \
                or len(lexical) != entry.rows:
            store.close()
            raise corrupt("parts", f"disagree on the number of rows ({entry.rows} expected)")
        return cls(folder, entry, store, vectors, lexical, doc_of_row, passage_ids)

    def close(self) -> None:
        self.store.close()


def read_deletes(layout: IndexLayout, entry: SegmentEntry) -> np.ndarray:
    """A bool mask of the live rows of a segment in one generation."""
    live = np.ones(entry.rows, dtype=bool)
    if entry.deletes is None:
        return live
    path = layout.root / "deletes" / entry.deletes
    try:
        rows = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise CorruptIndexError(
            f"index {layout.name} is corrupt: deletion file {entry.deletes} is unreadable ({str(exc)[:60]})"
        ) from None
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or len(rows) != entry.deleted_rows \
            or (len(rows) and (rows.min() < 0 or rows.max() >= entry.rows)):
        raise CorruptIndexError(f"index {layout.name} is corrupt: deletion file {entry.deletes} does not match")
    live[rows] = False
    return live


def write_deletes(layout: IndexLayout, segment: str, generation: str, rows: np.ndarray) -> str:
    """Write the deleted rows of a segment as of a generation; returns the file name for the manifest."""
    from retriever.index.files import fsync_file

    name = f"{segment}.{generation}.npy"
    path = layout.root / "deletes" / name
    np.save(path, np.unique(np.asarray(rows, dtype=np.int64)), allow_pickle=False)
    fsync_file(path)
    return name


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_segment(layout: IndexLayout, entry: SegmentEntry) -> list[str]:
    """Every file of a segment against the checksum recorded when it was written; returns the damaged ones."""
    folder = layout.segment_dir(entry.name)
    damaged = []
    for file, expected in entry.checksums.items():
        path = folder / file
        try:
            if file_sha256(path) != expected:
                damaged.append(f"{entry.name}/{file}")
        except OSError:
            damaged.append(f"{entry.name}/{file} (missing)")
    return damaged
