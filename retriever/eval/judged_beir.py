"""Judgments to and from a BEIR folder, so that ``retriever bench`` and ``retriever train`` read them.

Export writes a new folder::

    OUT/corpus.jsonl       the index's documents ('_id', 'title', 'text', their metadata)
    OUT/queries.jsonl      each judged query, its id stable ("j-" + 12 hex digits of the text's SHA-1)
    OUT/qrels/test.tsv     every judgment: query-id, corpus-id, score (0, 1, 2), with that header
    OUT/qrels/train.tsv    the same judgments, less those of documents no longer in the index (training needs
                           each judged document's text; bench only scores ids, so test.tsv keeps them all)

Both splits hold the same judgments: ``retriever bench OUT`` scores the engine on what was judged,
``retriever train OUT`` trains on it (holding out its own dev queries); a score on judgments the model was
trained on says how well it fits them, not how it does on new queries. Import reads ``queries.jsonl`` and
``qrels/<split>.tsv`` back (query text from ``queries.jsonl``), so judgments move between indexes and machines.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retriever.errors import InputFormatError, RetrieverError
from retriever.eval.beir import read_qrels, read_queries
from retriever.index.files import fsync_dir
from retriever.judgments import GRADES, JudgmentStore

if TYPE_CHECKING:
    from retriever.ingest.documents import Document
    from retriever.retriever import Retriever

QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    queries: int
    judgments: int
    documents: int  # in corpus.jsonl
    judged_missing: int  # judgments of documents not in the index: in test.tsv, not in train.tsv


def query_id(text: str) -> str:
    """The same id for the same query text in every export (judgments are keyed by text)."""
    return "j-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def export_judgments(retriever: Retriever, out: str | Path) -> ExportReport:
    """Write the index's judgments and documents as a new BEIR folder ``out`` (refused if it holds anything)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RetrieverError(f"{out} already exists and is not an empty folder; choose a new folder to export to")
    judgments = retriever.judgments()
    if not judgments:
        raise RetrieverError(f"index {retriever.layout.name} has no judgments to export; grade some hits first "
                             "('retriever judge QUERY DOC_ID GRADE' or the search page)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.export-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        documents = _write_corpus(retriever, staging / "corpus.jsonl")
        ids = {j.query: query_id(j.query) for j in judgments}
        _write_lines(staging / "queries.jsonl",
                     (json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n" for text, qid in ids.items()))
        (staging / "qrels").mkdir()
        rows = [(ids[j.query], j.doc_id, j.grade) for j in judgments]
        _write_qrels(staging / "qrels" / "test.tsv", rows)
        _write_qrels(staging / "qrels" / "train.tsv", [r for r in rows if r[1] in documents])
        fsync_dir(staging / "qrels")
        fsync_dir(staging)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(staging, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    missing = sum(1 for r in rows if r[1] not in documents)
    return ExportReport(out, len(ids), len(rows), len(documents), missing)


def import_judgments(store: JudgmentStore, folder: str | Path, split: str = "test") -> tuple[int, int]:
    """Judge every (query, document) pair of ``folder``'s ``qrels/<split>.tsv``; returns (judgments, queries).

    All or none: a bad line (an unknown query id, a grade other than 0, 1, 2) refuses the whole file.
    """
    folder = Path(folder)
    for name in ("queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / name).is_file():
            raise RetrieverError(f"{folder} is not a BEIR folder with judgments: {name} is missing")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    queries = read_queries(folder / "queries.jsonl")
    qrels = read_qrels(qrels_path)
    pairs = []
    for qid, docs in qrels.items():
        if qid not in queries:
            raise InputFormatError(f"{qrels_path}: query id {qid!r} is not in queries.jsonl")
        for doc_id, grade in docs.items():
            if grade not in GRADES:
                raise InputFormatError(f"{qrels_path}: query {qid!r}, document {doc_id!r} has score {grade}; "
                                       "judgments are 0 (not relevant), 1 (relevant) or 2 (highly relevant)")
            pairs.append((queries[qid], doc_id, grade))
    return store.judge_many(pairs), len(qrels)


def _write_corpus(retriever: Retriever, path: Path) -> set[str]:
    """Every live document of the index as a BEIR record; returns their ids."""
    snapshot = retriever.snapshot
    if snapshot is None:  # an index created empty
        _write_lines(path, [])
        return set()
    live = getattr(snapshot, "all_live_documents", None)
    if live is None:
        raise RetrieverError(f"index {retriever.layout.name} keeps its documents in {retriever.manifest.store}; "
                             "exporting judgments with its corpus needs a local index")
    ids: set[str] = set()

    def records() -> Any:
        for found in live():
            document = snapshot.document(found.doc_id)
            if document is not None:
                ids.add(document.doc_id)
                yield json.dumps(_record(document), ensure_ascii=False) + "\n"

    _write_lines(path, records())
    return ids


def _record(document: Document) -> dict[str, Any]:
    return {**document.metadata, "_id": document.doc_id, "title": document.title or "", "text": document.text}


def _write_qrels(path: Path, rows: list[tuple[str, str, int]]) -> None:
    """Tab-separated as ``read_qrels`` reads it (csv): an id holding a tab or a quote is quoted, not split."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(QRELS_HEADER)
    writer.writerows(rows)
    _write_lines(path, [buffer.getvalue()])


def _write_lines(path: Path, lines: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line)
        handle.flush()
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())
