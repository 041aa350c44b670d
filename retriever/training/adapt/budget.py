"""Sizing a run to a time budget: how many training pairs fit in the minutes left.

Speed differs by machine, model and text length by an order of magnitude, so it is measured,
not assumed: one optimiser step's forward and backward pass on a real batch (weights unchanged),
and encoding speed for the dev checks. The steps that fit are what is left of the budget after
what has been spent, the dev checks (before and after training) and the mining.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retriever.training.adapt.pairs import PseudoPair

if TYPE_CHECKING:
    from retriever.training.config import TrainConfig

DEV_CHECKS = 2  # before and after training
SAVE_SECONDS = 15.0  # saving the model and the card, choosing the fusion weight
# A real step also updates the weights and collates its batch: on SciFact the probe said 33s, the steps took 44s.
STEP_SAFETY = 1.35


@dataclass
class Speed:
    step_seconds: float  # one optimiser step of batch_size pairs
    text_seconds: float  # encoding one document without gradients


def measure_speed(config: TrainConfig, sample: list[PseudoPair]) -> Speed:
    """Time one training step (forward and backward, no update) and plain encoding on ``sample``."""
    import torch

    from retriever.training.batching import collate
    from retriever.training.examples import column_tasks
    from retriever.training.losses import make_loss
    from retriever.training.model import build_model, is_half_twin

    model = build_model(config.model, config.architecture, config.metric_head, config.normalize,
                        config.max_seq_length)
    batch = sample[: config.batch_size]
    rows = {"query": [p.query for p in batch], "positive": [p.positive for p in batch]}
    for j in range(config.negatives_per_query if config.negatives != "none" else 0):
        rows[f"negative_{j + 1}"] = [batch[(i + j + 1) % len(batch)].positive for i in range(len(batch))]
    model.train()
    started = time.perf_counter()
    features, labels = collate(model, rows, column_tasks(list(rows)), is_half_twin(model))
    make_loss(config, model)(features, labels).backward()
    step = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    started = time.perf_counter()
    with torch.no_grad():
        model.encode_document(rows["positive"], batch_size=config.batch_size)
    per_text = (time.perf_counter() - started) / len(batch)
    return Speed(step, per_text)


def steps_within(seconds_left: float, speed: Speed, dev_texts: int, mining_texts: int) -> int:
    """Optimiser steps that fit in ``seconds_left`` after the dev checks, the mining and saving."""
    reserve = DEV_CHECKS * dev_texts * speed.text_seconds + mining_texts * speed.text_seconds + SAVE_SECONDS
    return max(0, int((seconds_left - reserve) / (speed.step_seconds * STEP_SAFETY)))
