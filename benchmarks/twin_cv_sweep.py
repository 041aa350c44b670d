"""Which training defaults? Held-out cross-validation of twin InfoNCE settings on SciFact *train* queries.

Test queries are never touched: each fold holds out 10% of qrels/train.tsv (as ``retriever
train`` holds out its dev split), trains on the other 90% with the package's own examples,
batching, loss and optimiser, and scores the held-out queries against the whole corpus, split
into passages as ``retriever index`` splits it (a document scores its best passage). The
winner becomes the default and is then scored once on qrels/test.tsv by train_scifact.py.

Each fold is a full training run, so this belongs on a GPU (about 15 s per fold on an H200) or
runs for hours on a laptop CPU:

    python benchmarks/twin_cv_sweep.py --data /path/to/scifact                     # all settings, 3 folds
    python benchmarks/twin_cv_sweep.py --data /path/to/scifact --configs default,lr2e-4
    python benchmarks/twin_cv_sweep.py --data /path/to/scifact --smoke              # 2 steps, 300 docs
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retriever.encoding.encoder import DEFAULT_MODEL
from retriever.eval.beir import read_corpus
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate
from retriever.ingest.chunking import Chunker, encoding_text
from retriever.training.batching import collate, epoch_batches
from retriever.training.config import TrainConfig
from retriever.training.data import load_training_data
from retriever.training.examples import build_examples, column_tasks
from retriever.training.loop import MAX_GRAD_NORM, make_optimizer
from retriever.training.losses import make_loss
from retriever.training.model import build_model
from retriever.training.negatives import Bm25Ranker, mine_negatives

# name -> changes to BASELINE; "base" scores the untrained model
CONFIGS: dict[str, dict[str, Any]] = {
    "base": {"epochs": 0},
    "default": {},
    "lr1e-4": {"lr": 1e-4},
    "lr2e-4": {"lr": 2e-4},
    "bs16": {"batch": 16},
    "bs16-lr1e-4": {"batch": 16, "lr": 1e-4},
    "ep3": {"epochs": 3},
    "len128-ep4": {"length": 128, "epochs": 4},
    "len128-ep4-lr1e-4": {"length": 128, "epochs": 4, "lr": 1e-4},
    "neg0-ep3": {"neg": 0, "epochs": 3},
    "neg2": {"neg": 2},
    "skip10-depth50": {"skip": 10, "depth": 50},
}
# the defaults before this sweep: two epochs of InfoNCE, one BM25 negative from ranks 3..29
BASELINE = {"lr": 5e-5, "batch": 32, "epochs": 2, "neg": 1, "skip": 3, "depth": 30, "length": 256, "scale": 20.0,
            "weight_decay": 0.01, "warmup": 0.1, "seed": 42}
FOLD_FRACTION = 0.1
PASSAGE_TOKENS, PASSAGE_OVERLAP = 256, 32  # what `retriever index` uses with the default model
RUN_DEPTH = 100


def main() -> None:
    args = parse_args()
    chosen = list(CONFIGS) if args.configs == "all" else [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CONFIGS]
    if unknown:
        sys.exit(f"error: unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)} or all")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = load_training_data(args.data, dev_fraction=0.0)
    passages = corpus_passages(args.data, args.model, args.smoke)
    folds = make_folds(sorted(data.train), args.folds)
    if args.smoke:
        folds = [folds[0][:10]]
        keep = {d for d, _ in passages[:300]} | {d for q in folds[0] for d in data.train[q]}
        passages = [(d, t) for d, t in passages if d in keep]
    depth = max(CONFIGS[c].get("depth", BASELINE["depth"]) for c in chosen)
    qids = sorted(data.train)
    bm25 = dict(zip(qids, Bm25Ranker(data.corpus).rank([data.queries[q] for q in qids], depth)))
    results = []
    for name in chosen:
        started = time.perf_counter()
        settings = {**BASELINE, **CONFIGS[name]}
        scores = [run_fold(settings, data, bm25, passages, held, args.model, device, args.smoke) for held in folds]
        record = {"name": name, "changes": CONFIGS[name], "cv_ndcg@10": float(np.mean(scores)),
                  "folds": scores, "seconds": time.perf_counter() - started}
        print(json.dumps(record), flush=True)
        results.append(record)
    report = {
        **provenance(),
        "baseline": BASELINE, "folds": len(folds), "held_out_per_fold": len(folds[0]), "device": device,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "gpu": torch.cuda.get_device_name() if device == "cuda" else None},
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.output}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR SciFact folder (qrels/train.tsv).")
    parser.add_argument("--configs", default="all", help=f"Comma-separated: {', '.join(CONFIGS)}, or all.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Base model (default: %(default)s).")
    parser.add_argument("--folds", type=int, default=3, help="Held-out folds of 10%% each (default: 3).")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when there is one).")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/twin_cv_sweep.json"))
    parser.add_argument("--smoke", action="store_true", help="Two steps on a 300-document sub-corpus.")
    return parser.parse_args()


def corpus_passages(root: Path, model: str, smoke: bool) -> list[tuple[str, str]]:
    """(document id, encoded text) of every passage, cut as ``retriever index`` cuts them."""
    encoder = build_model(model, "twin", "none", True, PASSAGE_TOKENS)
    chunker = Chunker(encoder.tokenizer, PASSAGE_TOKENS, PASSAGE_OVERLAP)
    docs = list(read_corpus(Path(root) / "corpus.jsonl").values())
    return [(p.doc_id, encoding_text(p.title, p.text)) for ps in chunker.split_many(docs) for p in ps]


def make_folds(qids: list[str], count: int) -> list[list[str]]:
    order = list(qids)
    random.Random(0).shuffle(order)
    share = round(1 / FOLD_FRACTION)
    return [order[i * len(order) // share:(i + 1) * len(order) // share] for i in range(count)]


class StoredRanking:
    """A ranker that answers from BM25 rankings computed once for all queries."""

    def __init__(self, rankings: dict[str, list[str]], qids: list[str]) -> None:
        self.rankings, self.qids = rankings, qids

    def rank(self, texts: list[str], depth: int) -> list[list[str]]:
        return [self.rankings[q][:depth] for q in self.qids]


def run_fold(settings: dict[str, Any], data: Any, bm25: dict[str, list[str]], passages: list[tuple[str, str]],
             held: list[str], model_name: str, device: str, smoke: bool) -> float:
    """Train on the training queries outside ``held``; nDCG@10 of ``held`` over the whole corpus."""
    seed = settings["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = build_model(model_name, "twin", "none", True, settings["length"]).to(device)
    if settings["epochs"]:
        held_set = set(held)
        train = {q: docs for q, docs in data.train.items() if q not in held_set}
        needy = sorted(q for q in train if sum(1 for r in train[q].values() if r <= 0) < settings["neg"])
        rankers = [StoredRanking(bm25, needy)] if settings["neg"] else []
        negatives = mine_negatives(data.queries, train, rankers, settings["neg"], settings["skip"],
                                   settings["depth"], seed)
        examples = build_examples("infonce", data.queries, data.corpus, train, negatives, settings["neg"], seed)
        train_model(model, examples, settings, device, smoke)
    return score(model, held, data.queries, data.train, passages)


def train_model(model: Any, examples: Any, settings: dict[str, Any], device: str, smoke: bool) -> None:
    """The loop of ``retriever.training.loop.Trainer`` without dev checks or checkpoints."""
    from transformers import get_linear_schedule_with_warmup

    config = TrainConfig(data=".", output=".", scale=settings["scale"], batch_size=settings["batch"])
    loss = make_loss(config, model).to(device)
    tasks = column_tasks(examples.column_names)
    batches = [b for epoch in range(settings["epochs"])
               for b in epoch_batches(examples, settings["batch"], settings["seed"], epoch, True)]
    batches = batches[:2] if smoke else batches
    optimizer = make_optimizer(model, settings["lr"], settings["weight_decay"])
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(settings["warmup"] * len(batches)), len(batches))
    model.train()
    for indices in batches:
        features, labels = collate(model, examples[indices], tasks, False)
        features = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in f.items()} for f in features]
        loss(features, labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)


def score(model: Any, held: list[str], queries: dict[str, str], qrels: dict[str, dict[str, int]],
          passages: list[tuple[str, str]]) -> float:
    """nDCG@10 (trec_eval) of the held-out queries; a document scores its best passage."""
    model.eval()
    doc_ids = sorted({d for d, _ in passages})
    column = {d: i for i, d in enumerate(doc_ids)}
    with torch.no_grad():
        vectors = model.encode_document([t for _, t in passages], batch_size=128, convert_to_tensor=True,
                                        normalize_embeddings=True)
        asked = model.encode_query([queries[q] for q in held], batch_size=128, convert_to_tensor=True,
                                   normalize_embeddings=True)
        similarities = asked @ vectors.T
        owners = torch.tensor([column[d] for d, _ in passages], device=similarities.device)
        best = torch.full((len(held), len(doc_ids)), -2.0, device=similarities.device, dtype=similarities.dtype)
        best.scatter_reduce_(1, owners.expand(len(held), -1), similarities, reduce="amax")
        top = torch.topk(best, min(RUN_DEPTH, len(doc_ids)), dim=1)
    run = {q: {doc_ids[int(j)]: float(s) for s, j in zip(values, indices)}
           for q, values, indices in zip(held, top.values.cpu(), top.indices.cpu())}
    return evaluate(run, {q: qrels[q] for q in held}, ("ndcg@10",)).scores["ndcg@10"]


if __name__ == "__main__":
    main()
