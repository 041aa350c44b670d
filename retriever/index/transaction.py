"""One update of an index under the writer lock, whatever its store: open, write, commit or abort, merge.

An update takes the lock *before* it reads the live generation, so nothing can commit between its plan and its
commit. It sits above the stores' writers and the merge policy, which never call back into it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from retriever.errors import IndexBusyError
from retriever.index.backend import IndexReader, IndexUpdater
from retriever.index.layout import IndexLayout
from retriever.index.manifest import Manifest
from retriever.index.merge import merge_if_needed, rewrite_kinds
from retriever.index.opening import open_reader, open_writer
from retriever.index.writer import IndexWriter, collect_garbage


@contextmanager
def writing(layout: IndexLayout, new_manifest: Manifest | None = None, wait: float | None = None,
            segment_rows: int | None = None, reuse: IndexReader | None = None) -> Iterator[IndexUpdater]:
    """Hold the writer lock for a whole update; yields a writer based on the live generation.

    ``new_manifest`` creates the index if none exists. A failure leaves the last committed generation live;
    staging leftovers are removed by the next writer. ``reuse``: a reader already open on this index (the
    caller's), whose segments the writer shares instead of opening them again: segments are immutable, and
    opening every one (its vector index, for one) would make a one-document write cost the whole index.
    """
    created = new_manifest is not None and not layout.root.exists()
    if new_manifest is not None:
        layout.prepare()
    try:
        with _update(layout, new_manifest, wait, segment_rows, reuse) as writer:
            yield writer
    except BaseException:
        if created and not layout.exists():  # a first write that failed leaves no empty index folder behind
            shutil.rmtree(layout.root, ignore_errors=True)
        raise


@contextmanager
def _update(layout: IndexLayout, new_manifest: Manifest | None, wait: float | None,
            segment_rows: int | None, reuse: IndexReader | None) -> Iterator[IndexWriter]:
    with layout.write_lock(wait):
        if layout.exists():
            base = open_reader(layout, reuse=reuse, lease=False)
            manifest = base.manifest
        elif new_manifest is not None:
            base, manifest = None, new_manifest
        else:
            raise IndexBusyError(f"index {layout.name} disappeared while waiting to write it")
        if base is not None:
            collect_garbage(layout)
        writer = open_writer(layout, manifest, base, segment_rows)  # None: the store writer's own SEGMENT_ROWS
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        finally:
            if base is not None:
                base.close()
        if writer.pending or (writer.commits == 0 and base is None) or (writer.rekind and writer.commits == 0):
            writer.commit()
        if not isinstance(writer, IndexWriter):  # another store merges and rebuilds its own indexes
            return
        if writer.rekind:
            rewrite_kinds(layout, writer)
        if writer.commits:
            merge_if_needed(layout, writer, reuse=base)
            collect_garbage(layout)
