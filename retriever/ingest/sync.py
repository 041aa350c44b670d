"""Incremental indexing: which files under a folder are new, changed, unchanged or deleted.

Files are compared by content hash with what the index recorded, so unchanged files are
neither parsed nor re-encoded; inside a changed file, documents are compared by their own
hash so that only changed records of a large JSONL file are re-encoded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from retriever.ingest.documents import Document
from retriever.ingest.readers import UnreadableFileError, is_supported, iter_corpus_files, read_file


@dataclass
class IndexReport:
    """What an indexing run did, counted in documents (files for the skipped ones)."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    passages_encoded: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    unsupported_files: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        line = (
            f"added {self.added}, updated {self.updated}, removed {self.removed}, "
            f"unchanged {self.unchanged} (not re-encoded) documents; "
            f"{self.passages_encoded} passages encoded in {self.seconds:.1f}s"
        )
        notes = []
        if self.skipped_files:
            notes.append(f"{len(self.skipped_files)} unreadable files skipped")
        if self.unsupported_files:
            notes.append(f"{self.unsupported_files} files of unsupported types ignored")
        if self.duplicate_ids:
            notes.append(f"{len(self.duplicate_ids)} duplicate document ids skipped")
        return line + ("; " + ", ".join(notes) if notes else "")


@dataclass
class FileChanges:
    """The result of comparing a folder with the index's file records.

    Only the document ids of changed files are kept (for deciding duplicates and moves before anything is
    written); their documents are read again, batch by batch, when they are encoded.
    """

    ids: dict[str, list[str]]  # new or changed file -> its document ids, in order
    hashes: dict[str, str]  # new or changed file -> content hash
    unchanged: list[str]
    deleted: list[str]
    skipped: list[tuple[str, str]]  # (file, reason)
    unsupported: int


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scan_folder(root: Path, known: dict[str, str]) -> FileChanges:
    """Compare the files under ``root`` with ``known`` (absolute path -> hash)."""
    root = root.resolve()
    changes = FileChanges({}, {}, [], [], [], 0)
    seen: set[str] = set()
    for path in iter_corpus_files(root):
        if not is_supported(path):
            changes.unsupported += 1
            continue
        key = str(path)
        seen.add(key)
        try:
            digest = file_hash(path.read_bytes())
        except OSError as exc:
            changes.skipped.append((key, f"cannot read ({exc.strerror or exc})"))
            continue
        if known.get(key) == digest:
            changes.unchanged.append(key)
            continue
        try:
            docs = read_documents(root, key)
        except UnreadableFileError as exc:
            changes.skipped.append((key, str(exc)))
            if key in known:  # keep its previous documents rather than losing them
                changes.unchanged.append(key)
            continue
        changes.ids[key] = [doc.doc_id for doc in docs]
        changes.hashes[key] = digest
    prefix = str(root) if root.is_file() else str(root) + "/"
    changes.deleted = [f for f in known if (f == str(root) or f.startswith(prefix)) and f not in seen]
    return changes


def read_documents(root: Path, file: str) -> list[Document]:
    """The documents of one corpus file; a file's own id is its path relative to the indexed folder."""
    root = root.resolve()
    base = root.parent if root.is_file() else root
    path = Path(file)
    return read_file(path, path.relative_to(base).as_posix())
