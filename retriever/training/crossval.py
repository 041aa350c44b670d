"""Keep-or-discard by k-fold cross-validation, for ``retriever train`` on few training queries.

A 10% dev split of a hundred queries is ten queries: noise (see ``CV_BELOW_QUERIES``). Instead the run's own
procedure (same config: loss, negatives, epochs) is trained once per fold on the other folds, and the held-out
fold is scored with the trained and with the starting model, on that fold's dev sub-corpus
(``retriever.training.dev``, nDCG@10 by ``retriever.eval.metrics``). ``retriever tune``'s rule then decides
(``retriever.training.tune.cv.choose``): keep only when the paired held-out gain is clear.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retriever.eval.metrics import judged_queries, per_query
from retriever.training.config import CV_BELOW_QUERIES, TrainConfig
from retriever.training.dev import DEV_METRIC, DevSet, build_dev_set, dev_run
from retriever.training.tune.cv import DEFAULT_FOLDS, DEFAULT_MIN_GAIN, MIN_QUERIES, choose, make_folds

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retriever.training.data import TrainingData

START, TRAINED = "start", "trained"


def uses_cv(config: TrainConfig, data: TrainingData) -> bool:
    """CV when no dev set or dev fraction was given and there are fewer than ``CV_BELOW_QUERIES`` queries."""
    return config.dev_fraction is None and not data.dev and len(judged_queries(data.train)) < CV_BELOW_QUERIES


def cross_validate(config: TrainConfig, data: TrainingData, log: Callable[[str], None],
                   seed_everything: Callable[[int], None], folds: int = DEFAULT_FOLDS) -> dict[str, Any]:
    """Train without each fold, score it with the trained and the starting model; the rule's verdict as a dict."""
    from retriever.encoding.devices import resolve_device
    from retriever.training.model import build_model
    from retriever.training.prepare import LazyBm25

    started = time.perf_counter()
    judged = judged_queries(data.train)
    split = make_folds(sorted(judged), folds, config.seed)
    log(f"{len(judged)} training queries (fewer than {CV_BELOW_QUERIES}) and no dev set given: {len(split)}-fold "
        "cross-validation decides whether the trained model is kept")
    bm25 = LazyBm25(data.corpus)
    needs_bm25 = len(data.corpus) > config.dev_max_docs
    devs = [build_dev_set(data.queries, data.corpus, {q: judged[q] for q in fold}, bm25 if needs_bm25 else None,
                          config.dev_max_docs, config.negatives_depth, config.seed) for fold in split]
    start = build_model(config.model, config.architecture, config.metric_head, config.normalize,
                        config.max_seq_length).to(resolve_device(config.device, "torch"))
    scores: dict[str, dict[str, float]] = {START: {}}
    for dev in devs:
        scores[START].update(_held_out(start, dev, config.batch_size))
    fold_means: list[dict[str, float]] = []
    if len(judged) >= MIN_QUERIES and len(split) >= 2:
        scores[TRAINED] = {}
        for index, (fold, dev) in enumerate(zip(split, devs)):
            seed_everything(config.seed)
            model = _train_without(config, data, set(fold), log)
            scores[TRAINED].update(_held_out(model, dev, config.batch_size))
            fold_means.append({name: sum(scores[name][q] for q in fold) / len(fold) for name in scores})
            log(f"fold {index + 1}/{len(split)}: held-out {DEV_METRIC} starting model "
                f"{fold_means[-1][START]:.4f}, trained {fold_means[-1][TRAINED]:.4f}")
    choice = choose(scores, START, split, max(config.keep_margin, DEFAULT_MIN_GAIN))
    return {**choice.to_dict(), "kept": choice.chosen == TRAINED, "fold_sizes": [len(f) for f in split],
            "fold_means": [{k: round(v, 4) for k, v in m.items()} for m in fold_means],
            "seconds": round(time.perf_counter() - started, 1)}


def summary(cv: dict[str, Any]) -> str:
    """The one line the CLI prints: what was kept and why."""
    kept = "the fine-tuned model" if cv["kept"] else "the starting model"
    return f"kept {kept}: {cv['reason']}"


def _held_out(model: SentenceTransformer, dev: DevSet | None, batch_size: int) -> dict[str, float]:
    """nDCG@10 of each query of a fold's dev set."""
    if dev is None:
        return {}
    return per_query(dev_run(model, dev, batch_size), dev.qrels, DEV_METRIC)


def _train_without(config: TrainConfig, data: TrainingData, held_out: set[str],
                   log: Callable[[str], None]) -> SentenceTransformer:
    """The run's procedure (``prepare.prepare`` and the loop) on every training query but ``held_out``."""
    from retriever.training.loop import Trainer, TrainingInterrupted
    from retriever.training.losses import make_loss
    from retriever.training.prepare import prepare

    fold_data = replace(data, train={q: d for q, d in data.train.items() if q not in held_out}, dev={})
    with tempfile.TemporaryDirectory(prefix="retriever-cv-") as work:
        fold_config = replace(config, output=Path(work), resume=False, overwrite=False)
        model, dataset, _, prepared = prepare(fold_config, log, fold_data)
        try:
            Trainer(model, make_loss(fold_config, model), dataset, None, fold_config, prepared,
                    Path(work) / "checkpoint", log=log).run()
        except TrainingInterrupted as stop:  # a fold's checkpoint is temporary: nothing --resume could continue
            raise KeyboardInterrupt("interrupted during cross-validation") from stop
    model.eval()
    return model
