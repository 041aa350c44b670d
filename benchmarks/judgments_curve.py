"""How much a few judged queries buy: simulate a person judging N SciFact *train* queries, tune, score *test*.

For each N (nested sets: the first N of SciFact's train queries shuffled with seed 0) the person sees the top 10
of the current engine (hybrid, the default backend) and grades each hit from ``qrels/train.tsv`` (unjudged = 0);
``retriever tune --index COPY --judgments FOLDER`` runs in its own process (its wall time and peak memory are
measured alone), and SciFact *test* is scored once (nDCG@10, dense and hybrid) on the tuned index. The base
index is built once (embeddings from the cache that ``retriever bench`` fills) and copied for each N.

    python benchmarks/judgments_curve.py ../shared/datasets/scifact [--sizes 10,30,100,300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from retriever.eval.beir import load_beir, read_qrels
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate
from retriever.retriever import Retriever

RUN_DEPTH = 100
JUDGED_PER_QUERY = 10


def build_base(dataset: Any, folder: Path) -> dict[str, Any]:
    from retriever.encoding.auto import make_encoder
    from retriever.encoding.cache import CachedEncoder, EmbeddingCache
    from retriever.encoding.encoder import DEFAULT_MODEL

    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    started = time.perf_counter()
    encoder = CachedEncoder.wrap(make_encoder(DEFAULT_MODEL, None), EmbeddingCache())
    retriever = Retriever.build(records, index_dir=folder, encoder=encoder)
    info = {"backend": encoder.label, "documents": len(records), "passages": retriever.manifest.counts["passages"],
            "build_seconds": round(time.perf_counter() - started, 1)}
    retriever.close()
    return info


def score_test(index: Path, dataset: Any) -> dict[str, float]:
    qids = [q for q in sorted(dataset.qrels) if q in dataset.queries]
    texts = [dataset.queries[q] for q in qids]
    out = {}
    with Retriever.load(index) as retriever:  # no option: what tune kept is what a user gets
        for mode in ("dense", "hybrid"):
            hits = retriever.search_many(texts, k=RUN_DEPTH, mode=mode)
            run = {q: {h.doc_id: h.score for h in row} for q, row in zip(qids, hits)}
            out[mode] = round(evaluate(run, dataset.qrels, ("ndcg@10",)).scores["ndcg@10"], 4)
    return out


def judge(index: Path, queries: dict[str, str], qrels: dict[str, dict[str, int]], folder: Path) -> dict[str, int]:
    """A person's judgments of the engine's top 10 for each query, written as a BEIR folder; counts."""
    qids = sorted(queries)
    with Retriever.load(index) as retriever:
        hits = retriever.search_many([queries[q] for q in qids], k=JUDGED_PER_QUERY)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "qrels").mkdir(parents=True)
    with (folder / "queries.jsonl").open("w") as handle:
        for q in qids:
            handle.write(json.dumps({"_id": q, "text": queries[q]}) + "\n")
    relevant = 0
    with (folder / "qrels" / "judged.tsv").open("w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for q, row in zip(qids, hits):
            for hit in row:
                grade = qrels.get(q, {}).get(hit.doc_id, 0)
                relevant += grade > 0
                handle.write(f"{q}\t{hit.doc_id}\t{grade}\n")
    return {"queries": len(qids), "judgments": len(qids) * JUDGED_PER_QUERY, "relevant": relevant}


def run_tune(index: Path, judgments: Path, log: Path, fine_tune: bool = True) -> dict[str, Any]:
    """``retriever tune`` in its own process: wall seconds and that process's peak resident memory."""
    command = [sys.executable, "-c", "from retriever.cli import main; main()", "tune", "--index", str(index),
               "--judgments", str(judgments)] + ([] if fine_tune else ["--no-fine-tune"])
    load_before = os.getloadavg()
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=handle, text=True)
        out = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0 or not out.strip():
        raise SystemExit(f"tune failed ({process.returncode}); see {log}")
    return {"summary": out.strip(), "seconds": round(seconds, 1), "peak_memory_mb": round(usage.ru_maxrss / 1024, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--sizes", default="10,30,100,300", help="Numbers of judged queries, comma-separated.")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the base index here (reused if present).")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/judgments_curve.json"))
    parser.add_argument("--append", action="store_true", help="Add these sizes to the runs already in --output.")
    parser.add_argument("--no-fine-tune-above", type=int, default=None,
                        help="Run tune with --no-fine-tune for sizes above this (when the machine has no time).")
    args = parser.parse_args()
    test = load_beir(args.dataset, "test")
    train_qrels = read_qrels(args.dataset / "qrels" / "train.tsv")
    order = sorted(q for q in train_qrels if q in test.queries)
    random.Random(0).shuffle(order)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="judgments-curve-"))
    base = workdir / "base"
    report: dict[str, Any] = {**provenance(), "dataset": str(args.dataset), "test_queries": len(test.qrels),
                              "judged_per_query": JUDGED_PER_QUERY, "runs": []}
    if args.append and args.output.exists():
        previous = json.loads(args.output.read_text())
        report.update({k: previous[k] for k in ("base_index", "untuned", "runs")})
        report.setdefault("commands", [previous["command"]]).append(report["command"])
    else:
        report["base_index"] = build_base(test, base) if not base.exists() else {"reused": str(base)}
        report["untuned"] = score_test(base, test)
    print("untuned", report["untuned"], flush=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        chosen = order[:size]
        copy = workdir / f"n{size}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base, copy)
        judged = judge(copy, {q: test.queries[q] for q in chosen}, train_qrels, workdir / f"judged-{size}")
        fine_tune = args.no_fine_tune_above is None or size <= args.no_fine_tune_above
        tuned = run_tune(copy, workdir / f"judged-{size}", workdir / f"tune-{size}.log", fine_tune)
        with Retriever.load(copy) as retriever:
            record = retriever.manifest.extras.get("tune", {})
            model = retriever.manifest.model
        scores = score_test(copy, test)
        run = {"judged": size, **judged, "tune": tuned, "fine_tune_run": fine_tune, "test_ndcg@10": scores,
               "delta_hybrid": round(scores["hybrid"] - report["untuned"]["hybrid"], 4),
               "kept": {"model": bool(record.get("fine_tune") and record["fine_tune"].get("kept")),
                        "fusion": model.get("search_defaults", {})},
               "record": record}
        report["runs"].append(run)
        print(size, scores, tuned["seconds"], "s", tuned["summary"], flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")  # after each N: a cut-short run keeps its rows
        shutil.rmtree(copy, ignore_errors=True)  # the next N starts again from the base index


if __name__ == "__main__":
    main()
