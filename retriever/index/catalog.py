"""The file catalog: content hash and document count of every indexed file, for incremental folder sync.

One small SQLite file per generation that changed it (``catalog/files.<generation>.sqlite``); a write that
indexes no folder (``add``, ``remove``) keeps the previous file, so it costs nothing there.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from retriever.errors import CorruptIndexError
from retriever.index.files import fsync_file
from retriever.index.layout import IndexLayout

SCHEMA = ("CREATE TABLE IF NOT EXISTS files "
          "(path TEXT PRIMARY KEY, content_hash TEXT NOT NULL, documents INTEGER NOT NULL)")


class FileCatalog:
    """Read access to one generation's catalog (an index built from records only has none)."""

    def __init__(self, path: Path | None, index_name: str) -> None:
        self.path = path
        self.entries: dict[str, tuple[str, int]] = {}
        if path is None:
            return
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
            try:
                self.entries = {p: (h, n) for p, h, n in db.execute("SELECT path, content_hash, documents FROM files")}
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise CorruptIndexError(f"index {index_name} is corrupt: file catalog {path.name} ({exc})") from None

    def hashes(self) -> dict[str, str]:
        return {p: h for p, (h, _) in self.entries.items()}

    def documents(self, path: str) -> int:
        return self.entries.get(path, ("", 0))[1]

    def __len__(self) -> int:
        return len(self.entries)


def write_catalog(layout: IndexLayout, generation: str, base: Path | None, updates: dict[str, tuple[str, int]],
                  removals: Iterable[str]) -> str:
    """The next generation's catalog: the base one with files set and removed; returns its file name."""
    path = layout.catalog_path(generation)
    tmp = path.with_name(path.name + ".tmp")
    if base is not None:
        shutil.copyfile(base, tmp)
    db = sqlite3.connect(tmp)
    try:
        db.execute(SCHEMA)
        db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in removals])
        db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?)",
                       [(p, h, n) for p, (h, n) in updates.items()])
        db.commit()
    finally:
        db.close()
    fsync_file(tmp)
    tmp.replace(path)
    return path.name
