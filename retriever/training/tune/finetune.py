"""Fine-tuning the twin on judged queries, with ``retriever train``'s loop, and scoring it out of fold.

Hard negatives are the judged-irrelevant results (grade 0) first, then BM25 hits from the index's own
lexical search. A model is scored on the queries of the fold it was not trained on by re-ranking each
query's candidates (the current engine's top documents and every judged one): its dense scores over those
candidates are fused with the index's BM25 ranking by the current hybrid setting, so the figure is the
hybrid nDCG@10 a search would see, at the cost of encoding a few dozen documents per query. The judgments
cover only the current engine's top 10, so each fused ranking is scored as a condensed list (unjudged
documents dropped, Sakai 2007): counted as irrelevant, every unjudged document a tuned model surfaces
would lower its score and never the base model's, whose top 10 is fully judged.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever.training.config import TrainConfig
from retriever.training.tune.cv import Scores
from retriever.training.tune.fusion import Fusion, Ranked
from retriever.training.tune.metrics import ndcg_per_query
from retriever.training.tune.wise import interpolate, snapshot_weights

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Qrels = dict[str, dict[str, int]]
DEFAULT_MIXES = (0.5, 1.0)  # WiSE-FT weights tried (0.0, the base model, is always the reference)
RERANK_DEPTH = 15  # candidates per held-out query: the engine's top 15 plus every judged document
MIN_TRAIN_QUERIES = 8  # fewer judged queries with a relevant result: too few to fine-tune
MIN_STEPS = 6  # a few judged queries fill one batch: repeat epochs up to this many steps (warm-up takes one)


@dataclass(frozen=True)
class FineTuneSetting:
    """One way to fine-tune: a low learning rate and few steps (small data moves a model too far)."""

    lr: float = 1e-4
    epochs: int = 2
    batch_size: int = 16
    negatives: int = 1
    max_seq_length: int = 256
    l2sp: float = 0.0  # > 0: pull toward the base weights (TrainConfig.l2sp)

    @property
    def name(self) -> str:
        return f"lr{self.lr:g}-ep{self.epochs}-bs{self.batch_size}" + (f"-l2sp{self.l2sp:g}" if self.l2sp else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mix_name(setting: FineTuneSetting, weight: float) -> str:
    return "base" if weight == 0 else f"{setting.name}-wise{weight:.2f}"


@dataclass
class JudgedData:
    """What fine-tuning and its evaluation read: judged queries, their documents and rankings."""

    queries: dict[str, str]  # query id -> text
    qrels: Qrels  # query id -> doc id -> grade (only queries with a relevant document)
    texts: dict[str, str]  # doc id -> what the encoder sees (title + text), for every document named below
    lexical: dict[str, Ranked]  # query id -> the index's BM25 ranking (doc id, score)
    candidates: dict[str, list[str]]  # query id -> documents re-ranked when the query is held out


class _RankingOf:
    """A ``Ranker`` (retriever.training.negatives) answering from precomputed BM25 rankings."""

    def __init__(self, queries: dict[str, str], lexical: dict[str, Ranked]) -> None:
        self.by_text = {queries[q]: [d for d, _ in ranked] for q, ranked in lexical.items()}

    def rank(self, texts: Sequence[str], depth: int) -> list[list[str]]:
        return [self.by_text.get(t, [])[:depth] for t in texts]

    def rank_scored(self, texts: Sequence[str], depth: int) -> list[list[tuple[str, float]]]:
        return [[(d, 0.0) for d in ranking] for ranking in self.rank(texts, depth)]


def train_twin(base: str, data: JudgedData, qids: Sequence[str], setting: FineTuneSetting, seed: int,
               log: Callable[[str], None] = lambda message: None) -> SentenceTransformer:
    """The base model fine-tuned on the judged queries ``qids`` (InfoNCE, in-batch + hard negatives)."""
    import torch

    from retriever.training.examples import build_examples
    from retriever.training.loop import Trainer
    from retriever.training.losses import make_loss
    from retriever.training.model import build_model
    from retriever.training.negatives import mine_negatives

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="retriever-tune-") as work:
        config = TrainConfig(data=work, output=work, model=base, lr=setting.lr, epochs=setting.epochs,
                             batch_size=setting.batch_size, negatives_per_query=setting.negatives,
                             max_seq_length=setting.max_seq_length, l2sp=setting.l2sp, seed=seed, progress=False,
                             command="tune")
        model = build_model(config.model, config.architecture, config.metric_head, config.normalize,
                            config.max_seq_length)
        qrels = {q: data.qrels[q] for q in qids}
        negatives = mine_negatives(data.queries, qrels, [_RankingOf(data.queries, data.lexical)],
                                   config.negatives_per_query, config.negatives_skip, config.negatives_depth, seed)
        dataset = build_examples(config.loss, data.queries, data.texts, qrels, negatives,
                                 config.negatives_per_query, seed)
        per_epoch = math.ceil(len(dataset) / config.batch_size)
        config.epochs = max(config.epochs, math.ceil(MIN_STEPS / max(per_epoch, 1)))
        trainer = Trainer(model, make_loss(config, model), dataset, None, config, {"config": config.to_dict()},
                          Path(work) / "checkpoint", log=log)
        state = trainer.run()
    log(f"trained {setting.name} on {len(qids)} queries: {state.global_step} steps in {state.seconds:.0f} s")
    model.eval()
    return model


def encode(model: SentenceTransformer, texts: list[str], query: bool) -> np.ndarray:
    import torch

    with torch.no_grad():
        encode_with = model.encode_query if query else model.encode_document
        return np.asarray(encode_with(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True))


def held_out_scores(model: SentenceTransformer, data: JudgedData, qids: Sequence[str],
                    fusion: Fusion) -> dict[str, float]:
    """Hybrid nDCG@10 of each query in ``qids`` with ``model`` as the dense side, over its candidates
    (condensed: only judged documents are ranked, see the module doc)."""
    docs = list(dict.fromkeys(d for q in qids for d in data.candidates[q]))
    if not docs:
        return {q: 0.0 for q in qids}
    position = {d: i for i, d in enumerate(docs)}
    doc_vectors = encode(model, [data.texts[d] for d in docs], query=False)
    query_vectors = encode(model, [data.queries[q] for q in qids], query=True)
    fused = {}
    for q, vector in zip(qids, query_vectors):
        mine = data.candidates[q]
        sims = doc_vectors[[position[d] for d in mine]] @ vector
        dense = sorted(zip(mine, (float(s) for s in sims)), key=lambda pair: -pair[1])
        fused[q] = fusion.fuse(dense, data.lexical[q])
    return ndcg_per_query(fused, data.qrels, condensed=True)


def cross_validated_scores(base: str, data: JudgedData, folds: list[list[str]], setting: FineTuneSetting,
                           mixes: Sequence[float], fusion: Fusion, seed: int,
                           log: Callable[[str], None] = lambda message: None) -> Scores:
    """Out-of-fold hybrid nDCG@10 of the base model and of each WiSE mix of a model trained without the fold."""
    from retriever.encoding.encoder import resolve_model_path
    from retriever.training.model import load_model

    base_model = load_model(str(resolve_model_path(base)))
    base_model.max_seq_length = setting.max_seq_length
    base_model.eval()
    scores: Scores = {"base": held_out_scores(base_model, data, [q for f in folds for q in f], fusion)}
    base_weights = snapshot_weights(base_model)
    for index, fold in enumerate(folds):
        train = [q for other, f in enumerate(folds) if other != index for q in f]
        model = train_twin(base, data, train, setting, seed, log)
        tuned = snapshot_weights(model)
        for weight in mixes:
            model.load_state_dict(interpolate(base_weights, tuned, weight))
            scores.setdefault(mix_name(setting, weight), {}).update(held_out_scores(model, data, fold, fusion))
        log(f"fold {index + 1}/{len(folds)}: " + ", ".join(
            f"{name} {np.mean([scores[name][q] for q in fold]):.4f}" for name in scores))
    return scores


def final_model(base: str, data: JudgedData, setting: FineTuneSetting, weight: float, seed: int,
                log: Callable[[str], None] = lambda message: None) -> SentenceTransformer:
    """The base model fine-tuned on every judged query, mixed with the base weights at ``weight``."""
    model = train_twin(base, data, sorted(data.qrels), setting, seed, log)
    if weight < 1.0:
        from retriever.encoding.encoder import resolve_model_path
        from retriever.training.model import load_model

        base_weights = snapshot_weights(load_model(str(resolve_model_path(base))))
        model.load_state_dict(interpolate(base_weights, snapshot_weights(model), weight))
    return model
