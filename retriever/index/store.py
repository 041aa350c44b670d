"""Documents and passages of one segment in SQLite: random access by row, by document id, by file, by filter.

Tables: ``documents`` (one row per document: id, title, source, metadata as JSON, content hash, file, the full
text, and the segment rows of its passages) and ``passages`` (row number in the segment, global passage id,
document, ordinal and character offsets; a passage's text is ``documents.text[start:end]``, so overlapping
windows are not stored twice). A segment's file is written once, then only read (``immutable=1``: no locks,
no journal), so any number of readers share it while writers add other segments.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import CorruptIndexError, RetrieverError
from retriever.ingest.chunking import Passage, encoding_text
from retriever.ingest.documents import Document

SCHEMA = """
CREATE TABLE documents (
    ord INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, source TEXT,
    metadata TEXT NOT NULL, content_hash TEXT NOT NULL, file TEXT, text TEXT NOT NULL,
    first_row INTEGER NOT NULL, rows INTEGER NOT NULL
);
CREATE TABLE passages (
    row INTEGER PRIMARY KEY, id INTEGER NOT NULL, doc_ord INTEGER NOT NULL, ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL
);
"""
INDEXES = """
CREATE INDEX documents_file ON documents(file);
CREATE UNIQUE INDEX passages_id ON passages(id);
"""
SQL_BATCH = 900  # SQLite's default limit of bound parameters is 999


@dataclass(frozen=True)
class StoredPassage:
    """A passage joined with its document: everything a search hit shows."""

    id: int
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    title: str
    source: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class StoredDocument:
    """Where a document lives in its segment, and what incremental indexing compares."""

    ord: int
    doc_id: str
    content_hash: str
    file: str | None
    first_row: int
    rows: int


def batched(items: Sequence[Any], size: int = SQL_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class StoreWriter:
    """Fills a new segment's SQLite file, document by document; indexes are built once at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")  # the finished file is fsynced before it is published
        self.db.executescript(SCHEMA)
        self.documents = 0
        self.rows = 0

    def add(self, doc: Document, passages: list[Passage], file: str | None, passage_ids: Sequence[int]) -> int:
        """Store a document and its passages at the next rows; returns its first row."""
        first_row = self.rows
        self.db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.documents, doc.doc_id, doc.title, doc.source, json.dumps(doc.metadata, default=str),
             doc.content_hash(), file, doc.text, first_row, len(passages)),
        )
        self.db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)",
            [(first_row + i, int(pid), self.documents, p.ordinal, p.start, p.end)
             for i, (p, pid) in enumerate(zip(passages, passage_ids))],
        )
        self.documents += 1
        self.rows += len(passages)
        return first_row

    def encoding_texts(self) -> Iterator[str]:
        """What the encoder saw for each row, in row order: the input of the segment's BM25 postings."""
        query = ("SELECT d.title, substr(d.text, p.start + 1, p.end - p.start) FROM passages p "
                 "JOIN documents d ON d.ord = p.doc_ord ORDER BY p.row")
        for title, text in self.db.execute(query):
            yield encoding_text(title, text)

    def finish(self) -> None:
        self.db.executescript(INDEXES)
        self.db.commit()
        self.db.close()

    def abort(self) -> None:
        self.db.close()


