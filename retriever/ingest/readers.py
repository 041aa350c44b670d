"""Reading files into Documents: plain text, Markdown, reStructuredText, HTML, JSON/JSONL, Parquet, PDF.

A file that cannot be read as text (binary, not UTF-8, unreadable) raises
``UnreadableFileError`` so that the caller can skip it with a warning and go on; a malformed
JSON line is a real input error and raises ``InputFormatError`` naming file and line. A record
with neither text nor title is left out and listed in ``skipped`` when the caller passes one.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from retriever.errors import InputFormatError
from retriever.index.layout import is_index_folder
from retriever.ingest.documents import Document, documents_from_records, iter_documents_from_records

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
RECORD_SUFFIXES = {".jsonl", ".json"}
PARQUET_SUFFIXES = {".parquet"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES | PARQUET_SUFFIXES | PDF_SUFFIXES
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024  # the largest file read whole (one document, one JSON value, one JSONL line)
SPECIAL_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                 (stat.S_ISSOCK, "socket"))


class UnreadableFileError(Exception):
    """A file that is skipped (binary, not UTF-8, unreadable), with the reason."""


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def iter_corpus_files(root: Path, unreadable: list[tuple[str, str]] | None = None) -> Iterator[Path]:
    """All files under ``root`` (or ``root`` itself), sorted, skipping hidden files and folders.

    Index folders are skipped too: ``retriever index .`` puts its index under ``./indexes/``. A folder that
    cannot be listed is skipped and appended to ``unreadable`` as ``(folder, reason)``. Special files (FIFOs,
    devices, sockets) are yielded like any file: ``special_file_problem`` says why they are skipped.
    """
    if not root.is_dir():
        yield root
        return

    def failed(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append((str(exc.filename or root), f"folder cannot be read ({exc.strerror or exc})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=failed):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _index_folder(Path(dirpath) / d))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _index_folder(folder: Path) -> bool:
    try:
        return is_index_folder(folder)
    except OSError:  # an unreadable folder: os.walk reports it when it tries to list it
        return False


def special_file_problem(path: Path) -> str | None:
    """Why ``path`` is not read at all (a FIFO, device or socket, also behind a symlink), or None for a regular
    file. Reading a FIFO would block forever and reading ``/dev/zero`` would never end."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    return _kind_problem(mode)


def _kind_problem(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in SPECIAL_KINDS if test(mode)), "folder" if stat.S_ISDIR(mode) else "")
    return f"{kind or 'special file'}, not a regular file"


def open_regular(path: Path):  # noqa: ANN201 - a binary file object
    """``path`` opened for reading, refused (``UnreadableFileError``) unless it is a regular file when opened.

    The check is on the opened file itself, so a file replaced by a FIFO after an earlier check neither blocks
    (``O_NONBLOCK``) nor gets read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UnreadableFileError(f"cannot read ({exc.strerror or exc})") from exc
    try:
        problem = _kind_problem(os.fstat(fd).st_mode)
        if problem:
            raise UnreadableFileError(problem)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def too_large() -> str:
    return f"larger than the {MAX_DOCUMENT_BYTES / (1024 * 1024):g} MiB limit for one document"


def read_file(path: Path, doc_id: str, skipped: list[tuple[str, str]] | None = None) -> list[Document]:
    """Read one file into its documents; ``doc_id`` is used for single-document formats.

    Records with no text and no title go to ``skipped`` as ``(file:line, reason)``; without
    ``skipped`` they are an error.
    """
    return list(iter_file(path, doc_id, skipped))


def iter_file(path: Path, doc_id: str, skipped: list[tuple[str, str]] | None = None) -> Iterator[Document]:
    """``read_file`` one document at a time: a JSONL file is read line by line and a Parquet file batch by
    batch, so memory stays bounded however many records it holds (other formats are one document, or one JSON
    value, anyway)."""
    if path.suffix.lower() == ".jsonl":
        yield from iter_documents_from_records(iter_jsonl(_stream_lines(path), path), str(path), skipped)
        return
    if path.suffix.lower() in PARQUET_SUFFIXES:
        yield from iter_documents_from_records(_parquet_records(path), str(path), skipped)
        return
    yield from _read_whole(path, doc_id, skipped)


def _stream_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, read as they come; binary or undecodable files are unreadable."""
    with open_regular(path) as handle:
        try:
            if b"\x00" in handle.read(8192):
                raise UnreadableFileError("binary file")
            handle.seek(0)
            first = True
            limit = MAX_DOCUMENT_BYTES
            for number, raw in enumerate(iter(lambda: handle.readline(limit + 1), b""), start=1):
                if len(raw) > limit:
                    raise UnreadableFileError(f"line {number} is {too_large()}")
                if first and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                first = False
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UnreadableFileError(f"not UTF-8 (line {number}, byte {exc.start})") from exc
        except OSError as exc:
            raise UnreadableFileError(f"cannot read ({exc.strerror or exc})") from exc


