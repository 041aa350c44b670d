"""Reading BEIR-layout datasets: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

Used by benchmarks and training. Qrels keep graded relevance (0 = judged not relevant). As when
indexing, corpus records with no text and no title (public BEIR corpora have a few) and queries
with no text are skipped with one warning that counts them, rather than stopping the run.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retriever.errors import InputFormatError, RetrieverError, RetrieverWarning
from retriever.ingest.documents import Document, documents_from_records
from retriever.ingest.readers import iter_jsonl
from retriever.ingest.sync import counted

Qrels = dict[str, dict[str, int]]  # query id -> doc id -> graded relevance


@dataclass
class BeirDataset:
    root: Path
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels

    @property
    def name(self) -> str:
        return self.root.name


def read_jsonl(path: Path) -> list[tuple[str, Any]]:
    """(``file:line``, record) pairs of a JSONL file; a malformed line is an error naming file and line."""
    with path.open(encoding="utf-8") as handle:
        return list(iter_jsonl(handle, path))


def read_corpus(path: Path, skipped_ids: set[str] | None = None) -> dict[str, Document]:
    """Documents by id; the ids of records skipped for having no text go to ``skipped_ids``."""
    skipped: list[tuple[str, str]] = []
    docs = documents_from_records(read_jsonl(path), skipped=skipped, skipped_ids=skipped_ids)
    warn_skipped(skipped, "corpus record with no text and no title", "corpus records with no text and no title")
    return {d.doc_id: d for d in docs}


def read_queries(path: Path, skipped_ids: set[str] | None = None) -> dict[str, str]:
    """Query texts by id; the ids of queries skipped for having no text go to ``skipped_ids``."""
    from retriever.validation import document_id, unicode_problem

    out = {}
    skipped: list[tuple[str, str]] = []
    for where, record in read_jsonl(path):
        if not isinstance(record, dict) or "_id" not in record or "text" not in record:
            raise InputFormatError(f"{where}: a query needs '_id' and 'text'")
        text = record["text"]
        if text is not None and not isinstance(text, str):
            raise InputFormatError(f"{where}: a query's 'text' must be a string, not {type(text).__name__}")
        if text and unicode_problem(text):
            raise InputFormatError(f"{where}: query text is {unicode_problem(text)}")
        try:
            qid = document_id(record["_id"])
        except InputFormatError as exc:
            raise InputFormatError(f"{where}: query {str(exc).replace('document id', 'id')}") from None
        if not text or not text.strip():
            skipped.append((where, "no text"))
            if skipped_ids is not None:
                skipped_ids.add(qid)
            continue
        out[qid] = text
    warn_skipped(skipped, "query with no text", "queries with no text")
    return out


def warn_skipped(skipped: list[tuple[str, str]], one: str, many: str) -> None:
    """One warning for all the records left out of a file, naming the first few."""
    if skipped:
        message = f"skipped {counted(one, many, [where for where, _ in skipped])}"
        warnings.warn(message, RetrieverWarning, stacklevel=3)


def read_qrels(path: Path) -> Qrels:
    """``query-id corpus-id score`` rows (tab-separated, optional header)."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise InputFormatError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'")
            try:
                score = int(float(row[2]))
            except ValueError:
                raise InputFormatError(f"{path}:{number}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_beir(root: str | Path, split: str = "test") -> BeirDataset:
    root = Path(root)
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / name).exists():
            raise RetrieverError(f"{root} is not a BEIR dataset folder: {name} is missing")
    return BeirDataset(
        root=root,
        corpus=read_corpus(root / "corpus.jsonl"),
        queries=read_queries(root / "queries.jsonl"),
        qrels=read_qrels(root / "qrels" / f"{split}.tsv"),
    )
