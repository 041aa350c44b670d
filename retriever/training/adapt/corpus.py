"""Reading the corpus to adapt to, exactly as ``retriever index`` reads it (same readers, same ids)."""

from __future__ import annotations

from pathlib import Path

from retriever.errors import RetrieverError
from retriever.ingest.documents import Document
from retriever.ingest.sync import read_documents as read_file_documents
from retriever.ingest.sync import scan_folder


def read_documents(path: str | Path) -> list[Document]:
    """Every document under ``path`` (a folder or a file), first occurrence of each id, in file order."""
    path = Path(path)
    if not path.exists():
        raise RetrieverError(f"corpus not found: {path}")
    changes = scan_folder(path, {})
    seen: dict[str, Document] = {}
    for file in changes.ids:
        for doc in read_file_documents(path, file):
            if doc.text.strip():
                seen.setdefault(doc.doc_id, doc)
    if not seen:
        raise RetrieverError(f"nothing to adapt to in {path}: no text in readable .txt, .md, .rst, .html, "
                             ".json(l) or .pdf files")
    return list(seen.values())
