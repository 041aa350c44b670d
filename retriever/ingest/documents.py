"""The unit of the corpus: one document with its id, text and where it came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from retriever import validation
from retriever.errors import InputFormatError


@dataclass
class Document:
    """A document as read from a file or given as a record.

    ``doc_id`` is the id users see everywhere (CLI, API, JSON, qrels): a JSONL record's
    ``_id``/``id``, or a file's path relative to the indexed folder. It validates itself, so
    that nothing downstream (SQLite, the tokenizer, filters) meets a value it cannot handle:
    an integer id becomes its string; anything else that is not a non-empty string is refused.
    """

    doc_id: str
    text: str
    title: str = ""
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.doc_id = validation.document_id(self.doc_id)
        try:
            validation.text_field(self.text, "text")
            validation.text_field(self.title, "title")
            validation.text_field(self.source, "source", optional=True)
            validation.metadata(self.metadata)
        except InputFormatError as exc:
            raise InputFormatError(f"record {self.doc_id!r}: {exc}") from None

    @property
    def is_empty(self) -> bool:
        """No text and no title: nothing to encode or to find."""
        return not self.text.strip() and not self.title.strip()

    def content_hash(self) -> str:
        """Hash of everything that affects encoding or results, to skip unchanged documents."""
        payload = json.dumps(
            [self.title, self.text, self.source, self.metadata], sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class EmptyRecordError(InputFormatError):
    """A record with neither text nor title: skipped with a warning, unless the run is strict."""

    def __init__(self, where: str, doc_id: str) -> None:
        super().__init__(f"{where}: record {doc_id!r} has {EMPTY_REASON}")
        self.doc_id = doc_id


ID_FIELDS = ("_id", "id")
KNOWN_FIELDS = {"_id", "id", "title", "text"}
EMPTY_REASON = "no text and no title"


def document_from_record(record: Any, where: str, source: str | None = None) -> Document:
    """Turn a JSON record (``_id``/``id``, ``title``, ``text``, anything else) into a Document.

    ``where`` names the record's place (file and line) in error messages. A record with no
    text and no title raises ``EmptyRecordError``, which callers may skip (``documents_from_records``).
    """
    if not isinstance(record, dict):
        raise InputFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    id_field = next((f for f in ID_FIELDS if record.get(f) not in (None, "")), None)
    if id_field is None:
        raise InputFormatError(f"{where}: record has no '_id' or 'id' field")
    doc_id = record[id_field]
    text = "" if record.get("text") is None else record["text"]  # null counts as absent
    title = "" if record.get("title") is None else record["title"]
    # with an '_id', a field named 'id' is the record's own (a framework's metadata), kept like any other
    metadata = {k: v for k, v in record.items() if k not in KNOWN_FIELDS or (k == "id" and id_field == "_id")}
    try:
        doc = Document(doc_id=doc_id, text=text, title=title, source=source, metadata=metadata)
    except InputFormatError as exc:
        raise InputFormatError(f"{where}: {exc}") from None
    if doc.is_empty:
        raise EmptyRecordError(where, doc.doc_id)
    return doc


def documents_from_records(
    records: Iterable[tuple[str, Any]],
    source: str | None = None,
    skipped: list[tuple[str, str]] | None = None,
    skipped_ids: set[str] | None = None,
) -> list[Document]:
    """Documents of ``(where, record)`` pairs; a record may also be a ``Document`` already.

    Records with no text and no title are appended to ``skipped`` as ``(where, reason)`` (and their
    ids to ``skipped_ids``, for qrels that name them) and left out; with ``skipped=None`` they are an
    error. Any other malformed record is an error naming it.
    """
    return list(iter_documents_from_records(records, source, skipped, skipped_ids))


def iter_documents_from_records(
    records: Iterable[tuple[str, Any]],
    source: str | None = None,
    skipped: list[tuple[str, str]] | None = None,
    skipped_ids: set[str] | None = None,
) -> Iterator[Document]:
    """``documents_from_records`` one at a time, so that a file of millions of records streams."""
    for where, record in records:
        try:
            if isinstance(record, Document):
                if record.is_empty:
                    raise EmptyRecordError(where, record.doc_id)
                yield record
            else:
                yield document_from_record(record, where, source)
        except EmptyRecordError as exc:
            if skipped is None:
                raise
            skipped.append((where, str(exc).removeprefix(f"{where}: ")))
            if skipped_ids is not None:
                skipped_ids.add(exc.doc_id)
