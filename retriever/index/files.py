"""Durable writes: a file replaced whole by one rename, and the fsyncs that make a commit survive a crash.

A leaf of ``retriever.index``: the layout, manifests and segments all write through it.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path


def fsync_tree(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            fsync_tree(entry)
            continue
        with open(entry, "rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomically(path: Path, data: object) -> None:
    write_atomically(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
