"""The index manifest: what built an index and how, as one JSON file.

It records the format version, the model (name, fingerprint, dimension), similarity and
normalisation, chunking parameters, the ANN kind and parameters, counts, timestamps, and
the size and checksum of the vector file so that a damaged index is detected on load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retriever.errors import CorruptIndexError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = {  # what loading and searching read from each section
    "model": ("name", "fingerprint", "dimension", "max_seq_length"),
    "chunking": ("max_tokens", "overlap_tokens"),
    "ann": ("requested", "kind", "params"),
}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Manifest:
    model: dict[str, Any]
    chunking: dict[str, Any]
    ann: dict[str, Any]
    similarity: str = "cosine"
    normalized: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    last_build_seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def save(self, directory: Path) -> None:
        (directory / MANIFEST_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path, index_name: str) -> Manifest:
        path = directory / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CorruptIndexError(f"index {index_name} is corrupt: {MANIFEST_NAME} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CorruptIndexError(f"index {index_name} is corrupt: {MANIFEST_NAME} is not valid JSON") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise CorruptIndexError(
                f"index {index_name} has format version {version!r}, this retriever reads "
                f"version {FORMAT_VERSION}; rebuild it with 'retriever index'"
            )
        for section, keys in REQUIRED_KEYS.items():
            value = data.get(section)
            if not isinstance(value, dict) or any(key not in value for key in keys):
                raise CorruptIndexError(f"index {index_name} is corrupt: bad manifest ({section!r} is incomplete)")
        try:
            return cls(**data)
        except TypeError as exc:
            raise CorruptIndexError(f"index {index_name} is corrupt: bad manifest ({exc})") from None
