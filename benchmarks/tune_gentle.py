"""Does a gentler fine-tune survive tune's cross-validation? Today's setting against a low learning rate and L2-SP.

A person judges the base index's top 10 for the first N SciFact *train* queries (``judgments_curve.py``'s
simulation, seed 0); the judged data, the hybrid setting and the folds are tune's own (``retriever.training.
tune.run``), and each setting is scored by tune's ``cross_validated_scores``: held-out condensed hybrid
nDCG@10 of the base model and of WiSE mixes 0.5 and 1.0 of a model trained without the query's fold. Per
setting and mix: the mean, the paired difference to base and its standard error (tune keeps a model only when
the difference is above 2 standard errors, and above ``DEFAULT_MIN_GAIN``).

tune repeats epochs up to ``MIN_STEPS`` optimiser steps, so at N=100 (58 training queries per fold, under 6
batches an epoch) "1 epoch" trains 2 epochs, the same steps as today's setting: the lr 2e-5 setting differs from
it by its learning rate only.

L2-SP's strength (``--l2sp auto``) comes from one probe training of today's setting on fold 1's training
queries: the strength at which the penalty ``l2sp * sum((theta - theta0)^2)`` would equal the loss at the
end of that training (the mean of its last steps).

    python benchmarks/tune_gentle.py ../shared/datasets/scifact [--base-index DIR/base] [--size 100]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.judgments_curve import build_base, judge
from retriever.encoding.encoder import recorded_model_location
from retriever.eval.beir import load_beir, read_qrels
from retriever.eval.machine import provenance
from retriever.retriever import Retriever
from retriever.training.tune import fusion as fusions
from retriever.training.tune.cv import CONFIDENCE_Z, DEFAULT_MIN_GAIN, choose, make_folds
from retriever.training.tune.finetune import (
    DEFAULT_MIXES,
    MIN_STEPS,
    FineTuneSetting,
    JudgedData,
    cross_validated_scores,
    mix_name,
    train_twin,
)
from retriever.training.tune.judgments import beir_judgments
from retriever.training.tune.run import FINE_TUNE_FOLDS, _choose_fusion, _judged, judged_data

LAST_STEPS = 3  # the probe's loss at the end of training: the mean of its last steps


def paired(scores: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    """Mean, paired difference to ``base`` and its standard error over the queries of ``scores``."""
    qids = sorted(base)
    gains = [scores[q] - base[q] for q in qids]
    gain = sum(gains) / len(gains)
    spread = math.sqrt(sum((g - gain) ** 2 for g in gains) / (len(gains) - 1))
    stderr = spread / math.sqrt(len(gains))
    return {"mean": round(sum(scores[q] for q in qids) / len(qids), 4), "gain": round(gain, 4),
            "stderr": round(stderr, 4), "beats_base": gain >= DEFAULT_MIN_GAIN and gain > CONFIDENCE_Z * stderr}


def probe_l2sp(base: str, data: JudgedData, folds: list[list[str]], seed: int) -> dict[str, Any]:
    """Train today's setting once; the strength at which the L2-SP penalty would equal the final loss."""
    from retriever.encoding.encoder import resolve_model_path
    from retriever.training.loop import Trainer, l2sp_penalty, starting_weights
    from retriever.training.model import load_model

    states = []
    run = Trainer.run

    def recording(self: Trainer) -> Any:
        states.append(self.state)
        return run(self)

    Trainer.run = recording  # type: ignore[method-assign]
    try:
        train = [q for f in folds[1:] for q in f]
        started = time.perf_counter()
        model = train_twin(base, data, train, FineTuneSetting(), seed)
    finally:
        Trainer.run = run  # type: ignore[method-assign]
    anchor = starting_weights(load_model(str(resolve_model_path(base))))
    distance = float(l2sp_penalty(model, anchor).detach())
    losses = states[-1].losses
    final = sum(losses[-LAST_STEPS:]) / len(losses[-LAST_STEPS:])
    return {"setting": FineTuneSetting().name, "steps": len(losses), "losses": [round(x, 4) for x in losses],
            "final_loss": round(final, 4), "squared_distance": round(distance, 6),
            "l2sp": float(f"{final / distance:.2g}"), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--size", type=int, default=100, help="Judged queries (the first N of the seed-0 order).")
    parser.add_argument("--folds", type=int, default=FINE_TUNE_FOLDS, help="Folds (tune uses 3 for fine-tuning).")
    parser.add_argument("--l2sp", default="auto", help="L2-SP strength, or auto (see the module doc).")
    parser.add_argument("--settings", default="today,slow,l2sp",
                        help="Which settings: today (lr 1e-4), slow (lr 2e-5, 1 epoch), l2sp (lr 1e-4 with L2-SP).")
    parser.add_argument("--base-index", type=Path, default=None, help="A base index judgments_curve.py built.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/tune_gentle.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    unknown = set(args.settings.split(",")) - {"today", "slow", "l2sp"}
    if unknown:
        raise SystemExit(f"unknown --settings {', '.join(sorted(unknown))}; use today, slow or l2sp")
    test = load_beir(args.dataset, "test")
    train_qrels = read_qrels(args.dataset / "qrels" / "train.tsv")
    order = sorted(q for q in train_qrels if q in test.queries)
    random.Random(0).shuffle(order)  # judgments_curve.py's order: its N judged queries are these
    work = Path(tempfile.mkdtemp(prefix="tune-gentle-"))
    index = work / "index"
    if args.base_index:
        shutil.copytree(args.base_index, index)  # tune's fusion choice reads it; the copy keeps the original as is
    else:
        build_base(test, index)
    chosen = order[:args.size]
    judged_counts = judge(index, {q: test.queries[q] for q in chosen}, train_qrels, work / "judged")
    queries, judged = _judged(beir_judgments(work / "judged"))
    report: dict[str, Any] = {**provenance(), "dataset": str(args.dataset), "judged": judged_counts,
                              "queries_with_relevant": len(judged), "settings": {}}

    def log(message: str) -> None:
        print(time.strftime("%H:%M:%S"), message, flush=True)

    with Retriever.load(index) as retriever:
        fold_sets = make_folds(sorted(judged), 5, args.seed)  # tune's hybrid-setting folds
        fusion = fusions.Fusion.parse(_choose_fusion(retriever, queries, judged, fold_sets, DEFAULT_MIN_GAIN).chosen)
        data = judged_data(retriever, queries, judged, fusion)
        base = recorded_model_location(retriever.manifest.model, retriever.layout.root)
    folds = make_folds(sorted(judged), args.folds, args.seed)
    report.update({"fusion": fusions.describe(fusion), "folds": len(folds), "mixes": list(DEFAULT_MIXES),
                   "min_steps": MIN_STEPS})
    log(f"{len(judged)} judged queries with a relevant result, {len(folds)} folds, fusion {fusion.name}")
    wanted = args.settings.split(",")
    if "l2sp" not in wanted:
        strength = 0.0
    elif args.l2sp == "auto":
        report["l2sp_probe"] = probe_l2sp(base, data, folds, args.seed)
        log(f"l2sp probe: {report['l2sp_probe']}")
        strength = report["l2sp_probe"]["l2sp"]
    else:
        strength = float(args.l2sp)
    known = {"today": FineTuneSetting(), "slow": FineTuneSetting(lr=2e-5, epochs=1),
             "l2sp": FineTuneSetting(l2sp=strength)}
    settings = [known[name] for name in wanted]
    all_scores: dict[str, dict[str, float]] = {}
    for setting in settings:
        started = time.perf_counter()
        scores = cross_validated_scores(base, data, folds, setting, DEFAULT_MIXES, fusion, args.seed, log)
        seconds = round(time.perf_counter() - started, 1)
        all_scores.update(scores)
        base_scores = all_scores["base"]
        report["base"] = paired(base_scores, base_scores)
        report["settings"][setting.name] = {
            "setting": setting.to_dict(), "seconds": seconds,
            "mixes": {f"{w:.2f}": paired(scores[mix_name(setting, w)], base_scores) for w in DEFAULT_MIXES},
        }
        log(f"{setting.name}: {report['settings'][setting.name]}")
        # what tune would conclude, choosing among every setting scored so far
        report["tune_choice"] = choose(all_scores, "base", folds, DEFAULT_MIN_GAIN).to_dict()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")  # after each setting: a cut run keeps its rows
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
