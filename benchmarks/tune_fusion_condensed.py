"""Should tune's hybrid-setting CV score condensed lists (unjudged documents dropped) or count them as irrelevant?

For each N, a person judges the base index's top 10 for the first N SciFact train queries (as
``judgments_curve.py`` does); the fusion CV is run both ways, and SciFact *test* hybrid nDCG@10 is scored at
the current setting and at the best setting each way would apply. The base index is the one
``judgments_curve.py --workdir DIR`` built (DIR/base).

    python benchmarks/tune_fusion_condensed.py ../shared/datasets/scifact DIR [--sizes 30,100]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.judgments_curve import judge
from retriever.eval.beir import load_beir, read_qrels
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate
from retriever.retriever import Retriever
from retriever.training.tune import fusion as fusions
from retriever.training.tune.cv import choose, make_folds
from retriever.training.tune.judgments import beir_judgments
from retriever.training.tune.metrics import ndcg_per_query
from retriever.training.tune.run import _judged


def test_hybrid(retriever: Retriever, dataset: Any, name: str) -> float:
    setting = fusions.Fusion.parse(name)
    qids = [q for q in sorted(dataset.qrels) if q in dataset.queries]
    hits = retriever.search_many([dataset.queries[q] for q in qids], k=100, mode="hybrid",
                                 fusion=setting.method, alpha=setting.alpha)
    run = {q: {h.doc_id: h.score for h in row} for q, row in zip(qids, hits)}
    return round(evaluate(run, dataset.qrels, ("ndcg@10",)).scores["ndcg@10"], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--sizes", default="30,100")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/tune_fusion_condensed.json"))
    args = parser.parse_args()
    test = load_beir(args.dataset, "test")
    train_qrels = read_qrels(args.dataset / "qrels" / "train.tsv")
    order = sorted(q for q in train_qrels if q in test.queries)
    random.Random(0).shuffle(order)
    base = args.workdir / "base"
    report: dict[str, Any] = {**provenance(), "dataset": str(args.dataset), "runs": []}
    test_scores: dict[str, float] = {}
    with Retriever.load(base) as retriever, tempfile.TemporaryDirectory() as work:
        current = fusions.current_fusion(retriever)
        for size in [int(s) for s in args.sizes.split(",")]:
            folder = Path(work) / f"judged-{size}"
            judge(base, {q: test.queries[q] for q in order[:size]}, train_qrels, folder)
            queries, judged = _judged(beir_judgments(folder))
            qids = sorted(judged)
            folds = make_folds(qids, 5, 0)
            dense, lexical = fusions.side_runs(retriever, [queries[q] for q in qids])
            settings = fusions.candidate_fusions(current)
            for condensed in (False, True):
                scores = {s.name: ndcg_per_query({q: s.fuse(d, lx) for q, d, lx in zip(qids, dense, lexical)},
                                                 judged, condensed) for s in settings}
                choice = choose(scores, current.name, folds)
                for name in (current.name, choice.best):
                    test_scores.setdefault(name, test_hybrid(retriever, test, name))
                row = {"judged": size, "scoring": "condensed" if condensed else "unjudged irrelevant",
                       "best": choice.best, "kept": choice.kept, "gain": round(choice.gain, 4),
                       "stderr": round(choice.stderr, 4), "test_hybrid_current": test_scores[current.name],
                       "test_hybrid_best": test_scores[choice.best]}
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
