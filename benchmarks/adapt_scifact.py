"""Does label-free adaptation pay? ``retriever adapt`` on SciFact's corpus alone, then score its test queries once.

Each system is adapted in its own process by ``retriever adapt`` given only ``corpus.jsonl`` (the
file, so no query or qrels file is within its reach), with its wall time and peak memory. Then
the corpus is indexed with ``retriever.Retriever`` and the queries of ``--split`` are searched:
dense and hybrid nDCG@10 and Recall@100 (hybrid at the index's default weight, which an adapted
model brings with it, and at 0.5). ``base`` is the unadapted model; the others differ in
``retriever adapt`` options (``SYSTEMS``). Prints a markdown table, writes JSON to benchmarks/results/.

    python benchmarks/adapt_scifact.py --data /path/to/scifact                          # base + default
    python benchmarks/adapt_scifact.py --data /path/to/scifact --systems ict,title,crops,keyterms
    # choosing settings without the test split: score training queries over a 2,000-document sub-corpus
    python benchmarks/adapt_scifact.py --data /path/to/scifact --split train --eval-docs 2000 --minutes 6
"""

from __future__ import annotations

import argparse
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
from retriever.eval.beir import load_beir
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate, judged_queries
from retriever.index.lexical import LexicalIndex
from retriever.ingest.chunking import encoding_text

# name -> extra `retriever adapt` options; "base" is the model as it is
SYSTEMS: dict[str, list[str] | None] = {
    "base": None,
    "default": [],
    "ict": ["--sources", "ict"],
    "title": ["--sources", "title"],
    "crops": ["--sources", "crops"],
    "keyterms": ["--sources", "keyterms"],
    "all-sources": ["--sources", "ict,title,crops,keyterms"],
    "no-negatives": ["--negatives", "none"],
}
RUN_DEPTH = 100


