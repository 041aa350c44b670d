"""Merging segments: a tiered policy (as Lucene's) after each write, and ``retriever optimize``.

Every write adds a segment, so without merges a busy index would fan each search out over thousands of tiny
segments. Segments are grouped into tiers by size (powers of ``MERGE_FACTOR`` above ``FLOOR_ROWS``); when a tier
holds ``MERGE_FACTOR`` segments they are rewritten as one, which moves it up a tier. Each passage is merged a
logarithmic number of times, so the amortised cost of a write stays proportional to the change. A segment
with more than half of its rows deleted is rewritten on its own to give the space back.

A merge copies live documents with their passages, passage ids and float16 vectors (no re-encoding, no new
scores: results are the same before and after) into a new segment and drops the old ones in one commit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from retriever.index.layout import IndexLayout
from retriever.index.manifest import SegmentEntry
from retriever.index.snapshot import Snapshot

if TYPE_CHECKING:
    from retriever.index.writer import IndexWriter

MERGE_FACTOR = 10
FLOOR_ROWS = 1_000  # segments smaller than this all share the lowest tier
MAX_MERGED_ROWS = 2_000_000  # segments above this are not merged further (bounded merge cost and memory)
EXPUNGE_SHARE = 0.5  # rewrite a segment once this share of its rows is deleted


def tier(rows: int) -> int:
    return int(math.log(max(rows, FLOOR_ROWS) / FLOOR_ROWS, MERGE_FACTOR) + 1e-9)


def plan_merges(segments: Sequence[SegmentEntry]) -> list[list[str]]:
    """Groups of segment names to merge now (each group becomes one segment)."""
    by_tier: dict[int, list[SegmentEntry]] = {}
    for entry in segments:
        by_tier.setdefault(tier(entry.live_rows), []).append(entry)
    groups: list[list[str]] = []
    merged: set[str] = set()
    for level in sorted(by_tier):
        members = sorted(by_tier[level], key=lambda e: e.live_rows)
        while len(members) >= MERGE_FACTOR:
            group, members = members[:MERGE_FACTOR], members[MERGE_FACTOR:]
            if sum(e.live_rows for e in group) > MAX_MERGED_ROWS:
                break
            groups.append([e.name for e in group])
            merged |= {e.name for e in group}
    for entry in segments:
        if entry.name not in merged and entry.rows and entry.deleted_rows / entry.rows > EXPUNGE_SHARE:
            groups.append([entry.name])
    return groups


def merge_group(layout: IndexLayout, writer: IndexWriter, snapshot: Snapshot, names: Sequence[str]) -> None:
    """Copy the live documents of some segments into the writer's new segment and drop the old ones."""
    wanted = set(names)
    for index, segment in enumerate(snapshot.segments):
        if segment.name not in wanted:
            continue
        live = snapshot.live[index]
        ords = [d.ord for d in segment.store.all_documents() if d.rows and live[d.first_row]]
        for doc, file, passages, passage_ids, rows in segment.store.copy_documents(ords):
            writer.add(doc, passages, segment.vectors.get(rows), file, passage_ids=passage_ids)
    writer.drop_segments(wanted)


def merge_if_needed(layout: IndexLayout, writer: IndexWriter, force: bool = False, reuse: Any = None) -> int:
    """Apply the merge policy (or merge everything, with ``force``) after a write; returns the merges done.

    ``reuse``: a snapshot whose open segments are shared rather than opened again (the writer's base)."""
    done = 0
    while True:
        snapshot = Snapshot.open(layout, reuse=reuse if isinstance(reuse, Snapshot) else None, lease=False)
        reuse = snapshot
        try:
            entries = snapshot.manifest.segments
            if force:
                needs = len(entries) > 1 or any(e.deleted_rows for e in entries)
                groups = [[e.name for e in entries]] if needs else []
            else:
                groups = plan_merges(entries)
            if not groups:
                return done
            for group in groups:
                merge_group(layout, writer, snapshot, group)
                writer.commit()
                done += 1
        finally:
            snapshot.close()
        if force:
            return done


def rewrite_kinds(layout: IndexLayout, writer: IndexWriter) -> int:
    """Rewrite the segments whose vector index is not the kind now requested; returns how many."""
    from retriever.index.vectors import segment_kind

    snapshot = Snapshot.open(layout, lease=False)
    try:
        requested = writer.manifest.ann["requested"]
        stale = [e.name for e in snapshot.manifest.segments
                 if e.vectors.get("kind") != segment_kind(requested, e.live_rows)]
        for name in stale:
            merge_group(layout, writer, snapshot, [name])
            writer.commit()
        return len(stale)
    finally:
        snapshot.close()
