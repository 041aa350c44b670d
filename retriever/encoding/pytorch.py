"""The PyTorch backend: the sentence-transformers model itself, on the chosen device."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class TorchRuntime:
    """Runs the model's forward pass directly on tokenized batches (no per-call ``encode`` set-up)."""

    def __init__(self, model: SentenceTransformer, device: str) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def embed(self, features: dict[str, Any], task: str) -> np.ndarray:
        torch = self._torch
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        with torch.inference_mode():
            vectors = self.model(batch, task=task)["sentence_embedding"]
        return vectors.float().cpu().numpy()
