"""Incremental indexing: which files under a folder are new, changed, unchanged or deleted.

Files are compared by content hash with what the index recorded, so unchanged files are
neither parsed nor re-encoded; inside a changed file, documents are compared by their own
hash so that only changed records of a large JSONL file are re-encoded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from retriever.errors import InputFormatError
from retriever.ingest.documents import Document
from retriever.ingest.readers import (
    UnreadableFileError,
    is_supported,
    iter_corpus_files,
    iter_file,
    open_regular,
    special_file_problem,
)
from retriever.validation import unicode_problem

FIRST_FEW = 3  # skipped items named in a warning; the rest are counted


@dataclass
class IndexReport:
    """What an indexing run did, counted in documents (files for the skipped ones).

    What was skipped (unreadable files, records with no text and no title, duplicate ids) is
    listed here; ``warnings()`` says it in one line per kind, and a strict run refuses to write
    anything when there is something to skip (``strict_error()``).
    """

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    passages_encoded: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    unsupported_files: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    skipped_records: list[tuple[str, str]] = field(default_factory=list)  # (file:line or "record N", reason)
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
        if self.skipped_records:
            notes.append(f"{len(self.skipped_records)} records without text skipped")
        return line + ("; " + ", ".join(notes) if notes else "")

    def _skips(self) -> list[str]:
        """One phrase per kind of skipped input: how many, and the first few by name."""
        kinds = [
            ("unreadable file", "unreadable files", [f"{file} ({reason})" for file, reason in self.skipped_files]),
            ("record with no text and no title", "records with no text and no title",
             [where for where, _ in self.skipped_records]),
            ("duplicate document id", "duplicate document ids (each kept once)",
             [repr(doc_id) for doc_id in self.duplicate_ids]),
        ]
        return [counted(one, many, items) for one, many, items in kinds if items]

    def warnings(self) -> list[str]:
        """One line per kind of skipped input, e.g. ``skipped 2 records with no text and no title: a:3, a:9``."""
        return [f"skipped {phrase}" for phrase in self._skips()]

    def strict_error(self) -> InputFormatError | None:
        """The error a strict run raises instead of skipping, or None when nothing was to be skipped."""
        skips = self._skips()
        if not skips:
            return None
        return InputFormatError(f"strict: {'; '.join(skips)}; nothing was written (without strict they are skipped)")


def counted(one: str, many: str, items: list[str]) -> str:
    """``2 records with no text and no title: a:3, a:9``: the count, then the first few by name.

    The form of every "skipped" warning, so that a thousand skipped records make one line.
    """
    named = ", ".join(items[:FIRST_FEW]) + (f" and {len(items) - FIRST_FEW} more" if len(items) > FIRST_FEW else "")
    return f"{len(items)} {one if len(items) == 1 else many}: {named}"


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
    skipped_records: list[tuple[str, str]] = field(default_factory=list)  # (file:line, reason)


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file(path: Path) -> str:
    """The content hash of a regular file, read in blocks (memory stays bounded whatever its size)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_folder(root: Path, known: dict[str, str]) -> FileChanges:
    """Compare the files under ``root`` with ``known`` (absolute path -> hash)."""
    root = root.resolve()
    changes = FileChanges({}, {}, [], [], [], 0)
    seen: set[str] = set()
    folders: list[tuple[str, str]] = []  # folders that could not be listed
    for path in iter_corpus_files(root, folders):
        if not is_supported(path):
            changes.unsupported += 1
            continue
        key = str(path)
        seen.add(key)
        if unicode_problem(key):
            changes.skipped.append((key, "file name is not valid UTF-8"))
            continue
        problem = special_file_problem(path)  # a FIFO would block, /dev/zero would never end
        if problem:
            changes.skipped.append((key, problem))
            continue
        try:
            digest = hash_file(path)
        except UnreadableFileError as exc:
            changes.skipped.append((key, str(exc)))
            continue
        except OSError as exc:
            changes.skipped.append((key, f"cannot read ({exc.strerror or exc})"))
            continue
        if known.get(key) == digest:
            changes.unchanged.append(key)
            continue
        try:
            ids = [doc.doc_id for doc in iter_documents(root, key, changes.skipped_records)]
        except UnreadableFileError as exc:
            changes.skipped.append((key, str(exc)))
            if key in known:  # keep its previous documents rather than losing them
                changes.unchanged.append(key)
            continue
        changes.ids[key] = ids
        changes.hashes[key] = digest
    changes.skipped += folders
    prefix = str(root) + "/" if root.is_dir() else str(root)
    hidden = tuple(folder.rstrip("/") + "/" for folder, _ in folders)
    for f in known:
        if (f == str(root) or f.startswith(prefix)) and f not in seen:
            if hidden and f.startswith(hidden):  # in a folder that could not be read: kept as it was
                changes.unchanged.append(f)
            else:
                changes.deleted.append(f)
    return changes


def read_documents(root: Path, file: str, skipped: list[tuple[str, str]] | None = None) -> list[Document]:
    """The documents of one corpus file; a file's own id is its path relative to the indexed folder.

    Records that are skipped (no text and no title) go to ``skipped``; when it is None they are left out
    silently (the scan that came first has reported them).
    """
    return list(iter_documents(root, file, skipped))


def iter_documents(root: Path, file: str, skipped: list[tuple[str, str]] | None = None) -> Iterator[Document]:
    """``read_documents`` one at a time (a JSONL file of millions of records streams in bounded memory)."""
    root = root.resolve()
    base = root if root.is_dir() else root.parent
    path = Path(file)
    yield from iter_file(path, path.relative_to(base).as_posix(), [] if skipped is None else skipped)
