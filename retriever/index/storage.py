"""The index directory on disk, written atomically.

Layout::

    DIR/CURRENT          name of the live generation, replaced atomically (os.replace)
    DIR/gen-000007/      manifest.json, vectors.faiss, store.sqlite
    DIR/.lock            held by the one process writing

A write builds a complete new generation in a staging folder, fsyncs it, renames it into
place and only then points CURRENT at it. An interrupted write (Ctrl-C, kill -9, a crash, a
full disk) leaves CURRENT pointing at the previous generation, which stays loadable;
leftovers are removed by the next write.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retriever.errors import CorruptIndexError, IndexNotFoundError, RetrieverError
from retriever.index.manifest import MANIFEST_NAME

CURRENT = "CURRENT"
VECTORS = "vectors.faiss"
STORE = "store.sqlite"
LEXICAL = "lexical"


def is_index_folder(folder: Path) -> bool:
    """Whether ``folder`` is an index or one of its generations, which a corpus walk must skip."""
    if (folder / CURRENT).is_file():
        return True
    return folder.name.startswith("gen-") and (folder / STORE).is_file() and (folder / MANIFEST_NAME).is_file()


class IndexDirectory:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        return str(self.root)

    def exists(self) -> bool:
        return (self.root / CURRENT).exists()

    def current(self) -> Path:
        """The live generation's folder, or an error naming what is wrong."""
        if not self.root.exists():
            raise IndexNotFoundError(f"no index at {self.root}; build one with 'retriever index PATH'")
        pointer = self.root / CURRENT
        if not pointer.exists():
            raise IndexNotFoundError(
                f"{self.root} is not a retriever index (no {CURRENT} file); build one with 'retriever index PATH'"
            )
        generation = pointer.read_text().strip()
        folder = self.root / generation
        if not generation.startswith("gen-") or not folder.is_dir():
            raise CorruptIndexError(f"index {self.root} is corrupt: {CURRENT} points to missing {generation!r}")
        return folder

    def size_bytes(self) -> int:
        try:
            folder = self.current()
        except RetrieverError:
            return 0
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())

    @contextmanager
    def writing(self, carry: tuple[str, ...] = (STORE,)) -> Iterator[Path]:
        """A staging folder seeded with the current generation's ``carry`` entries; committed only if the
        block succeeds."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            self._remove_leftovers()
            previous = self.current() if self.exists() else None
            number = int(previous.name.split("-")[1]) + 1 if previous else 1
            final = self.root / f"gen-{number:06d}"
            staging = self.root / f".staging-{final.name}"
            staging.mkdir()
            try:
                for name in carry if previous is not None else ():
                    source = previous / name
                    if source.is_dir():
                        shutil.copytree(source, staging / name)
                    elif source.exists():
                        shutil.copyfile(source, staging / name)
                yield staging
                _fsync_tree(staging)
                os.rename(staging, final)
                _write_atomically(self.root / CURRENT, final.name + "\n")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if previous is not None:
                shutil.rmtree(previous, ignore_errors=True)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RetrieverError(
                    f"index {self.root} is being written by another process; try again when it ends"
                ) from None
            yield

    def _remove_leftovers(self) -> None:
        live = (self.root / CURRENT).read_text().strip() if self.exists() else None
        for entry in self.root.iterdir():
            stale_generation = entry.name.startswith("gen-") and entry.name != live
            if entry.is_dir() and (entry.name.startswith(".staging-") or stale_generation):
                shutil.rmtree(entry, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            _fsync_tree(entry)
            continue
        with open(entry, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
