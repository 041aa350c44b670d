"""Opening an index for reading or for one update, with the implementation its manifest's store names.

It sits above both stores (``snapshot``/``writer`` for the local one, ``milvus`` for Milvus), which only know
the protocols and store names of ``backend``: imports run one way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retriever.errors import CorruptIndexError
from retriever.index.backend import LOCAL, IndexReader, IndexUpdater

if TYPE_CHECKING:
    from retriever.index.layout import IndexLayout
    from retriever.index.manifest import Manifest


def _peek_manifest(layout: IndexLayout) -> Manifest:
    """The live manifest (retried if a writer replaces it meanwhile), to learn which backend to open."""
    from retriever.index.manifest import Manifest

    for _ in range(20):
        generation = layout.current()
        try:
            return Manifest.load(layout.manifest_path(generation), layout.name)
        except CorruptIndexError:
            if layout.current() == generation:
                raise
    raise CorruptIndexError(f"index {layout.name} changed 20 times while it was opened")


def open_reader(layout: IndexLayout, reuse: IndexReader | None = None, lease: bool = True) -> IndexReader:
    """The live version of an index, from whichever store its manifest names."""
    from retriever.index.snapshot import Snapshot

    layout.current()  # names a missing or foreign folder first
    manifest = _peek_manifest(layout)
    if manifest.store == LOCAL:
        return Snapshot.open(layout, reuse=reuse if isinstance(reuse, Snapshot) else None, lease=lease)
    from retriever.index.milvus.reader import MilvusReader

    return MilvusReader.open(layout, manifest, lease=lease)


def open_writer(layout: IndexLayout, manifest: Manifest, base: IndexReader | None,
                segment_rows: int | None = None) -> IndexUpdater:
    """A writer for one update of the index whose live manifest (or template, for a new index) is ``manifest``."""
    if manifest.store == LOCAL:
        from retriever.index.writer import IndexWriter

        return IndexWriter(layout, manifest, base, segment_rows)  # type: ignore[arg-type]
    from retriever.index.milvus.writer import MilvusWriter

    return MilvusWriter(layout, manifest, base, segment_rows)
