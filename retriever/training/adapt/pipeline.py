"""``adapt(config)``: corpus -> pseudo-pairs -> time budget -> ``retriever train``'s pipeline -> rule -> fusion weight.

Everything that trains is ``retriever.training.pipeline.train``: the same examples, mining, loss,
loop, checkpoints and card. This module only makes the pairs, sizes the run to the minutes given,
and applies what is particular to label-free adaptation:

* keep or discard: the adapted model is kept only if it beats the base model on held-out
  pseudo-pairs by ``keep_margin`` nDCG@10 (``train``'s own never-silently-worse rule with a
  margin), and if its hybrid search on them is not below the base model's by more than
  ``hybrid_noise``; otherwise the base model is saved and the run says so in one line;
* the hybrid fusion weight is re-chosen for the kept model (``fusion``) and stored beside it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retriever.errors import RetrieverError
from retriever.training.adapt.budget import Speed, measure_speed, steps_within
from retriever.training.adapt.config import DEV_MAX_DOCS, AdaptConfig
from retriever.training.adapt.corpus import read_documents
from retriever.training.adapt.data import build_adapt_data, pair_pools, sample_pairs
from retriever.training.adapt.fusion import FusionChoice, choose_alpha
from retriever.training.card import write_card
from retriever.training.dev import DEV_METRIC
from retriever.training.pipeline import TrainResult, check_output, train


@dataclass
class AdaptResult:
    """What an adaptation produced and the verdict of the keep-or-discard rule."""

    output: Path
    kept_adapted: bool
    verdict: str  # one line, printed by the CLI
    dev_before: float | None
    dev_after: float | None
    alpha: float | None
    seconds: float
    train: TrainResult
    pairs: dict[str, int] = field(default_factory=dict)
    speed: dict[str, float] = field(default_factory=dict)


def adapt(config: AdaptConfig, log: Callable[[str], None] | None = None) -> AdaptResult:
    """Adapt ``config.model`` to the documents under ``config.corpus`` and save it in ``config.output``."""
    started = time.perf_counter()
    log = log or (_stderr if config.progress else (lambda message: None))
    check_output(config.output, config.overwrite)
    docs = read_documents(config.corpus)
    pools = pair_pools(docs, config.sources, config.seed)
    found = {name: len(pool) for name, pool in pools.items()}
    log(f"{len(docs)} documents; documents with pairs by source: "
        + ", ".join(f"{n} {c}" for n, c in found.items()))
    if not any(found.values()):
        raise RetrieverError(f"{config.corpus}: none of the pair sources ({', '.join(config.sources)}) finds "
                             "a pair in these documents (too short, no titles?)")
    train_config = config.train_config(max_steps=0)
    speed: Speed | None = None
    if config.pairs is not None:
        count = config.pairs
    else:
        speed = measure_speed(train_config, sample_pairs(pools, set(), config.batch_size, _rng(config.seed)))
        dev_texts = DEV_MAX_DOCS + DEV_MAX_DOCS // 4
        mining = len(docs) if config.negatives in ("dense", "both") else 0
        left = config.minutes * 60 - (time.perf_counter() - started)
        steps = steps_within(left, speed, dev_texts, mining)
        if steps < 1:
            raise RetrieverError(
                f"{config.minutes:g} minutes leave no time to train on this machine (one step of "
                f"{config.batch_size} pairs takes {speed.step_seconds:.0f}s); give more --minutes"
            )
        count = steps * config.batch_size
        log(f"one step takes {speed.step_seconds:.1f}s: {steps} steps of {config.batch_size} pairs fit in "
            f"{config.minutes:g} minutes")
    data = build_adapt_data(docs, pools, count, config.seed, config.corpus)
    result = train(train_config, log=log, data=data)
    kept = not result.kept_starting_model
    before = result.dev_before[DEV_METRIC] if result.dev_before else None
    after = result.dev_after[DEV_METRIC] if result.dev_after else None
    choice: FusionChoice | None = None
    if kept and result.dev is not None and result.dev_run_start is not None and result.dev_run_saved is not None:
        choice = choose_alpha(result.dev, result.dev_run_start, result.dev_run_saved)
        if choice.adapted_hybrid < choice.base_hybrid - config.hybrid_noise:
            kept = False
            _save_base_model(train_config)
            reason = (f"its hybrid search on held-out pseudo-pairs fell to {choice.adapted_hybrid:.4f} from the base "
                      f"model's {choice.base_hybrid:.4f} (more than the {config.hybrid_noise} allowed)")
        else:
            from retriever.search.defaults import write_search_defaults

            write_search_defaults(config.output, choice.alpha, {
                "command": "retriever adapt", "rule": "0.5 + best alpha on held-out pseudo-pairs (adapted - base)",
                "held_out_pairs": len(result.dev.queries)})
    if kept:
        verdict = (f"adapted model kept: held-out pseudo-pair nDCG@10 {before:.4f} -> {after:.4f} "
                   f"(+{after - before:.4f}, margin {config.keep_margin}); hybrid alpha {choice.alpha:.2f}"
                   if before is not None and choice is not None else "adapted model saved (no held-out check)")
    elif choice is not None:
        verdict = f"base model kept (saved unchanged): {reason}"
    else:
        verdict = "base model kept (saved unchanged): " + (result.warnings[0] if result.warnings else "no gain")
    seconds = time.perf_counter() - started
    card = dict(result.card)
    card["adaptation"] = {
        "config": config.to_dict(),
        "verdict": verdict,
        "kept_adapted_model": kept,
        "pairs_by_source": data.notes.get("train_pairs_by_source", {}),
        "documents_with_pairs_by_source": found,
        "held_out_pairs": len(data.dev),
        "speed": speed.__dict__ if speed else None,
        "fusion": choice.to_dict() if choice else None,
        "seconds_total": round(seconds, 1),
    }
    card["kept_starting_model"] = not kept
    write_card(config.output, card)
    return AdaptResult(config.output, kept, verdict, before, after, choice.alpha if choice and kept else None,
                       seconds, result, card["adaptation"]["pairs_by_source"], speed.__dict__ if speed else {})


def _save_base_model(config: Any) -> None:
    from retriever.training.model import build_model

    model = build_model(config.model, config.architecture, config.metric_head, config.normalize,
                        config.max_seq_length)
    model.save(str(config.output), create_model_card=False)


def _rng(seed: int) -> Any:
    import random

    return random.Random(f"{seed}:probe")


def _stderr(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
