"""Fine-tuning retrieval encoders: ``retriever train`` and ``from retriever.training import train``.

    from retriever.training import TrainConfig, train
    result = train(TrainConfig(data="datasets/scifact", output="models/scifact-minilm"))
    print(result.output, result.dev_before, result.dev_after, result.seconds)

Modules, one job each: ``config`` (options and CPU defaults), ``data`` (BEIR or JSONL in),
``negatives`` (BM25/dense hard-negative mining), ``examples`` (rows per loss), ``model`` (twin,
half-twin, metric head), ``losses``, ``batching``, ``dev`` (held-out nDCG@10), ``loop`` (the
optimiser loop, Ctrl-C), ``checkpoint``, ``card`` (model card) and ``pipeline`` (``train``).
"""

from __future__ import annotations

from retriever.training.config import TrainConfig
from retriever.training.loop import TrainingInterrupted
from retriever.training.pipeline import TrainResult, train

__all__ = ["train", "TrainConfig", "TrainResult", "TrainingInterrupted"]
