"""A learned nonlinear metric over the twin's two output vectors, used to rerank candidates.

The head scores a (query, document) pair from their embeddings u and v with features
``[u, v, |u - v|, u * v]`` (Conneau et al. 2017, InferSent; Reimers and Gurevych 2019,
Sentence-BERT) through a small MLP, added to the cosine so that an untrained head ranks as
the dense search does::

    s(u, v) = u . v + w2 . relu(W1 [u; v; |u - v|; u * v] + b1) + b2      (w2, b2 start at 0)

It is trained with the encoder frozen, on query embeddings and the embeddings of each query's
positives and hard negatives (dense top ranks that are not judged relevant), by a softmax
cross-entropy over one positive and its negatives (a listwise InfoNCE). Stored as safetensors
plus a JSON config in ``<model dir>/rerank_head/``, so it travels with the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from retriever.search.head_files import CONFIG, HEAD_DIR, WEIGHTS, has_head


class RerankHead(nn.Module):
    def __init__(self, dimension: int, hidden: int = 256) -> None:
        super().__init__()
        self.dimension, self.hidden = dimension, hidden
        self.mlp = nn.Sequential(nn.Linear(4 * dimension, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Scores of pairs: u and v are (..., dimension), broadcast against each other."""
        u, v = torch.broadcast_tensors(u, v)
        features = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        return (u * v).sum(-1) + self.mlp(features).squeeze(-1)

    def score(self, query: np.ndarray, documents: np.ndarray) -> np.ndarray:
        """Scores of one query vector against several document vectors."""
        with torch.no_grad():
            u = torch.from_numpy(np.asarray(query, dtype=np.float32))[None, :]
            v = torch.from_numpy(np.asarray(documents, dtype=np.float32))
            return self(u, v).numpy()

    def save(self, model_dir: Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(model_dir) / HEAD_DIR
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS))
        (directory / CONFIG).write_text(json.dumps({"dimension": self.dimension, "hidden": self.hidden}))
        return directory

    @classmethod
    def load(cls, model_dir: Path) -> RerankHead | None:
        """The head stored with a model, or None if it has none."""
        from safetensors.torch import load_file

        directory = Path(model_dir) / HEAD_DIR
        if not has_head(model_dir):
            return None
        config = json.loads((directory / CONFIG).read_text())
        head = cls(config["dimension"], config["hidden"])
        head.load_state_dict(load_file(str(directory / WEIGHTS)))
        head.eval()
        return head


@dataclass
class HeadExamples:
    """For each training query: its vector, one positive and ``n`` hard negatives (indices)."""

    queries: np.ndarray  # (q, d)
    documents: np.ndarray  # (n_docs, d)
    positive: np.ndarray  # (q,) index into documents
    negatives: np.ndarray  # (q, n) indices into documents


def train_head(
    examples: HeadExamples, epochs: int = 20, lr: float = 1e-3, weight_decay: float = 0.01, batch_size: int = 64,
    seed: int = 42, hidden: int = 256,
) -> tuple[RerankHead, list[float]]:
    """Fit the head by listwise softmax cross-entropy; returns it and the mean loss per epoch."""
    torch.manual_seed(seed)
    head = RerankHead(examples.queries.shape[1], hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    queries = torch.from_numpy(examples.queries.astype(np.float32))
    documents = torch.from_numpy(examples.documents.astype(np.float32))
    candidates = torch.from_numpy(np.concatenate([examples.positive[:, None], examples.negatives], axis=1))
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(queries), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            scores = head(queries[rows][:, None, :], documents[candidates[rows]])
            loss = nn.functional.cross_entropy(scores * 20.0, torch.zeros(len(rows), dtype=torch.long))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(order))
    head.eval()
    return head, losses
