"""Turning example rows into batches and model inputs.

InfoNCE treats every other document of a batch as a negative, so a batch must not hold the same
query or document twice (SciFact queries often have several positives): that would teach the
model that a relevant document is irrelevant. Batches are shuffled with a generator seeded by
the run's seed and the epoch, so an interrupted run resumes on exactly the same batches.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from retriever.training.examples import LABEL_COLUMN

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import Tensor


def epoch_batches(dataset: Dataset, batch_size: int, seed: int, epoch: int, distinct: bool) -> list[list[int]]:
    """Row indices of each batch of an epoch; with ``distinct``, no text twice in a batch."""
    order = list(range(len(dataset)))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    if not distinct:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    text_columns = [c for c in dataset.column_names if c != LABEL_COLUMN]
    keys = [frozenset(row[c] for c in text_columns) for row in dataset]
    batches: list[list[int]] = []
    remaining = order
    while remaining:
        deferred: list[int] = []
        batch: list[int] = []
        seen: set[str] = set()
        emitted = False
        for index in remaining:
            if keys[index] & seen:
                deferred.append(index)
                continue
            batch.append(index)
            seen |= keys[index]
            if len(batch) == batch_size:
                batches.append(batch)
                batch, seen, emitted = [], set(), True
        if batch and emitted and deferred:
            deferred = batch + deferred  # retry the partial batch with the rows it clashed with
        elif batch:
            batches.append(batch)
        remaining = deferred
    return batches


def collate(
    model: SentenceTransformer, rows: dict[str, list[Any]], tasks: dict[str, str], routed: bool
) -> tuple[list[dict[str, Any]], Tensor | None]:
    """One feature dict per text column (query first) and the labels, if any.

    A half-twin (``routed``) model tokenizes each column for its route ("query" or "document");
    the task travels in the features, and the Router sends them through that tower.
    """
    import torch

    features = []
    device = model.device  # where --device put the model (the tokenizer makes CPU tensors)
    for column, task in tasks.items():
        kwargs = {"task": task} if routed else {}
        batch = model.preprocess(rows[column], **kwargs)
        features.append({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    labels = torch.tensor(rows[LABEL_COLUMN], device=device) if LABEL_COLUMN in rows else None
    return features, labels
