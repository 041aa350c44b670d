"""Reading BEIR-layout datasets: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

Used by benchmarks and training. Qrels keep graded relevance (0 = judged not relevant).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retriever.errors import InputFormatError, RetrieverError
from retriever.ingest.documents import Document, document_from_record
from retriever.ingest.readers import iter_jsonl

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


def read_corpus(path: Path) -> dict[str, Document]:
    docs = (document_from_record(record, where) for where, record in read_jsonl(path))
    return {d.doc_id: d for d in docs}


def read_queries(path: Path) -> dict[str, str]:
    out = {}
    for where, record in read_jsonl(path):
        if not isinstance(record, dict) or "_id" not in record or "text" not in record:
            raise InputFormatError(f"{where}: a query needs '_id' and 'text'")
        out[str(record["_id"])] = record["text"]
    return out


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
