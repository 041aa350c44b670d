"""Would another score normalisation make hybrid search better? Chosen on SciFact *train*, reported on *test*.

    python benchmarks/fusion_normalisation.py ../shared/datasets/scifact --index INDEX_OF_SCIFACT

The engine fuses its two sides by a convex combination of min-max normalised scores (``retriever.search.fusion``,
Bruch, Gai and Ingber, TOIS 2023). The same paper finds normalising by a *theoretical* minimum (0 for BM25 and for
cosine clipped at 0: "TM2C2") more robust than each list's own minimum, and z-scores are the other common choice;
a document one side did not return can count as 0 or as that side's lowest score. This runs the engine's own
candidate lists (100 documents a side, as hybrid search fetches them) for every judged train and test query once,
fuses them each way for alpha 0.3-0.7 outside the engine, and scores nDCG@10 (pytrec_eval via
``retriever.eval.metrics``). Issue 20 asked whether anything cheap beats the untuned engine; the winner on train
is reported on test beside the current default.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from retriever.eval.beir import load_beir, read_qrels
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate, judged_queries
from retriever.retriever import Retriever
from retriever.search.fusion import min_max
from retriever.search.ranking import HYBRID_DEPTH, dense_candidates, lexical_candidates

ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7)
CURRENT = "minmax:zero:0.5"


def normalised(ranking: list[tuple[str, float]], how: str) -> dict[str, float]:
    """One side's scores normalised: ``minmax`` (the engine's), ``tm2c2`` (0 as the minimum), ``z`` (z-scores)."""
    if not ranking:
        return {}
    if how == "minmax":
        return min_max(ranking)
    values = np.array([score for _, score in ranking], dtype=np.float64)
    if how == "tm2c2":
        values = np.maximum(values, 0.0) / (values.max() if values.max() > 0 else 1.0)
    else:
        values = (values - values.mean()) / (values.std() or 1.0)
    return dict(zip((item for item, _ in ranking), values.tolist()))


def fused(dense: list[tuple[str, float]], lexical: list[tuple[str, float]], how: str, absent: str,
          alpha: float) -> dict[str, float]:
    d, lx = normalised(dense, how), normalised(lexical, how)
    d_absent = min(d.values(), default=0.0) if absent == "lowest" else 0.0
    l_absent = min(lx.values(), default=0.0) if absent == "lowest" else 0.0
    return {item: alpha * d.get(item, d_absent) + (1 - alpha) * lx.get(item, l_absent) for item in {*d, *lx}}


def side_runs(retriever: Retriever, texts: list[str]) -> tuple[list, list]:
    """Each query's 100 best documents (id, score) on the dense and on the lexical side, as hybrid search sees them."""
    snapshot = retriever.snapshot
    dense = dense_candidates(snapshot, retriever.encoder.encode_queries(texts), HYBRID_DEPTH, False, None)
    lexical = lexical_candidates(snapshot, texts, HYBRID_DEPTH, False, None)
    stored = snapshot.hydrate({c[0] for found in dense + lexical for c in found})
    as_ids = [[[(stored[c[0]].doc_id, c[2]) for c in found] for found in side] for side in (dense, lexical)]
    return as_ids[0], as_ids[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--index", type=Path, required=True, help="an engine index of the dataset's corpus")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/fusion_normalisation.json"))
    args = parser.parse_args()
    dataset = load_beir(args.dataset, "test")
    retriever = Retriever.load(args.index)
    runs = {}
    for split in ("train", "test"):
        qrels = judged_queries(read_qrels(args.dataset / "qrels" / f"{split}.tsv"))
        qids = sorted(qrels)
        runs[split] = (qrels, qids, *side_runs(retriever, [dataset.queries[q] for q in qids]))
    scores: dict[str, dict[str, float]] = {}
    for how in ("minmax", "tm2c2", "z"):
        for absent in ("zero", "lowest"):
            for alpha in ALPHAS:
                name = f"{how}:{absent}:{alpha}"
                scores[name] = {}
                for split, (qrels, qids, dense, lexical) in runs.items():
                    run = {q: fused(d, lx, how, absent, alpha) for q, d, lx in zip(qids, dense, lexical)}
                    scores[name][split] = round(evaluate(run, qrels, ("ndcg@10",)).scores["ndcg@10"], 4)
    best = max(scores, key=lambda name: scores[name]["train"])
    record = {"index": str(args.index), "queries": {s: len(r[1]) for s, r in runs.items()}, "current": CURRENT,
              "best_on_train": best, "current_ndcg@10": scores[CURRENT], "best_on_train_ndcg@10": scores[best],
              "ndcg@10": scores, **provenance()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"current {CURRENT}: {scores[CURRENT]}; best on train {best}: {scores[best]}")


if __name__ == "__main__":
    main()
