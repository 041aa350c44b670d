"""Passage and document metadata in SQLite: random access by passage id, incremental updates.

Tables: ``documents`` (one row per document id), ``passages`` (the integer ids used in the
ANN index, with text and character offsets), ``files`` (content hash per indexed file, for
incremental indexing) and ``meta`` (the next free passage id).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import CorruptIndexError
from retriever.ingest.chunking import Passage
from retriever.ingest.documents import Document

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL, file TEXT
);
CREATE INDEX IF NOT EXISTS documents_file ON documents(file);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
    text TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_doc ON passages(doc_id);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, content_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoredPassage:
    """A passage row joined with its document: everything a search hit shows."""

    id: int
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    title: str
    source: str | None
    metadata: dict[str, Any]


class MetadataStore:
    """One SQLite file; writers work on a staged copy, so readers never see half an update."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        if not readonly:
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def commit(self) -> None:
        self.db.commit()

    # documents and passages -------------------------------------------------------------
    def next_passage_id(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='next_passage_id'").fetchone()
        return int(row[0]) if row else 0

    def add_document(self, doc: Document, passages: list[Passage], file: str | None) -> list[int]:
        """Store a document and its passages; returns the passage ids to use in the ANN index."""
        first = self.next_passage_id()
        ids = list(range(first, first + len(passages)))
        self.db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.title, doc.source, json.dumps(doc.metadata, default=str),
             doc.content_hash(), file),
        )
        self.db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)",
            [(i, p.doc_id, p.ordinal, p.text, p.start, p.end) for i, p in zip(ids, passages)],
        )
        self.db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('next_passage_id', ?)", (str(first + len(ids)),)
        )
        return ids

    def remove_documents(self, doc_ids: Iterable[str]) -> list[int]:
        """Delete documents; returns the passage ids to remove from the ANN index."""
        removed: list[int] = []
        for doc_id in doc_ids:
            removed += [r[0] for r in self.db.execute("SELECT id FROM passages WHERE doc_id=?", (doc_id,))]
            self.db.execute("DELETE FROM passages WHERE doc_id=?", (doc_id,))
            self.db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
        return removed

    def document_hashes(self, doc_ids: Iterable[str] | None = None) -> dict[str, str]:
        if doc_ids is None:
            return dict(self.db.execute("SELECT doc_id, content_hash FROM documents"))
        out = {}
        for doc_id in doc_ids:
            row = self.db.execute("SELECT content_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
            if row:
                out[doc_id] = row[0]
        return out

    def documents_of_file(self, file: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT doc_id FROM documents WHERE file=?", (file,))]

    def document_file(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT file FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def passages(self, ids: Iterable[int]) -> dict[int, StoredPassage]:
        """Passages by id, with their documents' title, source and metadata."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.db.execute(
            "SELECT p.id, p.doc_id, p.ordinal, p.text, p.start, p.end, d.title, d.source, d.metadata "
            "FROM passages p JOIN documents d ON d.doc_id = p.doc_id "
            f"WHERE p.id IN ({','.join('?' * len(ids))})",
            ids,
        )
        return {
            r[0]: StoredPassage(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))
            for r in rows
        }

    def doc_ids_of_passages(self, ids: Iterable[int]) -> dict[int, str]:
        """Passage id -> document id: all that ranking needs, without loading texts."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.db.execute(f"SELECT id, doc_id FROM passages WHERE id IN ({','.join('?' * len(ids))})", ids)
        return dict(rows.fetchall())

    def passage_ids_of(self, doc_ids: Iterable[str]) -> list[int]:
        out: list[int] = []
        for doc_id in doc_ids:
            out += [r[0] for r in self.db.execute("SELECT id FROM passages WHERE doc_id=?", (doc_id,))]
        return out

    def passage_texts(self) -> tuple[list[int], list[str]]:
        """All passage ids with what the encoder saw (title and text): the input of the BM25 index."""
        from retriever.ingest.chunking import encoding_text

        rows = self.db.execute(
            "SELECT p.id, d.title, p.text FROM passages p JOIN documents d ON d.doc_id = p.doc_id ORDER BY p.id"
        ).fetchall()
        return [r[0] for r in rows], [encoding_text(r[1], r[2]) for r in rows]

    def passage_ids_where(self, conditions: list) -> np.ndarray:
        """Ids of the passages whose documents meet every condition (see ``retriever.search.filters``)."""
        clauses, params = [], []
        for condition in conditions:
            clause, values = condition.sql()
            clauses.append(clause)
            params += values
        where = " AND ".join(clauses) or "1"
        try:
            rows = self.db.execute(
                f"SELECT p.id FROM passages p JOIN documents d ON d.doc_id = p.doc_id WHERE {where}", params
            ).fetchall()
        except sqlite3.OperationalError as exc:  # metadata stored before it was validated (NaN is not JSON)
            raise CorruptIndexError(f"cannot filter {self.path.parent}: its metadata is not valid JSON ({exc}); "
                                    "rebuild the index") from None
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def field_types(self, field: str) -> set[str]:
        """The JSON types a record field holds across documents (empty: no document has it)."""
        from retriever.search.filters import field_types_sql

        query, params = field_types_sql(field)
        return {row[0] for row in self.db.execute(query, params)}

    def count_documents(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def count_passages(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM passages").fetchone()[0])

    # files --------------------------------------------------------------------------------
    def file_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, content_hash FROM files"))

    def set_file(self, path: str, content_hash: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?)", (path, content_hash))

    def remove_file(self, path: str) -> None:
        self.db.execute("DELETE FROM files WHERE path=?", (path,))

    def count_files(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM files").fetchone()[0])