class SegmentStore:
    """Read-only access to one segment's documents and passages (safe to share between threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self.db.execute("SELECT count(*) FROM documents").fetchone()  # fails now, on open, if the file is damaged

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def documents_by_id(self, doc_ids: Sequence[str]) -> list[StoredDocument]:
        out: list[StoredDocument] = []
        for chunk in batched(list(doc_ids)):
            out += [StoredDocument(*row) for row in self._rows(
                "SELECT ord, doc_id, content_hash, file, first_row, rows FROM documents "
                f"WHERE doc_id IN ({','.join('?' * len(chunk))})", chunk)]
        return out

    def documents_of_files(self, files: Sequence[str]) -> list[StoredDocument]:
        out: list[StoredDocument] = []
        for chunk in batched(list(files)):
            out += [StoredDocument(*row) for row in self._rows(
                "SELECT ord, doc_id, content_hash, file, first_row, rows FROM documents "
                f"WHERE file IN ({','.join('?' * len(chunk))})", chunk)]
        return out

    def all_documents(self) -> Iterator[StoredDocument]:
        with self._lock:
            rows = self.db.execute("SELECT ord, doc_id, content_hash, file, first_row, rows FROM documents").fetchall()
        return (StoredDocument(*row) for row in rows)

    def rows_where(self, conditions: Sequence[Any], total_rows: int) -> np.ndarray:
        """A bool mask over the segment's rows: the passages of documents meeting every condition."""
        clauses, params = [], []
        for condition in conditions:
            clause, values = condition.sql()
            clauses.append(clause)
            params += values
        where = " AND ".join(f"({c})" for c in clauses) or "1"
        try:
            spans = self._rows(f"SELECT d.first_row, d.rows FROM documents d WHERE {where}", params)
        except sqlite3.OperationalError as exc:
            if "malformed JSON" in str(exc):  # metadata that is not valid JSON (written before validation)
                raise CorruptIndexError(f"cannot filter {self.path.parent}: its metadata is not valid JSON ({exc}); "
                                        "rebuild the index") from None
            raise RetrieverError(f"where: SQLite cannot evaluate these filters ({exc}); use fewer or simpler ones") \
                from None
        mask = np.zeros(total_rows, dtype=bool)
        for first, count in spans:
            mask[first:first + count] = True
        return mask

    def field_types(self, field: str) -> set[str]:
        """The JSON types a record field holds across the segment's documents (empty: no document has it)."""
        from retriever.search.filters import field_types_sql

        query, params = field_types_sql(field)
        return {row[0] for row in self._rows(query, params)}

    def passages(self, rows: Sequence[int]) -> dict[int, StoredPassage]:
        """Passages by row, with their documents' title, source and metadata."""
        out: dict[int, StoredPassage] = {}
        for chunk in batched([int(r) for r in rows]):
            for r in self._rows(
                "SELECT p.row, p.id, d.doc_id, p.ordinal, substr(d.text, p.start + 1, p.end - p.start), p.start, "
                "p.end, d.title, d.source, d.metadata FROM passages p JOIN documents d ON d.ord = p.doc_ord "
                f"WHERE p.row IN ({','.join('?' * len(chunk))})", chunk,
            ):
                out[r[0]] = StoredPassage(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))
        return out

    def document(self, ord_: int) -> Document:
        title, source, metadata, text, doc_id = self._rows(
            "SELECT title, source, metadata, text, doc_id FROM documents WHERE ord = ?", [ord_])[0]
        return Document(doc_id, text, title, source, json.loads(metadata))

    def copy_documents(self, ords: Sequence[int]) -> Iterator[tuple[Document, str | None, list[Passage], list[int],
                                                                  np.ndarray]]:
        """Documents with their passages, passage ids and rows, as a merge rewrites them into a new segment.

        A document's passages are the rows ``first_row`` .. ``first_row + rows - 1`` (a segment is written
        document by document), so each batch of documents reads its passages with one range scan of the
        primary key; a lookup by ``doc_ord`` per document would scan the table each time (quadratic).
        """
        for chunk in batched(sorted(int(o) for o in ords)):
            docs = self._rows(
                "SELECT ord, doc_id, title, source, metadata, text, file, first_row, rows FROM documents "
                f"WHERE ord IN ({','.join('?' * len(chunk))}) ORDER BY ord", chunk)
            if not docs:
                continue
            low, high = min(d[7] for d in docs), max(d[7] + d[8] for d in docs) - 1
            by_row = {r[0]: r for r in self._rows(
                "SELECT row, id, ordinal, start, end FROM passages WHERE row BETWEEN ? AND ?", [low, high])}
            for _, doc_id, title, source, metadata, text, file, first_row, count in docs:
                rows = [by_row[row] for row in range(first_row, first_row + count)]
                doc = Document(doc_id, text, title, source, json.loads(metadata))
                passages = [Passage(doc_id, o, text[s:e], s, e, title) for _, _, o, s, e in rows]
                yield doc, file, passages, [r[1] for r in rows], np.asarray([r[0] for r in rows], dtype=np.int64)
