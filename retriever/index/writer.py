"""Writing an index: one update at a time, under the writer lock, as new segments plus deletion marks.

An update takes the lock *before* it reads the live generation, so nothing can commit between its plan and its
commit. Documents stream in with their passages and vectors; every ``segment_rows`` passages the open segment is
published and a generation committed (a killed build resumes from there), and the last commit also carries the
deletions and file hashes of the update. Nothing that exists is rewritten: a write costs the change. Merges
(``retriever.index.merge``) run after the update's own commits; ``retriever.index.transaction`` runs the whole
update under the lock, whichever store the index uses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from retriever.errors import CorruptIndexError, IndexBusyError
from retriever.index.catalog import write_catalog
from retriever.index.layout import IndexLayout, generation_name, generation_number
from retriever.index.manifest import Manifest, SegmentEntry, now_iso
from retriever.index.segment import SegmentBuilder, write_deletes
from retriever.index.snapshot import LiveDocument, Snapshot
from retriever.ingest.chunking import Passage
from retriever.ingest.documents import Document

SEGMENT_ROWS = 50_000  # passages per segment before a streaming build publishes it and commits


class IndexWriter:
    """One update of an index: add documents, delete live ones, record files, commit."""

    def __init__(self, layout: IndexLayout, manifest: Manifest, base: Snapshot | None,
                 segment_rows: int | None = None) -> None:
        self.layout, self.base, self.segment_rows = layout, base, segment_rows or SEGMENT_ROWS
        self.manifest = copy.deepcopy(manifest)
        self.builder: SegmentBuilder | None = None
        self.deletes: dict[str, set[int]] = {}  # segment -> rows deleted by this update, not yet committed
        self.deleted_documents: dict[str, int] = {}
        self.files: dict[str, tuple[str, int]] = {}
        self.removed_files: set[str] = set()
        self.dropped: set[str] = set()
        self.rekind = False  # the requested vector index changed: rewrite segments whose kind differs
        self.commits = 0
        self.started = time.perf_counter()

    @property
    def generation(self) -> str:
        """The live generation (the last one this writer committed, or the one it started from)."""
        return self.manifest.generation

    # changes ------------------------------------------------------------------------------------------
    def add(self, doc: Document, passages: list[Passage], vectors: np.ndarray, file: str | None,
            passage_ids: Sequence[int] | None = None) -> None:
        """Add a document to the open segment; new passages get new ids, a merge passes the ones they have."""
        if self.builder is None:
            name = f"seg-{self.manifest.next_segment:06d}"
            self.manifest.next_segment += 1
            self.builder = SegmentBuilder(self.layout, name, self.manifest.ann, int(self.manifest.model["dimension"]))
        if passage_ids is None:
            first = self.manifest.next_passage_id
            self.manifest.next_passage_id += len(passages)
            passage_ids = range(first, first + len(passages))
        self.builder.add(doc, passages, vectors, file, passage_ids)

    def delete(self, documents: Iterable[LiveDocument]) -> None:
        for doc in documents:
            rows = self.deletes.setdefault(doc.segment, set())
            new = set(int(r) for r in doc.rows) - rows
            if new:
                rows |= new
                self.deleted_documents[doc.segment] = self.deleted_documents.get(doc.segment, 0) + 1

    def set_file(self, path: str, content_hash: str, documents: int) -> None:
        self.files[path] = (content_hash, documents)
        self.removed_files.discard(path)

    def remove_file(self, path: str) -> None:
        self.removed_files.add(path)
        self.files.pop(path, None)

    def drop_segments(self, names: Iterable[str]) -> None:
        """Take whole segments out at the next commit (a merge has rewritten their live rows elsewhere)."""
        self.dropped |= set(names)

    def full(self) -> bool:
        return self.builder is not None and self.builder.rows >= self.segment_rows

    @property
    def pending(self) -> bool:
        return bool(self.builder is not None or self.deletes or self.files or self.removed_files or self.dropped)

    # commits -----------------------------------------------------------------------------------------------
    def commit(self, extras: dict | None = None) -> Manifest:
        """Publish the open segment and make everything so far one new generation (atomic)."""
        manifest = self.manifest
        new_segments: list[SegmentEntry] = []
        if self.builder is not None:
            builder, self.builder = self.builder, None
            try:
                new_segments.append(builder.finish())
            except BaseException:
                builder.abort()
                raise
        generation = generation_name(generation_number(manifest.generation) + 1 if manifest.generation else 1)
        entries = []
        for entry in manifest.segments:
            if entry.name in self.dropped:
                self.deletes.pop(entry.name, None)
                continue
            rows = self.deletes.pop(entry.name, None)
            if rows:
                entry = copy.deepcopy(entry)
                previous = self._committed_deletes(entry)
                combined = np.union1d(previous, np.fromiter(rows, dtype=np.int64, count=len(rows)))
                entry.deletes = write_deletes(self.layout, entry.name, generation, combined)
                entry.deleted_rows = int(len(combined))
                entry.deleted_documents += self.deleted_documents.pop(entry.name, 0)
            if entry.live_rows > 0:  # a segment whose every row is deleted is dropped
                entries.append(entry)
        if self.deletes:
            missing = ", ".join(sorted(self.deletes))
            raise CorruptIndexError(f"index {self.layout.name}: deletions name segments that are not live ({missing})")
        manifest.segments = entries + new_segments
        self.dropped = set()
        if self.files or self.removed_files:
            base_catalog = self.layout.root / "catalog" / manifest.catalog if manifest.catalog else None
            manifest.catalog = write_catalog(self.layout, generation, base_catalog, self.files, self.removed_files)
            self.files, self.removed_files = {}, set()
        manifest.base, manifest.generation = manifest.generation or None, generation
        manifest.counts = {
            "documents": sum(e.live_documents for e in manifest.segments),
            "passages": sum(e.live_rows for e in manifest.segments),
            "files": _catalog_size(self.layout, manifest.catalog),
        }
        if extras:
            manifest.extras.update(extras)
        manifest.updated_at = now_iso()
        manifest.last_build_seconds = round(time.perf_counter() - self.started, 3)
        manifest.save(self.layout.manifest_path(generation))
        self.layout.switch(generation, manifest.base)
        self.commits += 1
        return copy.deepcopy(manifest)

    def _committed_deletes(self, entry: SegmentEntry) -> np.ndarray:
        if entry.deletes is None:
            return np.zeros(0, dtype=np.int64)
        return np.load(self.layout.root / "deletes" / entry.deletes, allow_pickle=False).astype(np.int64)

    def abort(self) -> None:
        if self.builder is not None:
            self.builder.abort()
            self.builder = None


def _catalog_size(layout: IndexLayout, catalog: str | None) -> int:
    if catalog is None:
        return 0
    from retriever.index.catalog import FileCatalog

    return len(FileCatalog(layout.root / "catalog" / catalog, layout.name))


def collect_garbage(layout: IndexLayout) -> int:
    """Remove files no kept generation uses: kept are the live one and those open readers hold."""
    held = layout.held_generations()
    if "*" in held:  # a reader is between reading CURRENT and naming its generation: try next time
        return 0
    current = layout.current()
    keep = {current} | held
    next_segment = 0
    referenced: set[Path] = set()
    for generation in sorted(keep):
        path = layout.manifest_path(generation)
        if not path.exists():
            continue
        try:
            manifest = Manifest.load(path, layout.name)
        except CorruptIndexError:
            return 0  # never delete on the word of a damaged manifest
        next_segment = max(next_segment, manifest.next_segment)
        for entry in manifest.segments:
            referenced.add(layout.segment_dir(entry.name))
            if entry.deletes:
                referenced.add(layout.root / "deletes" / entry.deletes)
        if manifest.catalog:
            referenced.add(layout.root / "catalog" / manifest.catalog)
    return layout.collect_garbage(referenced, keep, current, next_segment)


def collect_garbage_if_idle(layout: IndexLayout) -> None:
    """Collect garbage now if no writer holds the lock (never wait for one: it collects when it ends)."""
    try:
        with layout.write_lock(wait=0):
            collect_garbage(layout)
    except IndexBusyError:
        pass
