"""A reader's view of one index generation: every segment opened together, with that generation's deletions.

A snapshot keeps answering from the version it opened while other processes commit newer ones: its lease names
the generation, so writers keep its files, and every part (store, vectors, postings) is opened at once rather than
lazily. Segments are immutable, so a newer snapshot reuses the open segments of an older one and only opens
what is new (``Snapshot.open(..., reuse=old)``): moving to a new version costs the change, not the index.

Candidates are ``(key, doc_key, score)`` with ``key = (segment index, row)`` and ``doc_key = (segment index,
document ordinal)``; ``hydrate`` turns the keys of the hits returned into passages with their texts.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from retriever.errors import CorruptIndexError
from retriever.index.catalog import FileCatalog
from retriever.index.layout import IndexLayout, ReaderLease
from retriever.index.manifest import Manifest
from retriever.index.scan import sq8_fetch
from retriever.index.segment import OpenSegment, read_deletes
from retriever.index.store import StoredDocument, StoredPassage
from retriever.ingest.documents import Document

OPEN_ATTEMPTS = 20  # a generation can be superseded and collected while we open it: read CURRENT again

Key = tuple[int, int]
Candidate = tuple[Key, Key, float]  # (passage key, document key, score)


@dataclass(frozen=True)
class LiveDocument:
    """A live document of a snapshot and where it is."""

    segment: str
    stored: StoredDocument

    @property
    def doc_id(self) -> str:
        return self.stored.doc_id

    @property
    def rows(self) -> np.ndarray:
        return np.arange(self.stored.first_row, self.stored.first_row + self.stored.rows, dtype=np.int64)


class Snapshot:
    def __init__(self, layout: IndexLayout, manifest: Manifest, segments: list[OpenSegment], live: list[np.ndarray],
                 lease: ReaderLease | None) -> None:
        self.layout, self.manifest, self.segments, self.live = layout, manifest, segments, live
        self.lease = lease
        self.catalog = FileCatalog(layout.root / "catalog" / manifest.catalog if manifest.catalog else None,
                                   layout.name)
        self._has_deletes = [bool(e.deleted_rows) for e in manifest.segments]
        self._lock = threading.Lock()

    @property
    def generation(self) -> str:
        return self.manifest.generation

    @classmethod
    def open(cls, layout: IndexLayout, reuse: Snapshot | None = None, lease: bool = True) -> Snapshot:
        """The live generation, opened whole; segments already open in ``reuse`` are shared, not reopened."""
        layout.current()  # names a missing or foreign folder before anything is written into it
        held = layout.take_lease() if lease else None
        try:
            for attempt in range(OPEN_ATTEMPTS):
                generation = layout.current()
                if held is not None:
                    held.hold(generation)
                try:
                    return cls._open_generation(layout, generation, reuse, held)
                except CorruptIndexError:
                    if attempt + 1 < OPEN_ATTEMPTS and layout.current() != generation:
                        continue  # superseded (and perhaps collected) while we opened it: take the new one
                    raise
            raise CorruptIndexError(f"index {layout.name} changed {OPEN_ATTEMPTS} times while it was opened")
        except BaseException:
            if held is not None:
                held.release()
            raise

    @classmethod
    def _open_generation(cls, layout: IndexLayout, generation: str, reuse: Snapshot | None,
                         lease: ReaderLease | None) -> Snapshot:
        manifest = Manifest.load(layout.manifest_path(generation), layout.name)
        if manifest.generation != generation:
            raise CorruptIndexError(f"index {layout.name} is corrupt: {generation} holds the manifest of "
                                    f"{manifest.generation!r}")
        dimension = manifest.model["dimension"]
        for entry in manifest.segments:
            actual = entry.vectors.get("dimension")
            if actual is not None and actual != dimension:
                raise CorruptIndexError(
                    f"index {layout.name} is corrupt: manifest {generation}.json names dimension {dimension}, "
                    f"segment {entry.name} holds {actual}-dimensional vectors")
        opened = {s.name: s for s in reuse.segments} if reuse is not None else {}
        segments, live = [], []
        for entry in manifest.segments:
            segment = opened.get(entry.name)
            if segment is None or segment.entry.rows != entry.rows:
                segment = OpenSegment.open(layout, entry)
            segments.append(segment)
            live.append(read_deletes(layout, entry))
        return cls(layout, manifest, segments, live, lease)

    def close(self) -> None:
        """Let go of the generation (the segments close when no snapshot uses them any more)."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    # counts ----------------------------------------------------------------------------------------
    @property
    def documents(self) -> int:
        return sum(e.live_documents for e in self.manifest.segments)

    @property
    def passages(self) -> int:
        return sum(e.live_rows for e in self.manifest.segments)

    def ram_bytes(self) -> int:
        """Bytes the vector indexes hold in RAM (not counting memory-mapped pages)."""
        return int(sum(s.vectors.ram_bytes for s in self.segments))

    def flat_scans(self) -> dict[str, int]:
        """Flat segments per way they are scanned (``SegmentVectors.scan_detail``): what ``info`` reports."""
        return dict(Counter(s.vectors.scan_detail for s in self.segments if s.vectors.scan_detail))

    def size_bytes(self) -> int:
        """Bytes on disk of everything this generation uses."""
        root = self.layout.root
        paths = [self.layout.manifest_path(self.generation)] + [self.layout.segment_dir(s.name) for s in self.segments]
        paths += [root / "deletes" / e.deletes for e in self.manifest.segments if e.deletes]
        if self.manifest.catalog:
            paths.append(root / "catalog" / self.manifest.catalog)
        return self.layout.size_bytes(paths)

    # lookups ---------------------------------------------------------------------------------------------
    def _alive(self, index: int, stored: StoredDocument) -> bool:
        return stored.rows > 0 and bool(self.live[index][stored.first_row])

    def live_documents(self, doc_ids: Iterable[str]) -> dict[str, LiveDocument]:
        """The live version of each of these documents that exists."""
        wanted = list(dict.fromkeys(doc_ids))
        found: dict[str, LiveDocument] = {}
        for index, segment in enumerate(self.segments):
            if not wanted:
                break
            for stored in segment.store.documents_by_id(wanted):
                if self._alive(index, stored):
                    found[stored.doc_id] = LiveDocument(segment.name, stored)
        return found

    def documents_of_files(self, files: Sequence[str]) -> list[LiveDocument]:
        out = []
        for index, segment in enumerate(self.segments):
            out += [LiveDocument(segment.name, s) for s in segment.store.documents_of_files(files)
                    if self._alive(index, s)]
        return out

    def all_live_documents(self) -> Iterable[LiveDocument]:
        for index, segment in enumerate(self.segments):
            for stored in segment.store.all_documents():
                if self._alive(index, stored):
                    yield LiveDocument(segment.name, stored)

    def document(self, doc_id: str) -> Document | None:
        found = self.live_documents([doc_id]).get(doc_id)
        if found is None:
            return None
        return self._segment(found.segment).store.document(found.stored.ord)

    def passage_keys(self, doc_id: str) -> list[Key]:
        return self.passage_keys_of([doc_id]).get(doc_id, [])

    def passage_keys_of(self, doc_ids: Iterable[str]) -> dict[str, list[Key]]:
        """Each live document's passage keys in passage order, in one lookup per segment (missing ones left out)."""
        out: dict[str, list[Key]] = {}
        for doc_id, found in self.live_documents(doc_ids).items():
            index = self._index(found.segment)
            out[doc_id] = [(index, row) for row in range(found.stored.first_row,
                                                         found.stored.first_row + found.stored.rows)]
        return out

    def _index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.segments) if s.name == name)

    def _segment(self, name: str) -> OpenSegment:
        return self.segments[self._index(name)]

    def available(self, allowed: list[np.ndarray | None] | None) -> int:
        """How many passages a search restricted to ``allowed`` (from ``allowed()``) can return."""
        if allowed is None:
            return self.passages
        return sum(segment.rows if mask is None else int(mask.sum()) for segment, mask in zip(self.segments, allowed))

    # filters ----------------------------------------------------------------------------------------------
    def allowed(self, conditions: Sequence[Any]) -> list[np.ndarray | None]:
        """Per segment, the rows a search may return: live rows, and those meeting ``conditions`` if any."""
        if not conditions:
            return [live if has else None for live, has in zip(self.live, self._has_deletes)]
        return [segment.store.rows_where(conditions, segment.rows) & live
                for segment, live in zip(self.segments, self.live)]

    def field_types(self, field: str) -> set[str]:
        """The JSON types a record field holds in any live segment (empty: no document has it)."""
        types: set[str] = set()
        for segment in self.segments:
            types |= segment.store.field_types(field)
        return types

    # search ---------------------------------------------------------------------------------------------
    def dense(self, vectors: np.ndarray, k: int, allowed: list[np.ndarray | None] | None = None,
              exact: bool = False) -> list[list[Candidate]]:
        """The k passages nearest each query vector over all segments (one call per segment for the batch).

        Segments with the 8-bit scan only propose candidates here; the best ``sq8_fetch(k)`` proposals of all of
        them are rescored (``_pooled``), as if they were one segment, instead of that many from each.
        """
        allowed = allowed if allowed is not None else self.allowed([])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        parts: list[tuple[int, np.ndarray, np.ndarray]] = []
        proposed = []
        for index, (segment, mask) in enumerate(zip(self.segments, allowed)):
            available = segment.rows if mask is None else int(mask.sum())
            if available == 0 or k <= 0:
                continue
            if segment.vectors.scan == "sq8" and not exact:
                proposed.append((index, *segment.vectors.proposals(vectors, min(k, available), mask)))
                continue
            parts.append((index, *segment.vectors.search(vectors, min(k, available), mask, exact=exact)))
        parts += self._pooled(proposed, vectors, k)
        parts.sort(key=lambda part: part[0])  # in segment order, so equal scores rank as in exact search
        return self._merge([scores for _, scores, _ in parts],
                           [np.stack([np.full_like(rows, index), rows], axis=-1) for index, _, rows in parts],
                           k, len(vectors))

    def _pooled(self, proposed: list[tuple[int, np.ndarray, np.ndarray]], vectors: np.ndarray,
                k: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Rescore the best ``sq8_fetch(k)`` of every 8-bit segment's proposals: (segment, scores, rows) each.

        Each segment proposes its own best ``sq8_fetch(k)`` rows with approximate scores that compare across
        segments, so the best of all of them are those one segment of all their rows would propose; rescoring
        only those reads a third of the float16 rows of three segments (2.5 -> 0.8 ms of a hybrid query at
        100,000 passages in three segments, profiled in the commit that added this).
        """
        if not proposed:
            return
        approx = np.concatenate([a for _, a, _ in proposed], axis=1)
        rows = np.concatenate([r for _, _, r in proposed], axis=1)
        owner = np.concatenate([np.full(a.shape[1], j) for j, (_, a, _) in enumerate(proposed)])
        keep = min(approx.shape[1], sq8_fetch(k, sum(self.segments[i].rows for i, _, _ in proposed)))
        if keep < approx.shape[1]:
            best = np.argpartition(-approx, keep - 1, axis=1)[:, :keep]
            rows, owner = np.take_along_axis(rows, best, axis=1), owner[best]
        else:
            owner = np.broadcast_to(owner, rows.shape)
        for j, (index, _, _) in enumerate(proposed):
            mine = np.where(owner == j, rows, -1)
            width = int((mine >= 0).sum(axis=1).max())
            if width == 0:
                continue
            mine = np.take_along_axis(mine, np.argsort(mine < 0, axis=1, kind="stable")[:, :width], axis=1)
            vectors_of = self.segments[index].vectors
            yield (index, *vectors_of.rescore(vectors, mine, min(k, width)))

    def lexical(self, queries: Sequence[str], k: int,
                allowed: list[np.ndarray | None] | None = None) -> list[list[Candidate]]:
        """The k best passages of each query by BM25 with statistics over every live passage of the index."""
        if k <= 0 or not self.segments:
            return [[] for _ in queries]
        masks = None if allowed is None else list(allowed)
        results = self.lexical_searcher.search(list(queries), k, masks)
        return [[((seg, row), (seg, int(self.segments[seg].doc_of_row[row])), float(score))
                 for seg, row, score in hits] for hits in results]

    @cached_property
    def lexical_searcher(self) -> Any:
        from retriever.index.lexical import LexicalSearcher

        return LexicalSearcher([(s.lexical, live if has else None)
                                for s, live, has in zip(self.segments, self.live, self._has_deletes)])

    def _merge(self, parts_scores: list[np.ndarray], parts_keys: list[np.ndarray], k: int,
               queries: int) -> list[list[Candidate]]:
        if not parts_scores:
            return [[] for _ in range(queries)]
        scores = np.concatenate(parts_scores, axis=1)
        keys = np.concatenate(parts_keys, axis=1)
        out: list[list[Candidate]] = []
        for q in range(queries):
            valid = keys[q, :, 1] >= 0
            order = np.flatnonzero(valid)
            order = order[np.argsort(-scores[q, order], kind="stable")][:k]
            segs, rows = keys[q, order, 0], keys[q, order, 1]
            docs = np.empty_like(rows)
            for seg in np.unique(segs).tolist():  # one lookup per segment, Python objects made once, by tolist
                docs[segs == seg] = self.segments[seg].doc_of_row[rows[segs == seg]]
            out.append([((seg, row), (seg, doc), score) for seg, row, doc, score
                        in zip(segs.tolist(), rows.tolist(), docs.tolist(), scores[q, order].tolist())])
        return out

    # results ----------------------------------------------------------------------------------------------
    def hydrate(self, keys: Iterable[Key]) -> dict[Key, StoredPassage]:
        """Passages (text, title, metadata) of some keys: loaded only for the hits returned."""
        by_segment: dict[int, list[int]] = {}
        for seg, row in keys:
            by_segment.setdefault(seg, []).append(row)
        out: dict[Key, StoredPassage] = {}
        for seg, rows in by_segment.items():
            for row, passage in self.segments[seg].store.passages(rows).items():
                out[(seg, row)] = passage
        return out

    def vectors_of(self, keys: Sequence[Key]) -> np.ndarray:
        dimension = int(self.manifest.model["dimension"])
        if not keys:
            return np.zeros((0, dimension), dtype=np.float32)
        out = np.zeros((len(keys), dimension), dtype=np.float32)
        by_segment: dict[int, list[int]] = {}
        for position, (seg, _) in enumerate(keys):
            by_segment.setdefault(seg, []).append(position)
        for seg, positions in by_segment.items():
            rows = np.asarray([keys[p][1] for p in positions], dtype=np.int64)
            out[positions] = self.segments[seg].vectors.get(rows)
        return out

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
