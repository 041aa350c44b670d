"""Choose the hybrid search defaults on the *training* queries, then report them on test.

Builds one engine index of the corpus (embeddings come from the cache that `retriever bench`
fills), then scores dense, lexical, RRF and convex fusion with alpha from 0.1 to 0.9 on the
train split and on the test split. The defaults in `retriever/search.py` are the train winner.

    python benchmarks/hybrid_sweep.py ../shared/datasets/scifact [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from retriever.encoding.cache import DEFAULT_CACHE_DIR, CachedEncoder, EmbeddingCache
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.eval.beir import load_beir, read_qrels
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate, judged_queries
from retriever.retriever import Retriever

SETTINGS = [{"mode": "dense"}, {"mode": "lexical"}, {"mode": "hybrid", "fusion": "rrf"}] + [
    {"mode": "hybrid", "fusion": "convex", "alpha": a / 10} for a in range(1, 10)
]


def label(setting: dict) -> str:
    if setting["mode"] != "hybrid":
        return setting["mode"]
    return "hybrid-rrf" if setting["fusion"] == "rrf" else f"hybrid-convex-{setting['alpha']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/hybrid_sweep.json"))
    args = parser.parse_args()
    dataset = load_beir(args.dataset, "test")
    encoder = CachedEncoder.wrap(Encoder(args.model), EmbeddingCache(args.cache))
    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    retriever = Retriever.build(records, index_dir=Path(tempfile.mkdtemp()) / "index", encoder=encoder, progress=True)
    results: dict[str, dict[str, float]] = {}
    for split in ("train", "test"):
        qrels = judged_queries(read_qrels(args.dataset / "qrels" / f"{split}.tsv"))
        qids = [q for q in qrels if q in dataset.queries]
        texts = [dataset.queries[q] for q in qids]
        for setting in SETTINGS:
            hits = retriever.search_many(texts, k=100, **setting)
            run = {q: {h.doc_id: h.score for h in row} for q, row in zip(qids, hits)}
            results.setdefault(label(setting), {})[split] = evaluate(run, qrels).scores["ndcg@10"]
            print(f"{split:5} {label(setting):22} nDCG@10 {results[label(setting)][split]:.4f}", flush=True)
    best = max(results, key=lambda name: results[name]["train"])
    print(f"best on train: {best} (train {results[best]['train']:.4f}, test {results[best]['test']:.4f})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {**provenance(), "model": args.model, "ndcg@10": results, "best_on_train": best}
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
