"""The manifest of one index generation: what built the index and which segments are live, as one JSON file.

It records the format version, the model (name, fingerprint, dimension), similarity, chunking, the requested
vector index, the live segments (each with its rows, documents, vector and BM25 metadata, file sizes and the
deletion file of this generation), the file catalog, counts and timestamps. Every field is checked on load, so a
damaged or hand-edited manifest is named rather than failing later with a traceback.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retriever.errors import CorruptIndexError

FORMAT_VERSION = 2


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class SegmentEntry:
    """One live segment as a generation sees it: immutable parts plus this generation's deletions."""

    name: str
    rows: int
    documents: int
    vectors: dict[str, Any]
    lexical: dict[str, Any]
    files: dict[str, int]  # file name inside the segment -> size in bytes, checked on open
    first_passage_id: int
    deletes: str | None = None  # deletion file of this generation, if any row is deleted
    deleted_rows: int = 0
    deleted_documents: int = 0
    checksums: dict[str, str] = field(default_factory=dict)  # file -> sha256 at write time, for 'retriever check'
    created_at: str = field(default_factory=now_iso)

    @property
    def live_rows(self) -> int:
        return self.rows - self.deleted_rows

    @property
    def live_documents(self) -> int:
        return self.documents - self.deleted_documents


@dataclass
class Manifest:
    model: dict[str, Any]
    chunking: dict[str, Any]
    ann: dict[str, Any]  # {"requested": "auto" | kind | factory string, "params": {...}}
    generation: str = ""
    base: str | None = None  # the generation this one was written on top of
    segments: list[SegmentEntry] = field(default_factory=list)
    catalog: str | None = None  # files.<generation>.sqlite holding the folder-sync file hashes
    similarity: str = "cosine"
    normalized: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    next_segment: int = 1
    next_passage_id: int = 0
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    last_build_seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    store: str = "local"  # where passages, vectors and BM25 live: "local" (segments) or "milvus:PATH|URL"
    backend: dict[str, Any] = field(default_factory=dict)  # the store's own state (Milvus: collection names)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        from retriever.index.files import write_json_atomically

        write_json_atomically(path, self.to_dict())

    @classmethod
    def load(cls, path: Path, index_name: str) -> Manifest:
        def corrupt(why: str) -> CorruptIndexError:
            return CorruptIndexError(f"index {index_name} is corrupt: manifest {path.name} {why}")

        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise corrupt("is missing") from None
        except IsADirectoryError:
            raise corrupt("is a folder") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise corrupt("is not valid JSON") from None
        except OSError as exc:
            raise corrupt(f"cannot be read ({exc.strerror or exc})") from None
        if not isinstance(data, dict):
            raise corrupt("is not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise CorruptIndexError(
                f"index {index_name} has format version {version!r}, this retriever reads version "
                f"{FORMAT_VERSION}; rebuild it with 'retriever index'"
            )
        try:
            return _from_dict(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise corrupt(f"has a bad field ({exc})") from None


# validation ---------------------------------------------------------------------------------------
def _need(data: dict[str, Any], key: str, kinds: type | tuple[type, ...], where: str = "") -> Any:
    if key not in data:
        raise KeyError(f"{where}{key} is missing")
    value = data[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise TypeError(f"{where}{key} must be {_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise TypeError(f"{where}{key} must be {_names(kinds)}, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}{key} must be finite")
    return value


def _names(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join({"dict": "an object", "list": "a list", "str": "a string", "int": "an integer",
                        "float": "a number", "bool": "a boolean", "NoneType": "null"}[k.__name__] for k in kinds)


def _count(data: dict[str, Any], key: str, where: str) -> int:
    value = _need(data, key, int, where)
    if value < 0:
        raise ValueError(f"{where}{key} must not be negative")
    return value


def _from_dict(data: dict[str, Any]) -> Manifest:
    model = _need(data, "model", dict)
    for key, kinds in (("name", str), ("fingerprint", str), ("dimension", int), ("max_seq_length", int)):
        _need(model, key, kinds, "model.")
    if model["dimension"] < 1:
        raise ValueError("model.dimension must be positive")
    chunking = _need(data, "chunking", dict)
    _count(chunking, "max_tokens", "chunking.")
    _count(chunking, "overlap_tokens", "chunking.")
    ann = _need(data, "ann", dict)
    _need(ann, "requested", str, "ann.")
    _need(ann, "params", dict, "ann.")
    segments = [_segment(s, i) for i, s in enumerate(_need(data, "segments", list))]
    names = [s.name for s in segments]
    if len(set(names)) != len(names):
        raise ValueError("a segment is listed twice")
    counts = _need(data, "counts", dict)
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"counts.{key} must be a count")
    extras = _need(data, "extras", dict)
    if not isinstance(data.get("store", "local"), str) or not isinstance(data.get("backend", {}), dict):
        raise TypeError("store must be a string and backend an object")
    return Manifest(
        model=model, chunking=chunking, ann=ann,
        generation=_need(data, "generation", str), base=_need(data, "base", (str, type(None))),
        segments=segments, catalog=_need(data, "catalog", (str, type(None))),
        similarity=_need(data, "similarity", str), normalized=_need(data, "normalized", bool),
        counts=counts, next_segment=_count(data, "next_segment", ""),
        next_passage_id=_count(data, "next_passage_id", ""),
        created_at=_need(data, "created_at", str), updated_at=_need(data, "updated_at", str),
        last_build_seconds=float(_need(data, "last_build_seconds", (int, float))),
        extras=extras, store=data.get("store", "local"), backend=data.get("backend", {}),
        format_version=FORMAT_VERSION,
    )


def _segment(data: Any, number: int) -> SegmentEntry:
    where = f"segments[{number}]."
    if not isinstance(data, dict):
        raise TypeError(f"segments[{number}] must be an object")
    name = _need(data, "name", str, where)
    if not name.startswith("seg-") or "/" in name or ".." in name:
        raise ValueError(f"{where}name {name[:40]!r} is not a segment name")
    files = _need(data, "files", dict, where)
    for file, size in files.items():
        unsafe = file.startswith("/") or ".." in file.split("/")
        if unsafe or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"{where}files has a bad entry {file[:40]!r}")
    entry = SegmentEntry(
        name=name, rows=_count(data, "rows", where), documents=_count(data, "documents", where),
        vectors=_need(data, "vectors", dict, where), lexical=_need(data, "lexical", dict, where), files=files,
        first_passage_id=_count(data, "first_passage_id", where),
        deletes=_need(data, "deletes", (str, type(None)), where),
        deleted_rows=_count(data, "deleted_rows", where), deleted_documents=_count(data, "deleted_documents", where),
        checksums=_need(data, "checksums", dict, where), created_at=_need(data, "created_at", str, where),
    )
    if any(not isinstance(v, str) for v in entry.checksums.values()):
        raise TypeError(f"{where}checksums must map files to strings")
    if entry.deleted_rows > entry.rows or entry.deleted_documents > entry.documents:
        raise ValueError(f"{where}deletes more than it holds")
    return entry


def entry_from_dict(data: dict[str, Any]) -> SegmentEntry:
    """A segment entry read back from a manifest's JSON (validated)."""
    return _segment(data, 0)