def _read_whole(path: Path, doc_id: str, skipped: list[tuple[str, str]] | None) -> list[Document]:
    suffix = path.suffix.lower()
    source = str(path)
    if suffix in PDF_SUFFIXES:
        return [_read_pdf(path, doc_id)]
    text = _read_text(path)
    if suffix in RECORD_SUFFIXES:
        return _read_records(text, path, suffix == ".jsonl", skipped)
    if suffix in HTML_SUFFIXES:
        title, body = _html_to_text(text)
        return [Document(doc_id, body, title or path.stem, source)]
    title = _markdown_title(text) if suffix in {".md", ".markdown"} else ""
    return [Document(doc_id, text, title or path.stem, source)]


def _read_text(path: Path) -> str:
    with open_regular(path) as handle:
        try:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)  # never more, whatever the file claims to be
        except OSError as exc:
            raise UnreadableFileError(f"cannot read ({exc.strerror or exc})") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UnreadableFileError(too_large())
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
        yield where, parse_json(line, where)


def parse_json(text: str, where: str) -> Any:
    """``json.loads``, with every way it can fail (syntax, nesting too deep, a huge integer) as one error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        place = where if "\n" not in text.strip() else f"{where}:{exc.lineno}"
        raise InputFormatError(f"{place}: malformed JSON ({exc.msg})") from None
    except RecursionError:
        raise InputFormatError(f"{where}: malformed JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise InputFormatError(f"{where}: malformed JSON ({exc})") from None


def _read_records(text: str, path: Path, jsonl: bool, skipped: list[tuple[str, str]] | None) -> list[Document]:
    source = str(path)
    if jsonl:
        return documents_from_records(iter_jsonl(text.splitlines(), path), source, skipped)
    data = parse_json(text, str(path))
    records = data if isinstance(data, list) else [data]
    return documents_from_records(((f"{path}[{i}]", r) for i, r in enumerate(records)), source, skipped)


def _parquet_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(``file[row N]``, record) for each row of a Parquet file, read batch by batch with pyarrow; rows are
    records as JSONL lines are (``_id``/``id``, ``title``, ``text``, other columns as metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    problem = special_file_problem(path)
    if problem:
        raise UnreadableFileError(problem)
    try:
        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8_192):
            for record in batch.to_pylist():
                row += 1
                yield f"{path}[row {row}]", record
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
    except ImportError as exc:  # pragma: no cover - pypdf is a dependency
        raise UnreadableFileError("PDF support needs the 'pypdf' package") from exc
    with open_regular(path) as handle:
        try:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise UnreadableFileError(f"cannot read ({exc.strerror or exc})") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UnreadableFileError(too_large())
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception as exc:  # noqa: BLE001 - a damaged PDF can fail anywhere inside pypdf (even RecursionError)
        raise UnreadableFileError(f"unreadable PDF ({exc or type(exc).__name__})") from exc
    text = _valid_unicode("\n\n".join(p.strip() for p in pages if p.strip()))
    if not text:
        raise UnreadableFileError("PDF has no extractable text")
    return Document(doc_id, text, _valid_unicode(str(meta_title)) or path.stem, str(path))


def _valid_unicode(text: str) -> str:
    """PDF text with any lone surrogate (a broken font encoding) replaced, so the document can be stored."""
    return text.encode("utf-8", "replace").decode("utf-8")
