"""Everything a training run needs before its first step: data, model, mined negatives, examples, dev set.

Shared by ``pipeline.train`` (one run) and ``crossval`` (one run per fold), so both train exactly alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from retriever.encoding.devices import resolve_device
from retriever.encoding.encoder import model_fingerprint, resolve_model_path
from retriever.errors import RetrieverError
from retriever.training.config import TrainConfig
from retriever.training.dev import DevSet

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from retriever.training.data import TrainingData
    from retriever.training.negatives import Bm25Ranker, Ranker


def prepare(
    config: TrainConfig, log: Callable[[str], None], data: TrainingData | None = None
) -> tuple[SentenceTransformer, Dataset, DevSet | None, dict]:
    """Read the data (unless given), build the model, mine negatives, make the examples and the dev set."""
    from retriever.training.data import load_training_data
    from retriever.training.dev import build_dev_set
    from retriever.training.examples import build_examples
    from retriever.training.model import build_model
    from retriever.training.negatives import mine_negatives

    started = time.perf_counter()
    if data is None:
        data = load_training_data(config.data, config.effective_dev_fraction(), config.seed)
    model = build_model(config.model, config.architecture, config.metric_head, config.normalize,
                        config.max_seq_length).to(resolve_device(config.device, "torch"))
    config.max_seq_length = int(model.max_seq_length)
    bm25 = LazyBm25(data.corpus)
    rankers = _rankers(config, data, model, bm25, log)
    whole = data.whole_document_qrels()  # mining searches whole documents
    negatives = mine_negatives(data.queries, whole, rankers, config.negatives_per_query,
                               config.negatives_skip, config.negatives_depth, config.seed, config.negatives_guard)
    dataset = build_examples(config.loss, data.queries, data.texts(), data.train, negatives,
                             config.negatives_per_query, config.seed, also_judged=whole)
    if len(dataset) == 0:
        raise RetrieverError(f"{config.data}: no training examples could be made for the {config.loss} loss")
    needs_bm25 = len(data.corpus) > config.dev_max_docs
    dev = build_dev_set(data.queries, data.corpus, data.dev, bm25 if needs_bm25 else None,
                        config.dev_max_docs, config.negatives_depth, config.seed)
    log(f"{len(dataset)} training examples from {len(data.train)} queries; "
        f"dev: {len(dev.queries) if dev else 0} queries over {len(dev.docs) if dev else 0} documents")
    base_path = resolve_model_path(config.model)
    prepared = {
        "config": config.to_dict(),
        "data": data.summary(),
        "base_model": {"name": config.model, "path": str(base_path), "fingerprint": model_fingerprint(base_path)},
        "examples": dataset.to_list(),
        "columns": dataset.column_names,
        "dev": dev.to_dict() if dev else None,
        "prepare_seconds": time.perf_counter() - started,
    }
    return model, dataset, dev, prepared


class LazyBm25:
    """A BM25 index over the corpus, built on first use (mining or the dev sub-corpus)."""

    def __init__(self, corpus: dict[str, str]) -> None:
        self.corpus = corpus
        self._ranker: Bm25Ranker | None = None

    def rank(self, texts: list[str], depth: int) -> list[list[str]]:
        return self.ranker.rank(texts, depth)

    def rank_scored(self, texts: list[str], depth: int) -> list[list[tuple[str, float]]]:
        return self.ranker.rank_scored(texts, depth)

    @property
    def ranker(self) -> Bm25Ranker:
        if self._ranker is None:
            from retriever.training.negatives import Bm25Ranker

            self._ranker = Bm25Ranker(self.corpus)
        return self._ranker


def _rankers(config: TrainConfig, data: TrainingData, model: SentenceTransformer, bm25: LazyBm25,
             log: Callable[[str], None]) -> list[Ranker]:
    if config.negatives_per_query == 0 or config.negatives == "none":
        return []
    rankers: list[Ranker] = []
    if config.negatives in ("bm25", "both"):
        rankers.append(bm25)
    if config.negatives in ("dense", "both"):
        from retriever.training.negatives import DenseRanker

        log(f"encoding {len(data.corpus)} documents to mine dense negatives")
        rankers.append(DenseRanker(model, data.corpus, progress=config.progress))
    return rankers
