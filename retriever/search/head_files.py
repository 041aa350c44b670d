"""Where a learned metric head is stored with its model, readable without importing torch.

A search process whose encoder runs an export imports no torch (``retriever.encoding.light``); it must learn
whether the model has a head (``retriever serve`` asks at start) without importing ``retriever.search.rerank``.
"""

from __future__ import annotations

from pathlib import Path

HEAD_DIR = "rerank_head"
WEIGHTS = "head.safetensors"
CONFIG = "config.json"


def has_head(model_dir: str | Path) -> bool:
    """Whether the model in ``model_dir`` has a learned metric head stored with it."""
    return (Path(model_dir) / HEAD_DIR / WEIGHTS).exists()
