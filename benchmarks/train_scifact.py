"""Does fine-tuning pay? Train on SciFact's qrels/train.tsv, index the corpus, score qrels/test.tsv.

For each system: train it with ``retriever train`` (in its own process, so that its peak memory
is its own), build a ``retriever.Retriever`` index of the corpus with it, search the test
queries and score them with ``retriever.eval.metrics.evaluate`` (trec_eval). The base model is scored
the same way without training. Prints a markdown table and writes JSON to benchmarks/results/.

    python benchmarks/train_scifact.py --data /path/to/scifact                  # base + default
    python benchmarks/train_scifact.py --data /path/to/scifact --systems all    # + half-twin, losses, metric head
    python benchmarks/train_scifact.py --data /path/to/scifact --limit-train-queries 20 \\
        --limit-docs 200 --limit-test-queries 20 --max-steps 2                   # smoke run, minutes
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from retriever import Retriever
from retriever.encoding.cache import DEFAULT_CACHE_DIR, CachedEncoder, EmbeddingCache
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.eval.beir import load_beir, read_qrels
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate

# name -> extra `retriever train` options; "base" is the untrained model
SYSTEMS: dict[str, list[str] | None] = {
    "base": None,
    "default": [],
    "half-twin": ["--architecture", "half-twin"],
    "contrastive": ["--loss", "contrastive"],
    "triplet": ["--loss", "triplet"],
    "metric-head": ["--metric-head", "linear"],
}
DEFAULT_SYSTEMS = "base,default"
RUN_DEPTH = 100


def main() -> None:
    args = parse_args()
    chosen = list(SYSTEMS) if args.systems == "all" else [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown:
        sys.exit(f"error: unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)} or all")
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="train-scifact-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        data = subset(args.data, workdir / "data", args) if limited(args) else args.data
        dataset = load_beir(data, split="test")
        results = [run_system(name, data, dataset, workdir, args) for name in chosen]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        **provenance(),
        "data": str(args.data),
        "limits": {k: getattr(args, k) for k in ("limit_train_queries", "limit_docs", "limit_test_queries",
                                                  "max_steps")},
        "documents": len(dataset.corpus),
        "test_queries": sum(1 for docs in dataset.qrels.values() if any(r > 0 for r in docs.values())),
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": _cpu_count(), "platform": platform.platform()},
        "systems": results,
    }
    table = markdown_table(results)
    print(table)
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.output / f"train_scifact-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {path}", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR SciFact folder (qrels/train.tsv, test.tsv).")
    parser.add_argument("--systems", default=DEFAULT_SYSTEMS,
                        help=f"Comma-separated: {', '.join(SYSTEMS)}, or 'all' (default: {DEFAULT_SYSTEMS}).")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Base model (default: %(default)s).")
    parser.add_argument("--train-args", default="", help="Extra 'retriever train' options for every trained system.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"), help="Folder for the JSON report.")
    parser.add_argument("--keep", default=None, help="Keep models and indexes in this folder (default: a temp dir).")
    parser.add_argument("--limit-train-queries", type=int, default=None, help="Smoke: train on N queries.")
    parser.add_argument("--limit-docs", type=int, default=None, help="Smoke: N documents (judged ones always kept).")
    parser.add_argument("--limit-test-queries", type=int, default=None, help="Smoke: score N test queries.")
    parser.add_argument("--max-steps", type=int, default=None, help="Smoke: stop training after N steps.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    return parser.parse_args()


def limited(args: argparse.Namespace) -> bool:
    return any(getattr(args, k) for k in ("limit_train_queries", "limit_docs", "limit_test_queries"))


def run_system(name: str, data: Path, dataset: Any, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train (unless base), index the corpus, score the test queries."""
    print(f"== {name}", file=sys.stderr)
    entry: dict[str, Any] = {"system": name}
    model = args.model
    if SYSTEMS[name] is not None:
        model_dir = workdir / "models" / name
        options = SYSTEMS[name] + shlex.split(args.train_args)
        if args.max_steps:
            options += ["--max-steps", str(args.max_steps)]
        command = [sys.executable, "-c", "from retriever.cli import main; main()", "train", str(data),
                   "--output", str(model_dir), "--model", args.model, "--overwrite", *options]
        if args.quiet:
            command.append("--quiet")
        started = time.perf_counter()
        subprocess.run(command, check=True)
        card = json.loads((model_dir / "training.json").read_text())
        entry.update(train_options=options, training_minutes=(time.perf_counter() - started) / 60,
                     peak_rss_mb=card["peak_memory_mb"], dev_before=card["dev_before"], dev_after=card["dev_after"],
                     kept_starting_model=card["kept_starting_model"], steps=card["steps"],
                     cross_validation=card.get("cross_validation"), dev_source=card["data"].get("dev_source"))
        model = str(model_dir)
    started = time.perf_counter()
    encoder = CachedEncoder.wrap(Encoder(model), EmbeddingCache(DEFAULT_CACHE_DIR))
    index = Retriever.build(list(dataset.corpus.values()), index_dir=workdir / "indexes" / name, encoder=encoder,
                            progress=not args.quiet)
    entry["index_minutes"] = (time.perf_counter() - started) / 60
    qids = [q for q, docs in dataset.qrels.items() if any(r > 0 for r in docs.values())]
    for mode in ("dense", "hybrid"):
        hits = index.search_many([dataset.queries[q] for q in qids], k=RUN_DEPTH, mode=mode)
        run = {q: {h.doc_id: h.score for h in found} for q, found in zip(qids, hits)}
        scores = evaluate(run, dataset.qrels, ("ndcg@10", "recall@100")).scores
        prefix = "" if mode == "dense" else "hybrid_"
        entry.update({f"{prefix}{k}": v for k, v in scores.items()})
        print(f"   {mode}: nDCG@10 {scores['ndcg@10']:.4f}  Recall@100 {scores['recall@100']:.4f}", file=sys.stderr)
    entry.update(model=model, architecture=index.manifest.model["architecture"])
    return entry