def main() -> None:
    args = parse_args()
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown:
        sys.exit(f"error: unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="adapt-scifact-"))
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = load_beir(args.data, split=args.split)
    docs = eval_corpus(dataset, args.eval_docs, args.seed)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.output / f"adapt_scifact-{args.split}-{stamp}.json"
    results: list[dict[str, Any]] = []
    try:
        for name in chosen:
            results.append(run_system(name, dataset, docs, workdir, args))
            write_report(path, args, dataset, docs, results)  # after each system: a long run keeps what it measured
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(markdown_table(results))
    print(f"\nresults written to {path}", file=sys.stderr)


def write_report(path: Path, args: argparse.Namespace, dataset: Any, docs: list, results: list[dict]) -> None:
    report = {
        **provenance(),
        "data": str(args.data),
        "adapted_on": str(Path(args.data) / "corpus.jsonl"),
        "split": args.split,
        "eval_documents": len(docs),
        "eval_queries": len(judged_queries(dataset.qrels)),
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": _cpu_count(), "platform": platform.platform()},
        "systems": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR SciFact folder.")
    parser.add_argument("--systems", default="base,default", help=f"Comma-separated: {', '.join(SYSTEMS)}.")
    parser.add_argument("--split", default="test", help="Queries to score (qrels/<split>.tsv); never seen by adapt.")
    parser.add_argument("--eval-docs", type=int, default=None,
                        help="Score over a sub-corpus of N documents (judged ones and BM25 neighbours kept); "
                             "adaptation always sees the whole corpus.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Base model (default: %(default)s).")
    parser.add_argument("--minutes", type=float, default=None, help="retriever adapt --minutes for every system.")
    parser.add_argument("--adapt-args", default="", help="Extra 'retriever adapt' options for every adapted system.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"), help="Folder for the JSON report.")
    parser.add_argument("--keep", default=None, help="Keep models and indexes in this folder (default: a temp dir).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    return parser.parse_args()


def eval_corpus(dataset: Any, size: int | None, seed: int) -> list:
    """All documents, or ``size`` of them: every judged one, then each query's BM25 top 20, then others."""
    docs = dataset.corpus
    if not size or size >= len(docs):
        return list(docs.values())
    qids = sorted(judged_queries(dataset.qrels))
    keep = list(dict.fromkeys(d for q in qids for d in dataset.qrels[q] if d in docs))
    index = LexicalIndex().index(list(docs), [encoding_text(d.title, d.text) for d in docs.values()])
    rankings = index.retrieve([dataset.queries[q] for q in qids], k=20)
    keep += [r[rank][0] for rank in range(20) for r in rankings if rank < len(r)]
    keep = list(dict.fromkeys(keep))[:size]
    rest = sorted(set(docs) - set(keep))
    keep += random.Random(seed).sample(rest, max(0, size - len(keep)))
    return [docs[d] for d in keep]


def run_system(name: str, dataset: Any, docs: list, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Adapt (unless base) on corpus.jsonl alone, index, score."""
    print(f"== {name}", file=sys.stderr)
    entry: dict[str, Any] = {"system": name}
    model = args.model
    if SYSTEMS[name] is not None:
        model_dir = workdir / "models" / name
        options = SYSTEMS[name] + shlex.split(args.adapt_args)
        if args.minutes:
            options += ["--minutes", str(args.minutes)]
        command = [sys.executable, "-c", "from retriever.cli import main; main()", "adapt",
                   str(Path(args.data) / "corpus.jsonl"), "--output", str(model_dir), "--model", args.model,
                   "--overwrite", *options]
        if args.quiet:
            command.append("--quiet")
        started = time.perf_counter()
        subprocess.run(command, check=True)
        card = json.loads((model_dir / "training.json").read_text())
        adaptation = card["adaptation"]
        entry.update(adapt_options=options, adapt_minutes=(time.perf_counter() - started) / 60,
                     peak_rss_mb=card["peak_memory_mb"], steps=card["steps"], verdict=adaptation["verdict"],
                     kept_adapted=adaptation["kept_adapted_model"], pairs=adaptation["pairs_by_source"],
                     held_out_before=(card["dev_before"] or {}).get("ndcg@10"),
                     held_out_after=(card["dev_after"] or {}).get("ndcg@10"),
                     fusion=adaptation["fusion"])
        model = str(model_dir)
    started = time.perf_counter()
    encoder = CachedEncoder.wrap(Encoder(model), EmbeddingCache(DEFAULT_CACHE_DIR))
    index = Retriever.build(docs, index_dir=workdir / "indexes" / name, encoder=encoder, progress=not args.quiet)
    entry["index_minutes"] = (time.perf_counter() - started) / 60
    entry["alpha"] = index.default_alpha
    qids = sorted(judged_queries(dataset.qrels))
    texts = [dataset.queries[q] for q in qids]
    for label, options in (("dense", {"mode": "dense"}), ("hybrid", {"mode": "hybrid"}),
                           ("hybrid_0.5", {"mode": "hybrid", "alpha": 0.5})):
        hits = index.search_many(texts, k=RUN_DEPTH, **options)
        run = {q: {h.doc_id: h.score for h in found} for q, found in zip(qids, hits)}
        scores = evaluate(run, dataset.qrels, ("ndcg@10", "recall@100")).scores
        entry.update({f"{label}_{k}": v for k, v in scores.items()})
        print(f"   {label}: nDCG@10 {scores['ndcg@10']:.4f}  Recall@100 {scores['recall@100']:.4f}", file=sys.stderr)
    return entry


def markdown_table(results: list[dict[str, Any]]) -> str:
    rows = ["| system | dense nDCG@10 | dense R@100 | hybrid nDCG@10 (alpha) | hybrid R@100 | hybrid@0.5 nDCG@10 "
            "| held-out pseudo nDCG@10 | kept | adapt (min) | peak RSS (MB) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        held = (f"{r['held_out_before']:.3f} -> {r['held_out_after']:.3f}"
                if r.get("held_out_before") is not None else "-")
        minutes = f"{r['adapt_minutes']:.1f}" if "adapt_minutes" in r else "-"
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"
        kept = "-" if "kept_adapted" not in r else ("yes" if r["kept_adapted"] else "no (base)")
        rows.append(f"| {r['system']} | {r['dense_ndcg@10']:.4f} | {r['dense_recall@100']:.4f} "
                    f"| {r['hybrid_ndcg@10']:.4f} ({r['alpha']:.2f}) | {r['hybrid_recall@100']:.4f} "
                    f"| {r['hybrid_0.5_ndcg@10']:.4f} | {held} | {kept} | {minutes} | {rss} |")
    return "\n".join(rows)


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
