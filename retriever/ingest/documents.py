"""The unit of the corpus: one document with its id, text and where it came from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """A document as read from a file or given as a record.

    ``doc_id`` is the id users see everywhere (CLI, API, JSON, qrels): a JSONL record's
    ``_id``/``id``, or a file's path relative to the indexed folder.
    """

    doc_id: str
    text: str
    title: str = ""
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        """Hash of everything that affects encoding or results, to skip unchanged documents."""
        payload = json.dumps(
            [self.title, self.text, self.source, self.metadata], sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


ID_FIELDS = ("_id", "id")
KNOWN_FIELDS = {"_id", "id", "title", "text"}


def document_from_record(record: Any, where: str, source: str | None = None) -> Document:
    """Turn a JSON record (``_id``/``id``, ``title``, ``text``, anything else) into a Document.

    ``where`` names the record's place (file and line) in error messages.
    """
    from retriever.errors import InputFormatError

    if not isinstance(record, dict):
        raise InputFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    doc_id = next((record[f] for f in ID_FIELDS if record.get(f) not in (None, "")), None)
    if doc_id is None:
        raise InputFormatError(f"{where}: record has no '_id' or 'id' field")
    text = record.get("text", "")
    title = record.get("title", "") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise InputFormatError(f"{where}: 'text' and 'title' must be strings")
    if not text.strip() and not title.strip():
        raise InputFormatError(f"{where}: record {doc_id!r} has no text and no title")
    metadata = {k: v for k, v in record.items() if k not in KNOWN_FIELDS}
    return Document(doc_id=str(doc_id), text=text, title=title, source=source, metadata=metadata)