def subset(source: Path, target: Path, args: argparse.Namespace) -> Path:
    """A smaller BEIR folder: the first N train/test queries and N documents, judged ones kept."""
    rng = random.Random(0)
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    train = _first(read_qrels(source / "qrels" / "train.tsv"), args.limit_train_queries)
    test = _first(read_qrels(source / "qrels" / "test.tsv"), args.limit_test_queries)
    judged = {d for qrels in (train, test) for docs in qrels.values() for d in docs}
    lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["_id"] for line in lines]
    others = [i for i in ids if i not in judged]
    room = max(0, (args.limit_docs or len(ids)) - len(judged))
    keep = judged | set(rng.sample(others, min(room, len(others))))
    (target / "corpus.jsonl").write_text("".join(line + "\n" for line, i in zip(lines, ids) if i in keep))
    wanted = set(train) | set(test)
    queries = [line for line in (source / "queries.jsonl").read_text(encoding="utf-8").splitlines()
               if json.loads(line)["_id"] in wanted]
    (target / "queries.jsonl").write_text("".join(line + "\n" for line in queries))
    for split, qrels in (("train", train), ("test", test)):
        with (target / "qrels" / f"{split}.tsv").open("w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t")
            writer.writerow(["query-id", "corpus-id", "score"])
            writer.writerows([q, d, r] for q, docs in qrels.items() for d, r in docs.items())
    return target


def _first(qrels: dict[str, dict[str, int]], limit: int | None) -> dict[str, dict[str, int]]:
    return dict(list(qrels.items())[:limit]) if limit else qrels


def markdown_table(results: list[dict[str, Any]]) -> str:
    rows = ["| system | nDCG@10 (dense) | Recall@100 (dense) | nDCG@10 (hybrid) | training (min) | peak RSS (MB) |",
            "|---|---|---|---|---|---|"]
    for r in results:
        minutes = f"{r['training_minutes']:.1f}" if "training_minutes" in r else "-"
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"
        rows.append(f"| {r['system']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['hybrid_ndcg@10']:.4f} "
                    f"| {minutes} | {rss} |")
    return "\n".join(rows)


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
