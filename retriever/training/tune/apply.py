"""Putting what tune kept into the index: a new generation, written under the writer lock.

Either the manifest alone changes (the hybrid setting, a record of the attempt), or every live passage is
re-encoded by the tuned model into new segments that replace the old ones in one commit. Either way the
previous generation stays live until the atomic switch, and open readers (a server) keep their leased
generation until they refresh; an interrupted tune leaves the index as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retriever.errors import RetrieverError
from retriever.index.manifest import Manifest
from retriever.index.transaction import writing
from retriever.index.writer import IndexWriter
from retriever.ingest.chunking import encoding_text

if TYPE_CHECKING:
    from retriever.encoding.encoder import Encoder
    from retriever.retriever import Retriever

TUNE_EXTRA = "tune"  # manifest extras: the last tune run
HISTORY_EXTRA = "tune_history"  # manifest extras: every tune run, newest last
HISTORY_LIMIT = 50
ENCODE_BATCH = 256  # passages encoded together


def _record(manifest: Manifest, record: dict[str, Any]) -> dict[str, Any]:
    history = list(manifest.extras.get(HISTORY_EXTRA, []))[-(HISTORY_LIMIT - 1):] + [record]
    return {TUNE_EXTRA: record, HISTORY_EXTRA: history}


def commit_settings(retriever: Retriever, search_defaults: dict[str, Any] | None, record: dict[str, Any]) -> None:
    """A new generation with the same segments: new search defaults (if any) and the tune record."""
    with writing(retriever.layout, wait=retriever.wait, reuse=retriever.snapshot) as writer:
        if search_defaults is not None:
            writer.manifest.model["search_defaults"] = search_defaults
        writer.commit(extras=_record(writer.manifest, record))


def commit_reencoded(retriever: Retriever, encoder: Encoder, search_defaults: dict[str, Any],
                     record: dict[str, Any], progress: Callable[[int], None] | None = None) -> None:
    """Re-encode every live passage with ``encoder`` into one new generation that names it as the model."""
    with writing(retriever.layout, wait=retriever.wait, reuse=retriever.snapshot) as writer:
        if not isinstance(writer, IndexWriter):
            raise RetrieverError(f"index {retriever.layout.name} is stored in {writer.manifest.store}: "
                                 "tune re-encodes local indexes only")
        old = writer.manifest.model
        if encoder.dimension != old["dimension"]:
            raise RetrieverError(f"the tuned model has dimension {encoder.dimension}, the index {old['dimension']}")
        snapshot = writer.base
        names = [entry.name for entry in writer.manifest.segments]
        batch: list[tuple[Any, Any, list[Any], list[int]]] = []
        for item in _live_documents(snapshot):
            batch.append(item)
            if sum(len(passages) for _, _, passages, _ in batch) >= ENCODE_BATCH:
                _write(writer, encoder, batch, progress)
                batch = []
        _write(writer, encoder, batch, progress)
        described = inside_index(encoder.describe(), retriever.layout.root)
        if old.get("backend_choice") and "backend_choice" not in described:
            described["backend_choice"] = old["backend_choice"]
        writer.manifest.model = {**described, "search_defaults": search_defaults}
        writer.drop_segments(names)
        writer.commit(extras=_record(writer.manifest, record))


def inside_index(described: dict[str, Any], root: Path) -> dict[str, Any]:
    """A model kept inside the index folder is recorded by its path relative to it, so a moved or copied
    index still finds its model (``Encoder.from_description`` resolves it against the folder)."""
    path = Path(described.get("path") or described["name"]).resolve()
    try:
        relative = path.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return described  # a model elsewhere keeps its absolute path
    return {**described, "name": relative, "path": relative}


def _live_documents(snapshot: Any) -> Iterator[tuple[Any, Any, list[Any], list[int]]]:
    for index, segment in enumerate(snapshot.segments):
        live = snapshot.live[index]
        ords = [d.ord for d in segment.store.all_documents() if d.rows and live[d.first_row]]
        for doc, file, passages, passage_ids, _ in segment.store.copy_documents(ords):
            yield doc, file, passages, passage_ids


def _write(writer: IndexWriter, encoder: Encoder, batch: list[tuple[Any, Any, list[Any], list[int]]],
           progress: Callable[[int], None] | None) -> None:
    if not batch:
        return
    texts = [encoding_text(p.title, p.text) for _, _, passages, _ in batch for p in passages]
    vectors = encoder.encode_documents(texts)
    start = 0
    for doc, file, passages, passage_ids in batch:
        writer.add(doc, passages, vectors[start:start + len(passages)], file, passage_ids=passage_ids)
        start += len(passages)
    if progress is not None:
        progress(len(batch))
