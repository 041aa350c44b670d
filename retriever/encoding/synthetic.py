"""A stand-in encoder for measuring the engine itself: deterministic vectors, no model, microseconds a text.

``SyntheticEncoder`` turns a text into the normalised sum of one fixed random vector per word (a bag of random
word embeddings), so texts that share words get similar vectors and a query made of a passage's words finds
that passage, as with a real model, while encoding costs almost nothing. It is the documented hook for
benchmarks of storage and search at scale (``benchmarks/scale.py``): pass it as ``Retriever.build(...,
encoder=SyntheticEncoder())`` and ``Retriever.load(..., encoder=SyntheticEncoder())``. Chunking uses the default
model's real tokenizer, so passages are cut exactly as they would be, read by the ``tokenizers`` library alone
(``retriever.encoding.light``: no transformers or torch to import, seconds on a small CPU).
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

WORD = re.compile(r"\w+")
VERSION = 1


class SyntheticEncoder:
    """Deterministic bag-of-random-word vectors with the interface of ``retriever.encoding.encoder.Encoder``."""

    def __init__(self, dimension: int = 384, max_seq_length: int = 256, seed: int = 0) -> None:
        self._dimension, self._max_seq_length, self.seed = dimension, max_seq_length, seed
        self.name = f"synthetic-bow-{dimension}"
        self.path = Path(".")
        self._words: dict[str, np.ndarray] = {}

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @property
    def fingerprint(self) -> str:
        return f"synthetic-v{VERSION}-{self.seed}-{self._dimension}"

    @property
    def architecture(self) -> str:
        return "synthetic"

    @cached_property
    def tokenizer(self) -> Any:
        from retriever.encoding.encoder import DEFAULT_MODEL, resolve_model_path
        from retriever.encoding.light import TOKENIZER, ChunkTokenizer

        return ChunkTokenizer.from_file(resolve_model_path(DEFAULT_MODEL) / TOKENIZER)

    def _word(self, word: str) -> np.ndarray:
        vector = self._words.get(word)
        if vector is None:
            seed = int.from_bytes(hashlib.blake2b(f"{self.seed}:{word}".encode(), digest_size=8).digest(), "little")
            vector = np.random.default_rng(seed).standard_normal(self._dimension).astype(np.float32)
            self._words[word] = vector
        return vector

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = WORD.findall(text.lower())
            if words:
                out[row] = np.sum([self._word(w) for w in words], axis=0)
            else:
                out[row, 0] = 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self._encode(list(texts))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": "", "fingerprint": self.fingerprint, "dimension": self._dimension,
            "max_seq_length": self._max_seq_length, "architecture": self.architecture,
        }
