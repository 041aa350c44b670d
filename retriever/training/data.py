"""Reading training data into one shape: queries, documents and judged (query, document) pairs.

Two inputs are accepted:

* a BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv`` and, if present,
  ``qrels/dev.tsv``;
* a JSONL file of ``{"query", "positive"[, "negative"]}`` records (``positive`` and
  ``negative`` may be strings or lists of strings) or ``{"query", "document", "label"}``
  records (label 1 = relevant, 0 = not relevant).

Both become ``TrainingData``: texts by id and qrels where relevance > 0 marks a positive and
0 a known negative. Every later step (mining, examples, dev evaluation) works on that, so it
does not care where the data came from. Bad input is an ``InputFormatError`` naming file:line.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retriever.errors import InputFormatError, RetrieverError
from retriever.eval.beir import Qrels, read_corpus, read_qrels, read_queries
from retriever.ingest.chunking import encoding_text
from retriever.ingest.readers import iter_jsonl

JSONL_FORMATS = "{'query', 'positive'[, 'negative']} or {'query', 'document', 'label'}"


@dataclass
class TrainingData:
    """Texts by id, training qrels and dev qrels (relevance > 0 = positive, 0 = known negative)."""

    source: Path
    kind: str  # "beir" or "jsonl"
    queries: dict[str, str]
    corpus: dict[str, str]  # document id -> the text the encoder sees (title + text)
    train: Qrels
    dev: Qrels = field(default_factory=dict)
    dev_source: str = "none"
    # Positives that are a part of a corpus document rather than the whole of it (``retriever adapt``:
    # a passage without its query sentence, a title's body): id -> text, and id -> the document cut from.
    # Mining never offers that document as a negative for its own queries.
    part_texts: dict[str, str] = field(default_factory=dict)
    part_of: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # how the pairs were made, for the model card

    def summary(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "format": self.kind,
            "documents": len(self.corpus),
            "train_queries": len(self.train),
            "train_positive_pairs": count_pairs(self.train, positive=True),
            "train_known_negatives": count_pairs(self.train, positive=False),
            "dev_queries": len(self.dev),
            "dev_source": self.dev_source,
            **self.notes,
        }

    def texts(self) -> dict[str, str]:
        """Every text a training example may name: the corpus and the part-document positives."""
        return {**self.corpus, **self.part_texts} if self.part_texts else self.corpus

    def whole_document_qrels(self) -> Qrels:
        """The training qrels with each part-document positive replaced by the document it was cut from."""
        if not self.part_of:
            return self.train
        return {q: {self.part_of.get(d, d): r for d, r in docs.items()} for q, docs in self.train.items()}


def count_pairs(qrels: Qrels, positive: bool) -> int:
    return sum(1 for docs in qrels.values() for rel in docs.values() if (rel > 0) == positive)


def load_training_data(path: str | Path, dev_fraction: float = 0.1, seed: int = 42) -> TrainingData:
    """Read a BEIR folder or a JSONL file; hold out dev queries when no dev qrels are given."""
    return hold_out_dev(read_training_data(path), dev_fraction, seed)


def read_training_data(path: str | Path) -> TrainingData:
    """Read a BEIR folder or a JSONL file as it is (dev qrels only if it has them)."""
    path = Path(path)
    if not path.exists():
        raise RetrieverError(f"training data not found: {path}")
    data = _load_beir(path) if path.is_dir() else _load_jsonl(path)
    if not any(rel > 0 for docs in data.train.values() for rel in docs.values()):
        raise RetrieverError(f"{path}: no positive (query, document) pair to train on")
    return data


def hold_out_dev(data: TrainingData, dev_fraction: float, seed: int) -> TrainingData:
    """Hold out a seeded ``dev_fraction`` of the training queries as dev, unless ``data`` has dev qrels."""
    if not data.dev:
        data.train, data.dev = split_dev(data.train, dev_fraction, seed)
        if data.dev:
            data.dev_source = f"{len(data.dev)} training queries held out ({dev_fraction:.0%}, seed {seed})"
    return data


def split_dev(qrels: Qrels, fraction: float, seed: int) -> tuple[Qrels, Qrels]:
    """Hold out a seeded ``fraction`` of the queries that have a positive (at least one if any)."""
    candidates = sorted(q for q, docs in qrels.items() if any(r > 0 for r in docs.values()))
    if fraction <= 0 or len(candidates) < 2:
        return qrels, {}
    size = min(len(candidates) - 1, max(1, round(fraction * len(candidates))))
    held_out = set(random.Random(seed).sample(candidates, size))
    return ({q: d for q, d in qrels.items() if q not in held_out}, {q: d for q, d in qrels.items() if q in held_out})


# BEIR ----------------------------------------------------------------------------------------
def _load_beir(root: Path) -> TrainingData:
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
        if not (root / name).exists():
            raise RetrieverError(
                f"{root} is not a BEIR training folder ({name} is missing); give a BEIR folder with "
                f"qrels/train.tsv or a JSONL file of {JSONL_FORMATS}"
            )
    skipped = Skipped()  # records with no text: their judgements are left out with them
    documents = read_corpus(root / "corpus.jsonl", skipped_ids=skipped.documents)
    corpus = {doc_id: encoding_text(d.title, d.text) for doc_id, d in documents.items()}
    queries = read_queries(root / "queries.jsonl", skipped_ids=skipped.queries)
    train = _checked_qrels(root / "qrels" / "train.tsv", queries, corpus, skipped)
    data = TrainingData(root, "beir", queries, corpus, train)
    dev_path = root / "qrels" / "dev.tsv"
    if dev_path.exists():
        data.dev = _checked_qrels(dev_path, queries, corpus, skipped)
        data.train = {q: d for q, d in data.train.items() if q not in data.dev}
        data.dev_source = "qrels/dev.tsv"
    return data


@dataclass
class Skipped:
    """Ids of the queries and documents the BEIR readers left out for having no text."""

    queries: set[str] = field(default_factory=set)
    documents: set[str] = field(default_factory=set)


def _checked_qrels(path: Path, queries: dict[str, str], corpus: dict[str, str], skipped: Skipped) -> Qrels:
    """Qrels whose every query and document exists; otherwise an error naming the first bad line.

    Judgements of skipped records (no text) are dropped rather than refused.
    """
    qrels = {q: {d: r for d, r in docs.items() if d not in skipped.documents}
             for q, docs in read_qrels(path).items() if q not in skipped.queries}
    for qid, docs in qrels.items():
        if qid not in queries:
            raise InputFormatError(f"{path}:{_line_of(path, qid, '')}: query id {qid!r} is not in queries.jsonl")
        for did in docs:
            if did not in corpus:
                raise InputFormatError(f"{path}:{_line_of(path, qid, did)}: document id {did!r} is not in corpus.jsonl")
    return qrels


def _line_of(path: Path, qid: str, did: str) -> int:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            cells = line.rstrip("\n").split("\t")
            if cells[0] == qid and (not did or (len(cells) > 1 and cells[1] == did)):
                return number
    return 0


# JSONL ---------------------------------------------------------------------------------------
def _load_jsonl(path: Path) -> TrainingData:
    queries: dict[str, str] = {}  # text -> id, inverted at the end
    docs: dict[str, str] = {}
    qrels: Qrels = {}

    def judge(where: str, query: str, document: str, relevant: bool) -> None:
        qid = queries.setdefault(query, f"q{len(queries)}")
        did = docs.setdefault(document, f"d{len(docs)}")
        current = qrels.setdefault(qid, {}).get(did)
        if current is not None and current != int(relevant):
            raise InputFormatError(f"{where}: this (query, document) pair is labelled both relevant and not")
        qrels[qid][did] = int(relevant)

    for where, record in _records(path):
        query = _text(record, "query", where)
        if "positive" in record or "negative" in record:
            for text in _texts(record, "positive", where, required=True):
                judge(where, query, text, True)
            for text in _texts(record, "negative", where, required=False):
                judge(where, query, text, False)
        elif "document" in record:
            judge(where, query, _text(record, "document", where), _label(record, where))
        else:
            raise InputFormatError(f"{where}: a training record needs {JSONL_FORMATS}")
    if not qrels:
        raise InputFormatError(f"{path}: no training records (expected JSON lines of {JSONL_FORMATS})")
    return TrainingData(
        path, "jsonl", {i: t for t, i in queries.items()}, {i: t for t, i in docs.items()}, qrels
    )


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for where, record in iter_jsonl(handle, path):
            if not isinstance(record, dict):
                raise InputFormatError(f"{where}: expected a JSON object of {JSONL_FORMATS}")
            yield where, record


def _text(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if value is None:
        raise InputFormatError(f"{where}: missing field {key!r} (expected {JSONL_FORMATS})")
    if not isinstance(value, str) or not value.strip():
        raise InputFormatError(f"{where}: field {key!r} must be a non-empty string")
    return value


def _texts(record: dict[str, Any], key: str, where: str, required: bool) -> list[str]:
    value = record.get(key)
    if value is None and not required:
        return []
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InputFormatError(f"{where}: field {key!r} is an empty list")
    return [_text({key: v}, key, where) for v in values]


def _label(record: dict[str, Any], where: str) -> bool:
    label = record.get("label")
    if isinstance(label, bool) or label in (0, 1):
        return bool(label)
    raise InputFormatError(f"{where}: field 'label' must be 1 (relevant) or 0 (not relevant), not {label!r}")
