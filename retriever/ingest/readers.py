"""Reading files into Documents: plain text, Markdown, reStructuredText, HTML, JSON/JSONL, Parquet, PDF.

A file that cannot be read as text (binary, not UTF-8, unreadable) raises
``UnreadableFileError`` so that the caller can skip it with a warning and go on; a malformed
JSON line is a real input error and raises ``InputFormatError`` naming file and line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from retriever.errors import InputFormatError
from retriever.index.layout import is_index_folder
from retriever.ingest.documents import Document, document_from_record

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
RECORD_SUFFIXES = {".jsonl", ".json"}
PARQUET_SUFFIXES = {".parquet"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES | PARQUET_SUFFIXES | PDF_SUFFIXES


class UnreadableFileError(Exception):
    """A file that is skipped (binary, not UTF-8, unreadable), with the reason."""


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def iter_corpus_files(root: Path) -> Iterator[Path]:
    """All files under ``root`` (or ``root`` itself), sorted, skipping hidden files and folders.

    Index folders are skipped too: ``retriever index .`` puts its index under ``./indexes/``.
    """
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not is_index_folder(Path(dirpath) / d)
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def read_file(path: Path, doc_id: str) -> list[Document]:
    """Read one file into its documents; ``doc_id`` is used for single-document formats."""
    suffix = path.suffix.lower()
    source = str(path)
    if suffix in PDF_SUFFIXES:
        return [_read_pdf(path, doc_id)]
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    text = _read_text(path)
    if suffix in RECORD_SUFFIXES:
        return _read_records(text, path, suffix == ".jsonl")
    if suffix in HTML_SUFFIXES:
        title, body = _html_to_text(text)
        return [Document(doc_id, body, title or path.stem, source)]
    title = _markdown_title(text) if suffix in {".md", ".markdown"} else ""
    return [Document(doc_id, text, title or path.stem, source)]


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot read ({exc.strerror or exc})") from exc
    if b"\x00" in data[:8192]:
        raise UnreadableFileError("binary file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 (byte {exc.start})") from exc


def iter_jsonl(lines: Iterable[str], path: Path | str) -> Iterator[tuple[str, Any]]:
    """(``file:line``, record) for each non-blank line; a malformed line is an error naming both."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"{where}: malformed JSON ({exc.msg})") from None


def _read_records(text: str, path: Path, jsonl: bool) -> list[Document]:
    source = str(path)
    if jsonl:
        return [document_from_record(record, where, source) for where, record in iter_jsonl(text.splitlines(), path)]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    records = data if isinstance(data, list) else [data]
    return [document_from_record(r, f"{path}[{i}]", source) for i, r in enumerate(records)]


def _read_parquet(path: Path) -> list[Document]:
    """Records of a Parquet file, one per row, read as JSONL records are (``_id``/``id``, ``title``, ``text``,
    other columns as metadata); read with pyarrow, batch by batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = str(path)
    try:
        parquet = pq.ParquetFile(path)
        docs, row = [], 0
        for batch in parquet.iter_batches(batch_size=8_192):
            for record in batch.to_pylist():
                row += 1
                docs.append(document_from_record(record, f"{path}[row {row}]", source))
        return docs
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFileError(f"unreadable Parquet file ({str(exc).splitlines()[0][:120]})") from exc


def _markdown_title(text: str) -> str:
    for line in text.splitlines()[:20]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _html_to_text(html: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return title, "\n".join(line for line in lines if line)


def _read_pdf(path: Path, doc_id: str) -> Document:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover - pypdf is a dependency
        raise UnreadableFileError("PDF support needs the 'pypdf' package") from exc
    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, OSError, ValueError, KeyError) as exc:
        raise UnreadableFileError(f"unreadable PDF ({exc})") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise UnreadableFileError("PDF has no extractable text")
    return Document(doc_id, text, str(meta_title) or path.stem, str(path))
