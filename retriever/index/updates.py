"""What an update changes: folder sync and record upserts planned against the live index, then streamed.

Planning decides, before anything is written, which document ids each changed file keeps (a duplicate id
already held by another file is skipped; a record moved between files follows its new file). Then documents
stream through the embedder into the writer, which publishes a segment and commits every so many passages; an
updated document's old version is deleted in the same commit that adds its new one, so a reader never sees both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from retriever.errors import RetrieverError
from retriever.index.snapshot import LiveDocument, Snapshot
from retriever.index.writer import IndexWriter
from retriever.ingest.documents import Document
from retriever.ingest.pipeline import Embedder
from retriever.ingest.readers import HTML_SUFFIXES, PDF_SUFFIXES, TEXT_SUFFIXES
from retriever.ingest.sync import IndexReport, iter_documents, scan_folder

LOOKUP_BATCH = 512  # documents whose live versions are looked up together


def sync_folder(writer: IndexWriter, base: Snapshot | None, root: Path, embed: Embedder,
                report: IndexReport, progress: Any = None,
                planned: Callable[[IndexReport], None] | None = None) -> None:
    """Bring the index in step with a folder (or file): add, update and remove documents.

    ``planned(report)`` is called once everything that will be skipped is known, before anything is written
    (it may raise to stop the run).
    """
    root = root.resolve()
    known = base.catalog.hashes() if base is not None else {}
    if base is not None:
        _check_ids_follow_root(base, root, known)
    changes = scan_folder(root, known)
    report.skipped_files += changes.skipped
    report.skipped_records += changes.skipped_records
    report.unsupported_files += changes.unsupported
    report.unchanged += sum(base.catalog.documents(f) for f in changes.unchanged) if base is not None else 0
    if base is None and not any(changes.ids.values()):
        skipped = "".join(f"; {line}" for line in report.warnings())
        raise RetrieverError(
            f"nothing to index in {root}: no readable .txt, .md, .rst, .html, .json(l), .parquet or .pdf files{skipped}"
        )
    keeps = _claims(base, changes.ids, set(changes.deleted))
    claimed = {doc_id for ids in keeps.values() for doc_id in ids}
    report.duplicate_ids += [doc_id for file, ids in changes.ids.items() for doc_id in _duplicates(ids, keeps[file])]
    if planned is not None:
        planned(report)

    def documents() -> Iterator[tuple[Document, str]]:
        for file in changes.ids:
            kept = keeps[file]
            emitted: set[str] = set()
            for doc in iter_documents(root, file):
                if doc.doc_id in kept and doc.doc_id not in emitted:
                    emitted.add(doc.doc_id)
                    yield doc, file

    if progress is not None:
        progress.total = len(claimed)
    _upsert(writer, base, documents(), embed, report, progress)
    # documents that left their file (or whose file is gone) and that no file of this run took over
    gone = changes.deleted + list(changes.ids)
    dropped = [d for d in (base.documents_of_files(gone) if base is not None else [])
               if d.doc_id not in claimed]
    writer.delete(dropped)
    report.removed += len(dropped)
    for file in changes.deleted:
        writer.remove_file(file)
    for file, kept in keeps.items():
        writer.set_file(file, changes.hashes[file], len(kept))


def upsert(writer: IndexWriter, base: Snapshot | None, docs: Sequence[Document], embed: Embedder,
           report: IndexReport, progress: Any = None, planned: Callable[[IndexReport], None] | None = None) -> None:
    """Add documents given as records, replacing the live versions of the same ids."""
    seen: set[str] = set()
    for doc in docs:  # repeated ids are known before anything is written
        if doc.doc_id in seen:
            report.duplicate_ids.append(doc.doc_id)
        seen.add(doc.doc_id)
    if planned is not None:
        planned(report)
    seen.clear()

    def unique() -> Iterator[tuple[Document, None]]:
        for doc in docs:
            if doc.doc_id in seen:
                continue
            seen.add(doc.doc_id)
            yield doc, None

    if progress is not None:
        progress.total = len(docs)
    _upsert(writer, base, unique(), embed, report, progress)


def delete(writer: IndexWriter, base: Snapshot | None, doc_ids: Iterable[str]) -> int:
    """Delete documents by id; returns how many were live."""
    if base is None:
        return 0
    found = list(base.live_documents(doc_ids).values())
    writer.delete(found)
    return len(found)


# internals ----------------------------------------------------------------------------------------------
PATH_ID_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES  # one document per file, its id the file's path


def _check_ids_follow_root(base: Snapshot, root: Path, known: dict[str, str]) -> None:
    """Refuse to index ``root`` when the index holds files under it by ids relative to another folder.

    A text, HTML or PDF file's id is its path relative to the indexed folder: after ``index P/sub``,
    ``P/sub/a.txt`` is ``a.txt``, and ``index P`` would call it ``sub/a.txt`` and take ``P/a.txt`` for a
    duplicate of it. Several folders side by side share an index; one inside another does not.
    """
    top = root if root.is_dir() else root.parent
    under = [f for f in known if f == str(root) or (root.is_dir() and f.startswith(str(root) + "/"))]
    files = [f for f in under if Path(f).suffix.lower() in PATH_ID_SUFFIXES]
    for start in range(0, len(files), LOOKUP_BATCH):
        for live in base.documents_of_files(files[start:start + LOOKUP_BATCH]):
            file = live.stored.file
            if file is None:
                continue
            expected = Path(file).relative_to(top).as_posix()
            if live.doc_id == expected:
                continue
            origin = file[: -len(live.doc_id) - 1] if file.endswith("/" + live.doc_id) else str(Path(file).parent)
            raise RetrieverError(
                f"this index holds {file} as {live.doc_id!r}, indexed from {origin}; indexing {root} would name it "
                f"{expected!r}: index {origin} again, or index {root} into a new index (--index)"
            )


def _claims(base: Snapshot | None, ids_of: dict[str, list[str]], deleted: set[str]) -> dict[str, set[str]]:
    """For each changed file, the ids it holds after this run (not those another file keeps)."""
    owners: dict[str, str | None] = {}
    if base is not None:
        every = list(dict.fromkeys(i for ids in ids_of.values() for i in ids))
        for start in range(0, len(every), LOOKUP_BATCH * 8):
            for doc_id, live in base.live_documents(every[start:start + LOOKUP_BATCH * 8]).items():
                owners[doc_id] = live.stored.file
    new_ids = {file: set(ids) for file, ids in ids_of.items()}
    claimed: dict[str, str] = {}
    keeps: dict[str, set[str]] = {}
    for file, ids in ids_of.items():
        kept: set[str] = set()
        for doc_id in ids:
            if doc_id in kept or doc_id in claimed:
                continue
            owner = owners.get(doc_id)
            held_elsewhere = (owner is not None and owner != file and owner not in deleted
                              and (owner not in ids_of or doc_id in new_ids[owner]))
            if held_elsewhere:
                continue
            kept.add(doc_id)
            claimed[doc_id] = file
        keeps[file] = kept
    return keeps


def _duplicates(ids: list[str], kept: set[str]) -> list[str]:
    """Ids of a file that were skipped: repeats inside it, or ids another file keeps."""
    out, seen = [], set()
    for doc_id in ids:
        if doc_id in seen or doc_id not in kept:
            out.append(doc_id)
        seen.add(doc_id)
    return out


def _upsert(writer: IndexWriter, base: Snapshot | None, documents: Iterable[tuple[Document, str | None]],
            embed: Embedder, report: IndexReport, progress: Any = None) -> None:
    """Stream documents: unchanged ones are counted, new and changed ones encoded and written.

    Each commit carries the deletions of the old versions of the documents it adds. File hashes are recorded
    only by the last commit, so a run interrupted after some commits reads its changed files again and finds
    the documents already written unchanged: it resumes without encoding them twice.
    """
    pending_old: list[LiveDocument] = []

    def changed() -> Iterator[tuple[Document, str | None]]:
        batch: list[tuple[Document, str | None]] = []
        for item in documents:
            batch.append(item)
            if len(batch) >= LOOKUP_BATCH:
                yield from changed_only(batch)
                batch = []
        yield from changed_only(batch)

    def changed_only(batch: list[tuple[Document, str | None]]) -> Iterator[tuple[Document, str | None]]:
        live = base.live_documents(doc.doc_id for doc, _ in batch) if base is not None and batch else {}
        if progress is not None:
            progress.update(len(batch))
        for doc, file in batch:
            old = live.get(doc.doc_id)
            if old is not None and old.stored.content_hash == doc.content_hash() and old.stored.file == file:
                report.unchanged += 1
                continue
            if old is not None:
                report.updated += 1
                pending_old.append(old)
            else:
                report.added += 1
            yield doc, file

    for doc, file, passages, vectors in embed(changed()):
        writer.add(doc, passages, vectors, file)
        report.passages_encoded += len(passages)
        if writer.full():
            writer.delete(pending_old)
            pending_old.clear()
            writer.commit()
    writer.delete(pending_old)
