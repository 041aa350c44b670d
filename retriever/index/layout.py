"""The index folder on disk: where each file lives, the writer lock, reader leases, garbage collection.

Layout (format 2)::

    DIR/CURRENT                        name of the live generation ("gen-000007"), replaced atomically
    DIR/generations/gen-000007.json    that generation's manifest: the live segments and their deletion marks
    DIR/segments/seg-000003/           one immutable segment (store, vectors, BM25 postings, meta)
    DIR/deletes/seg-000003.gen-000007.npy   rows of segment 3 deleted as of generation 7
    DIR/catalog/files.gen-000007.sqlite     content hash of each indexed file (folder sync)
    DIR/readers/<id>.lease             one per open reader: the generation it reads, under a shared flock
    DIR/.lock                          held (exclusive flock) by the one process writing, for the whole update
    DIR/judgments.sqlite               relevance judgments (retriever.judgments), outside every generation: kept
                                       through re-indexing and garbage collection, which never looks at it
    DIR/.staging-<12 hex>/             a segment being written (it holds the marker file .retriever-staging from its
                                       first moment); never referenced until it is renamed into place

Nothing is ever modified in place: a write adds files and points CURRENT at a new manifest with one rename,
so an interrupted write leaves the previous generation loadable. Files that no live generation references are
removed by the next writer, unless an open reader's lease still names a generation that uses them. Only what
the engine wrote is ever removed (names it gives, numbers it has handed out, its staging marker); anything else
found in these folders is left alone, with one warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

from retriever.errors import CorruptIndexError, IndexBusyError, IndexNotFoundError, RetrieverError, RetrieverWarning
from retriever.index.files import fsync_dir, fsync_tree, write_atomically

CURRENT = "CURRENT"
GENERATIONS = "generations"
SEGMENTS = "segments"
DELETES = "deletes"
CATALOG = "catalog"
READERS = "readers"
LOCK = ".lock"
STAGING_PREFIX = ".staging-"
STAGING_NAME = re.compile(r"^\.staging-[0-9a-f]{12}$")
STAGING_MARKER = ".retriever-staging"  # written into a staging folder the moment it is made: it is the engine's
GENERATION_NAME = re.compile(r"^gen-(\d{6,})$")
SEGMENT_NAME = re.compile(r"^seg-(\d{6,})$")  # f"seg-{n:06d}": six digits, more past 999999
DELETES_NAME = re.compile(r"^seg-\d{6,}\.gen-(\d{6,})\.npy$")
CATALOG_NAME = re.compile(r"^files\.gen-(\d{6,})\.sqlite$")
MANIFEST_TMP_NAME = re.compile(r"^\.gen-\d{6,}\.json\.[0-9a-f]{8}\.tmp$")  # write_atomically, interrupted
READ_ONLY_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM}  # a lease cannot be written: read without one
_warned_foreign: set[str] = set()  # index folders already warned about in this process
JUDGMENTS = ("judgments.sqlite", "judgments.sqlite-wal", "judgments.sqlite-shm")  # retriever.judgments: never collected
TUNED_MODELS = "models"  # retriever tune: the tuned models the index's generations name
OWN_ENTRIES = {CURRENT, GENERATIONS, SEGMENTS, DELETES, CATALOG, READERS, LOCK, "README.md", *JUDGMENTS, TUNED_MODELS}
LEGACY_GENERATION = re.compile(r"^gen-\d{6,}$")  # format 1 kept whole generations as folders


def generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def generation_number(name: str) -> int:
    match = GENERATION_NAME.match(name)
    if not match:
        raise ValueError(name)
    return int(match.group(1))


class IndexLayout:
    """Paths and the small atomic operations on one index folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        return str(self.root)

    # paths ---------------------------------------------------------------------------------------
    def manifest_path(self, generation: str) -> Path:
        return self.root / GENERATIONS / f"{generation}.json"

    def segment_dir(self, segment: str) -> Path:
        return self.root / SEGMENTS / segment

    def deletes_path(self, segment: str, generation: str) -> Path:
        return self.root / DELETES / f"{segment}.{generation}.npy"

    def catalog_path(self, generation: str) -> Path:
        return self.root / CATALOG / f"files.{generation}.sqlite"

    # state ---------------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether an index (of any format, damaged or not) lives here."""
        return (self.root / CURRENT).exists()

    def check_folder(self) -> None:
        """Refuse a file, or a non-empty folder that is not an index: never write into a user's folder."""
        if self.root.exists() and not self.root.is_dir():
            raise RetrieverError(f"{self.root} is a file, not an index folder; choose another --index")
        if self.root.is_dir() and not self.exists():
            self.refuse_lost_current()
            foreign = [p.name for p in self.root.iterdir()
                       if p.name not in OWN_ENTRIES and not STAGING_NAME.match(p.name)]
            if foreign:
                raise RetrieverError(
                    f"{self.root} is a non-empty folder that is not a retriever index ({foreign[0]!r} is in it); "
                    "choose an empty or new folder for --index"
                )

    def refuse_lost_current(self) -> None:
        """An index whose CURRENT is gone (generations and segments are still here) is named, never overwritten:
        a new index written into it would collide with its segments, and which generation was live is unknown."""
        folder = self.root / GENERATIONS
        manifests = sorted((p for p in folder.glob("gen-*.json") if GENERATION_NAME.match(p.stem)),
                           key=lambda p: generation_number(p.stem), reverse=True) if folder.is_dir() else []
        if not manifests and not any((self.root / SEGMENTS).glob("seg-*")):
            return
        newest = next((p.stem for p in manifests if self._complete(p)), None)
        if newest is None:
            raise CorruptIndexError(
                f"index {self.root} has lost its {CURRENT} file and no complete generation is left in it; "
                "move it away and rebuild it with 'retriever index'")
        raise CorruptIndexError(
            f"index {self.root} has lost its {CURRENT} file; its newest complete generation is {newest}: restore it "
            f"with 'echo {newest} > {self.root / CURRENT}' (or move the folder away and rebuild it)")

    def _complete(self, path: Path) -> bool:
        """Whether a manifest loads as its generation's and every file it names is here."""
        from retriever.index.manifest import Manifest  # manifest imports this module

        try:
            manifest = Manifest.load(path, self.name)
        except CorruptIndexError:
            return False
        if manifest.generation != path.stem:
            return False
        needed = [self.segment_dir(e.name) for e in manifest.segments]
        needed += [self.root / DELETES / e.deletes for e in manifest.segments if e.deletes]
        needed += [self.root / CATALOG / manifest.catalog] if manifest.catalog else []
        return all(p.exists() for p in needed)

    def current(self) -> str:
        """The live generation's name, or an error naming what is wrong."""
        if not self.root.exists():
            raise IndexNotFoundError(f"no index at {self.root}; build one with 'retriever index PATH'")
        if not self.root.is_dir():
            raise IndexNotFoundError(f"{self.root} is a file, not an index folder")
        pointer = self.root / CURRENT
        if not pointer.exists():
            self.refuse_lost_current()
            raise IndexNotFoundError(
                f"{self.root} is not a retriever index (no {CURRENT} file); build one with 'retriever index PATH'"
            )
        try:
            name = pointer.read_bytes().decode("ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptIndexError(f"index {self.root} is corrupt: {CURRENT} is unreadable ({exc})") from None
        if LEGACY_GENERATION.match(name) and (self.root / name).is_dir():
            raise CorruptIndexError(
                f"index {self.root} was written by retriever 0.1 (format 1), which this version does not read; "
                f"move it away and rebuild it with 'retriever index CORPUS --index {self.root}'"
            )
        if not GENERATION_NAME.match(name):
            raise CorruptIndexError(f"index {self.root} is corrupt: {CURRENT} holds {name[:40]!r}, not a generation")
        return name

    def size_bytes(self, files: list[Path]) -> int:
        total = 0
        for path in files:
            with contextlib.suppress(OSError):
                total += sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() \
                    else path.stat().st_size
        return total

    # writing ---------------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.check_folder()
        for sub in (GENERATIONS, SEGMENTS, DELETES, CATALOG, READERS):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def write_lock(self, wait: float | None = None) -> Iterator[None]:
        """The one-writer lock, held for a whole update (read, plan, encode, commit).

        ``wait``: seconds to wait for another writer (None: as long as it takes, 0: fail at once).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a") as handle:
            deadline = None if wait is None else time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise IndexBusyError(
                            f"index {self.root} is being written by another process; try again when it ends"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def staging_dir(self) -> Path:
        """A new staging folder, marked as the engine's before anything else is written into it."""
        path = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        (path / STAGING_MARKER).write_bytes(b"")
        return path

    def publish(self, staging: Path, segment: str) -> Path:
        """Make a fully written (fsynced) staging folder a segment."""
        fsync_tree(staging)
        final = self.segment_dir(segment)
        os.rename(staging, final)
        fsync_dir(final.parent)
        return final

    def switch(self, generation: str, expected_base: str | None) -> None:
        """Point CURRENT at ``generation``, if the live one is still ``expected_base`` (else nothing changes)."""
        live = self.current() if self.exists() else None
        if live != expected_base:
            raise IndexBusyError(
                f"index {self.root} changed while this update was prepared ({expected_base} -> {live}); run it again"
            )
        write_atomically(self.root / CURRENT, generation + "\n")

    # readers -------------------------------------------------------------------------------------
    def take_lease(self) -> ReaderLease | None:
        """A lease for a reader, or None where the index cannot be written (a read-only copy or mount, no write
        permission): no writer can collect such an index either, so reading it needs no protection."""
        try:
            return ReaderLease(self.root / READERS)
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno in READ_ONLY_ERRORS:
                return None
            raise

    def held_generations(self) -> set[str]:
        """Generations named by the leases of live readers; stale leases (their process is gone) are removed."""
        held: set[str] = set()
        folder = self.root / READERS
        if not folder.is_dir():
            return held
        for lease in folder.glob("*.lease"):
            try:
                with open(lease, "r+b") as handle:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:  # a live reader holds it
                        name = handle.read().decode("ascii", "replace").strip()
                        held.add(name or "*")
                        continue
                    lease.unlink(missing_ok=True)  # nobody holds it: its reader died
            except OSError:
                continue
        return held

    # garbage collection ------------------------------------------------------------------------------
    def collect_garbage(self, referenced: set[Path], keep_generations: set[str], current: str,
                        next_segment: int) -> int:
        """Remove what no kept generation references: old manifests, segments, deletion and catalog files, staging
        leftovers. Only what this engine wrote is ever removed: names it gives, with numbers it has handed out
        (segments below ``next_segment`` or holding the staging marker; generations up to the one after
        ``current``, which a failed commit writes), manifests that load as such, staging folders with its marker.
        Anything else is left alone, with one warning per index and process.
        Returns how many entries were removed."""
        from retriever.index.manifest import Manifest  # manifest imports this module

        live = generation_number(current)
        removed, foreign = 0, []

        def remove(path: Path) -> None:
            nonlocal removed
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1

        for leftover in self.root.glob(f"{STAGING_PREFIX}*"):
            if STAGING_NAME.match(leftover.name) and leftover.is_dir() and not leftover.is_symlink():
                if (leftover / STAGING_MARKER).is_file():
                    remove(leftover)
                    continue
                with contextlib.suppress(OSError):  # empty: killed between mkdir and its marker; nothing to lose
                    leftover.rmdir()
                    removed += 1
                    continue
            foreign.append(leftover)
        for manifest in (self.root / GENERATIONS).iterdir() if (self.root / GENERATIONS).is_dir() else ():
            match = GENERATION_NAME.match(manifest.stem) if manifest.suffix == ".json" else None
            if match and manifest.stem in keep_generations:
                continue
            if MANIFEST_TMP_NAME.match(manifest.name) and manifest.is_file():
                remove(manifest)
                continue
            if match and int(match.group(1)) <= live + 1 and manifest.is_file() and not manifest.is_symlink():
                try:
                    ours = Manifest.load(manifest, self.name).generation == manifest.stem
                except CorruptIndexError:
                    ours = False
                if ours:
                    remove(manifest)
                    continue
            foreign.append(manifest)
        # a commit that failed (before CURRENT moved) wrote generation live + 1 and may have published segments
        checks = ((SEGMENTS, SEGMENT_NAME, next_segment, True), (DELETES, DELETES_NAME, live + 2, False),
                  (CATALOG, CATALOG_NAME, live + 2, False))
        for folder, pattern, below, is_dir in checks:
            if not (self.root / folder).is_dir():
                continue
            for path in (self.root / folder).iterdir():
                if path in referenced:
                    continue
                match = pattern.match(path.name)
                kind_ok = not path.is_symlink() and (path.is_dir() if is_dir else path.is_file())
                marked = is_dir and (path / STAGING_MARKER).is_file()  # published, then its commit failed
                ours = match and kind_ok and (int(match.group(1)) < below or marked)
                if ours:
                    remove(path)
                else:
                    foreign.append(path)
        if foreign and str(self.root) not in _warned_foreign:
            _warned_foreign.add(str(self.root))
            first = foreign[0].relative_to(self.root).as_posix()
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            warnings.warn(
                f"index {self.root} holds {first!r}{more}, which retriever did not write; left in place "
                "(move it out of the index folder)", RetrieverWarning, stacklevel=2)
        return removed


class ReaderLease:
    """A file naming the generation a reader has open, under a shared flock that dies with the process.

    Writers keep every generation a lease names; a lease whose process is gone is removed by the next writer.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.lease"
        self._handle = open(self.path, "w+b")
        fcntl.flock(self._handle, fcntl.LOCK_SH)

    def hold(self, generation: str) -> None:
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(generation.encode("ascii"))
        self._handle.flush()

    def release(self) -> None:
        if self._handle.closed:
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        self._handle.close()

    def __del__(self) -> None:  # a reader that is garbage collected lets go of its generation
        with contextlib.suppress(Exception):
            self.release()


# durable writes ------------------------------------------------------------------------------------
def is_index_folder(folder: Path) -> bool:
    """Whether ``folder`` is an index (or a part of one), which a corpus walk must skip."""
    if (folder / CURRENT).is_file():
        return True
    parent = folder.parent
    return folder.name in {GENERATIONS, SEGMENTS, DELETES, CATALOG, READERS} and (parent / CURRENT).is_file()
