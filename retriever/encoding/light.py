"""Query features without sentence-transformers: what a search process needs to run an ONNX or OpenVINO export.

Importing sentence-transformers (with torch, transformers, scikit-learn, scipy) takes seconds: ~8 s of CPU on a
2-core AMD EPYC, most of a first ``retriever search``. A search with an exported encoder needs only the query's
token ids, which the ``tokenizers`` library (the Rust tokenizer inside transformers' fast tokenizers) gives in
milliseconds. When a process that has the model loaded uses an export, it writes ``light.json`` into the export
folder, next to the model's ``tokenizer.json``: the truncation length, each task's prompt, the model's dimension
and architecture. It is written only after checking, on the probe texts, that these features are exactly the ids
sentence-transformers' ``preprocess`` gives for queries; a model whose input this cannot reproduce (no fast
tokenizer, another input module, a different tokenizer per task) gets no ``light.json`` and loads as before.
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
VERSION = 1
TASK = "query"  # what runs without the model: a search encodes queries; documents need the model's chunker
CHECK_TEXTS = ("What causes Type 2 diabetes?", "  RESET my Password, please!  ", "naïve café résumé — “quotes”",
               "", "a " * 600, "COVID-19 vaccine efficacy in adults over 65 (randomized trial)")


class LightTokenizer:
    """The query features the export's graphs take, from ``tokenizers`` alone."""

    def __init__(self, directory: Path, spec: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.spec = spec
        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER))
        self.tokenizer.enable_truncation(max_length=int(spec["max_length"]))
        self.tokenizer.enable_padding(pad_id=int(spec["pad_id"]), pad_token=str(spec["pad_token"]),
                                      pad_type_id=int(spec["pad_type_id"]))

    @property
    def prompt(self) -> str | None:
        return self.spec["prompt"]

    def features(self, texts: list[str]) -> dict[str, np.ndarray]:
        prompt = self.prompt or ""
        encoded = self.tokenizer.encode_batch([prompt + text for text in texts])
        return {"input_ids": np.asarray([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.asarray([e.type_ids for e in encoded], dtype=np.int64)}


def read_light(directory: Path | None) -> LightTokenizer | None:
    """The export's light query path, or None if it has none (or one another version wrote)."""
    if directory is None or not (directory / LIGHT).is_file() or not (directory / TOKENIZER).is_file():
        return None
    try:
        spec = json.loads((directory / LIGHT).read_text())
        if spec.get("version") != VERSION:
            return None
        return LightTokenizer(directory, spec)
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return None


def write_light(model: SentenceTransformer, directory: Path, prompt: str | None, architecture: str) -> bool:
    """Write ``light.json`` (and the tokenizer) into the complete export ``directory`` if, on ``CHECK_TEXTS``, its
    features are exactly sentence-transformers' for queries. True if written."""
    tokenizer = getattr(model, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or tokenizer.pad_token is None:
        return False
    spec = {"version": VERSION, "max_length": int(model.max_seq_length), "prompt": prompt,
            "pad_id": int(tokenizer.pad_token_id), "pad_token": str(tokenizer.pad_token),
            "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
            "dimension": int(model.get_embedding_dimension()), "max_seq_length": int(model.max_seq_length),
            "architecture": architecture}
    with tempfile.TemporaryDirectory(dir=directory) as staging:
        (Path(staging) / TOKENIZER).write_text(backend.to_str())
        try:
            light = LightTokenizer(Path(staging), spec)
        except Exception:  # noqa: BLE001 - a tokenizer ``tokenizers`` cannot load has no light path
            return False
        texts = list(CHECK_TEXTS)
        want = model.preprocess(texts, prompt=prompt, task=TASK)
        got = light.features(texts)
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in want and not np.array_equal(np.asarray(want[name]), got[name]):
                return False
        if "input_ids" not in want:
            return False
        os.replace(Path(staging) / TOKENIZER, directory / TOKENIZER)
        (Path(staging) / LIGHT).write_text(json.dumps(spec, indent=1))
        os.replace(Path(staging) / LIGHT, directory / LIGHT)  # written last: a light.json has its tokenizer
    return True
