"""On-disk cache of document embeddings, keyed by model fingerprint and a hash of the texts.

Benchmarks compare many search settings over one corpus; with the cache, only the first run
pays the minutes of encoding. The fingerprint names the backend and quantization too, so each
backend's vectors are cached apart. Stored as ``<key>.npy`` (numpy, no pickle) and ``<key>.json``
(how long the encoding took, so speed figures stay honest when the vectors are reused).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from retriever.encoding.encoder import Encoder

DEFAULT_CACHE_DIR = Path(os.environ.get("RETRIEVER_CACHE", Path.home() / ".cache" / "retriever" / "embeddings"))


def cache_key(fingerprint: str, texts: list[str], kind: str) -> str:
    digest = hashlib.sha256(f"{kind}\0{fingerprint}\0{len(texts)}".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, directory: Path = DEFAULT_CACHE_DIR) -> None:
        self.directory = Path(directory)

    def get(self, key: str) -> tuple[np.ndarray, dict] | None:
        vectors, meta = self.directory / f"{key}.npy", self.directory / f"{key}.json"
        if not (vectors.exists() and meta.exists()):
            return None
        return np.load(vectors, allow_pickle=False), json.loads(meta.read_text())

    def put(self, key: str, vectors: np.ndarray, meta: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{key}.tmp.npy"
        np.save(tmp, vectors, allow_pickle=False)
        os.replace(tmp, self.directory / f"{key}.npy")
        (self.directory / f"{key}.json").write_text(json.dumps(meta))


class CachedEncoder(Encoder):
    """An Encoder whose document encodings go through an EmbeddingCache.

    ``last_encode`` records the seconds the encoding took (when it was first computed) and
    whether this call was served from the cache.
    """

    cache: EmbeddingCache
    last_encode: dict

    @classmethod
    def wrap(cls, encoder: Encoder, cache: EmbeddingCache) -> CachedEncoder:
        wrapped = cls.__new__(cls)
        wrapped.__dict__.update(encoder.__dict__)
        wrapped.cache = cache
        wrapped.last_encode = {}
        return wrapped

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        key = cache_key(self.fingerprint, texts, "document")
        hit = self.cache.get(key)
        if hit is not None:
            self.last_encode = {**hit[1], "cached": True}
            return hit[0]
        started = time.perf_counter()
        vectors = super().encode_documents(texts, progress=progress)
        meta = {"seconds": time.perf_counter() - started, "texts": len(texts), "computed_at": time.time()}
        self.cache.put(key, vectors, meta)
        self.last_encode = {**meta, "cached": False}
        return vectors
