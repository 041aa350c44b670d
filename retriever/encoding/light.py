"""Running an ONNX or OpenVINO export without sentence-transformers: tokenizing with the ``tokenizers`` library.

Importing sentence-transformers (with torch, transformers, scikit-learn, scipy) takes seconds: ~8 s of CPU on a
2-core AMD EPYC, most of a first ``retriever search`` and of a small ``retriever index`` update. An export needs
only token ids, which ``tokenizers`` (the Rust tokenizer inside transformers' fast tokenizers) gives in
milliseconds, and the chunker needs only token offsets. When a process that has the model loaded uses an export,
it writes ``light.json`` into the export folder, next to the model's ``tokenizer.json``: the truncation length,
each task's prompt, the model's dimension and architecture. It is written only after checking, on
``CHECK_TEXTS``, that the ids of queries and documents, and the chunker's offsets and word ids, are exactly
sentence-transformers' and transformers'; a model whose input this cannot reproduce (no fast tokenizer, another
input module, a different tokenizer per tower) gets no ``light.json`` and loads as before.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

LIGHT = "light.json"
TOKENIZER = "tokenizer.json"
VERSION = 2
TASKS = ("query", "document")
GRAPH_FEATURES = ("input_ids", "attention_mask", "token_type_ids")
CHECK_TEXTS = ("What causes Type 2 diabetes?", "  RESET my Password, please!  ", "naïve café résumé — “quotes”",
               "", "a " * 600, "COVID-19 vaccine efficacy in adults over 65 (randomized trial)",
               "e-mail: someone@example.org; tel. +1 (555) 010-0199\nnew line\ttab", "日本語のテキスト and emoji 🙂")


class ChunkTokenizer:
    """The calls the engine makes on a transformers fast tokenizer (``Chunker``, context and assembly token
    counts), answered by ``tokenizers`` alone: no special tokens, no truncation, no padding."""

    is_fast = True

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def from_file(cls, path: Path) -> ChunkTokenizer:
        """The tokenizer saved in ``path`` (a ``tokenizer.json``), with its truncation and padding turned off."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer)

    def __call__(self, text: str | list[str], add_special_tokens: bool = False, **_: Any) -> _Encoded:
        if add_special_tokens:
            raise ValueError("the light tokenizer counts and cuts text only: no special tokens")
        texts = [text] if isinstance(text, str) else list(text)
        return _Encoded(self.tokenizer.encode_batch(texts, add_special_tokens=False), isinstance(text, str))


class _Encoded(dict):
    """What ``BatchEncoding`` gives for the keys the engine reads: ``input_ids``, ``offset_mapping``, ``word_ids``."""

    def __init__(self, encodings: list[Any], single: bool) -> None:
        ids, offsets = [e.ids for e in encodings], [[tuple(o) for o in e.offsets] for e in encodings]
        super().__init__(input_ids=ids[0] if single else ids, offset_mapping=offsets[0] if single else offsets)
        self.encodings = encodings

    def word_ids(self, index: int = 0) -> list[int | None]:
        return list(self.encodings[index].word_ids)


class LightTokenizer:
    """The features the export's graphs take, and the chunker's tokenizer, from ``tokenizers`` alone."""

    def __init__(self, directory: Path, spec: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.spec = spec
        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER))
        self.tokenizer.enable_truncation(max_length=int(spec["max_length"]))
        self.tokenizer.enable_padding(pad_id=int(spec["pad_id"]), pad_token=str(spec["pad_token"]),
                                      pad_type_id=int(spec["pad_type_id"]))
        self.chunking = ChunkTokenizer.from_file(directory / TOKENIZER)

    def prompt(self, task: str) -> str | None:
        return self.spec["prompts"][task]

    def features(self, texts: list[str], task: str) -> dict[str, np.ndarray]:
        prompt = self.prompt(task) or ""
        encoded = self.tokenizer.encode_batch([prompt + text for text in texts])
        return {"input_ids": np.asarray([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.asarray([e.type_ids for e in encoded], dtype=np.int64)}


def read_light(directory: Path | None) -> LightTokenizer | None:
    """The export's light path, or None if it has none (or one another version wrote)."""
    if directory is None or not (directory / LIGHT).is_file() or not (directory / TOKENIZER).is_file():
        return None
    try:
        spec = json.loads((directory / LIGHT).read_text())
        if spec.get("version") != VERSION:
            return None
        return LightTokenizer(directory, spec)
    except Exception:  # noqa: BLE001 - a damaged file (tokenizers raises plain Exception): load the model instead
        return None


def write_light(model: SentenceTransformer, directory: Path, prompts: dict[str, str | None],
                architecture: str) -> bool:
    """Write ``light.json`` (and the tokenizer) into the complete export ``directory`` if, on ``CHECK_TEXTS``, it
    reproduces sentence-transformers' features for every task and transformers' tokens for the chunker."""
    tokenizer = getattr(model, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or tokenizer.pad_token is None:
        return False
    spec = {"version": VERSION, "max_length": int(model.max_seq_length), "prompts": prompts,
            "pad_id": int(tokenizer.pad_token_id), "pad_token": str(tokenizer.pad_token),
            "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
            "dimension": int(model.get_embedding_dimension()), "max_seq_length": int(model.max_seq_length),
            "architecture": architecture}
    try:
        with tempfile.TemporaryDirectory(dir=directory) as staging:
            (Path(staging) / TOKENIZER).write_text(backend.to_str())
            try:
                light = LightTokenizer(Path(staging), spec)
            except Exception:  # noqa: BLE001 - a tokenizer ``tokenizers`` cannot load has no light path
                return False
            if not _reproduces(model, tokenizer, light, prompts):
                return False
            os.replace(Path(staging) / TOKENIZER, directory / TOKENIZER)
            (Path(staging) / LIGHT).write_text(json.dumps(spec, indent=1))
            os.replace(Path(staging) / LIGHT, directory / LIGHT)  # written last: a light.json has its tokenizer
    except OSError:  # a read-only export cache (shared storage): processes load the model, as before
        return False
    return True


def _reproduces(model: SentenceTransformer, tokenizer: Any, light: LightTokenizer,
                prompts: dict[str, str | None]) -> bool:
    texts = list(CHECK_TEXTS)
    for task in TASKS:
        want = model.preprocess(texts, prompt=prompts[task], task=task)
        got = light.features(texts, task)
        if "input_ids" not in want or any(name in want and not np.array_equal(np.asarray(want[name]), got[name])
                                          for name in GRAPH_FEATURES):
            return False
    want_batch = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    got_batch = light.chunking(texts, add_special_tokens=False, return_offsets_mapping=True)
    same_batch = (list(want_batch["input_ids"]) == got_batch["input_ids"]
                  and [[tuple(o) for o in row] for row in want_batch["offset_mapping"]] == got_batch["offset_mapping"]
                  and all(want_batch.word_ids(i) == got_batch.word_ids(i) for i in range(len(texts))))
    single = texts[1]
    same_single = (tokenizer(single, add_special_tokens=False, verbose=False)["input_ids"]
                   == light.chunking(single, add_special_tokens=False)["input_ids"])
    return same_batch and same_single
