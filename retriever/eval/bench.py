"""``retriever bench``: quality and speed of this engine beside the baselines, in one run.

Systems (each a column): BM25 (bm25s), plain sentence-transformers with exact search (the
reference a user would write by hand), this engine with the same model (flat and HNSW), and
optionally a fine-tuned model. Quality is scored with trec_eval (pytrec_eval); speed and cost figures are also
given as ratios to the reference measured in the same run.
"""

from __future__ import annotations

import json
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from retriever.encoding.auto import make_encoder
from retriever.encoding.cache import DEFAULT_CACHE_DIR, CachedEncoder, EmbeddingCache, cache_key
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.eval.beir import BeirDataset, load_beir
from retriever.eval.engine import PeakMemory, build_engine
from retriever.eval.machine import cpu_model, machine
from retriever.eval.metrics import DEFAULT_METRICS, Run, evaluate, judged_queries, write_trec_run
from retriever.ingest.chunking import encoding_text

SYSTEMS = ("bm25", "reference", "flat", "hnsw", "lexical", "hybrid", "hybrid-rrf")
DEFAULT_SYSTEMS = ("bm25", "reference", "flat", "hnsw", "hybrid", "hybrid-rrf")
STORE_PREFIX = "milvus-"  # columns of the same systems with --store milvus:..., beside the local ones
RUN_DEPTH = 100  # documents retrieved per query for the quality metrics
LATENCY_K = 10


@dataclass
class BenchConfig:
    dataset: Path
    split: str = "test"
    model: str = DEFAULT_MODEL
    finetuned: str | None = None
    systems: tuple[str, ...] = DEFAULT_SYSTEMS
    output: Path = Path("benchmarks/results")
    cache: Path = DEFAULT_CACHE_DIR
    limit_queries: int | None = None
    limit_docs: int | None = None
    seed: int = 0
    store: str | None = None  # also run every engine system on this store (milvus:PATH.db or milvus:http://...)
    command: str = field(default_factory=lambda: " ".join(sys.argv))
    backend: str | None = None  # encoder of the engine columns (None: the engine default)
    quantize: str | None = None
    device: str = "auto"
    backends: tuple[str, ...] = ()  # rows of the encoding table (encoding_bench.py); empty: no table
    speed_docs: int = 500


@dataclass
class SystemResult:
    name: str
    quality: dict[str, float]
    speed: dict[str, float | None]
    run: Run


# data selection ------------------------------------------------------------------------------
def select(dataset: BeirDataset, config: BenchConfig) -> tuple[dict[str, str], dict[str, dict[str, int]], dict]:
    """Queries to score, their qrels, and counts; applies the smoke-run limits in place."""
    judged = {q: docs for q, docs in judged_queries(dataset.qrels).items() if q in dataset.queries}
    counts = {
        "queries_in_split": len(dataset.qrels),
        "queries_skipped_no_judgement": len(dataset.qrels) - len(judged),
    }
    rng = random.Random(config.seed)
    qids = sorted(judged)
    if config.limit_queries and config.limit_queries < len(qids):
        qids = sorted(rng.sample(qids, config.limit_queries))
    qrels = {q: dataset.qrels[q] for q in qids}
    if config.limit_docs and config.limit_docs < len(dataset.corpus):
        keep = {d for docs in qrels.values() for d in docs if d in dataset.corpus}
        others = sorted(set(dataset.corpus) - keep)
        keep |= set(rng.sample(others, max(0, min(len(others), config.limit_docs - len(keep)))))
        dataset.corpus = {d: doc for d, doc in dataset.corpus.items() if d in keep}
    counts.update(queries_scored=len(qids), documents=len(dataset.corpus))
    return {q: dataset.queries[q] for q in qids}, qrels, counts


# measurement helpers -------------------------------------------------------------------------
def latency_ms(search_one: Callable[[str], object], queries: list[str]) -> dict[str, float]:
    """Warm single-query latency percentiles (one warm-up query first)."""
    search_one(queries[0])
    times = []
    for query in queries:
        started = time.perf_counter()
        search_one(query)
        times.append((time.perf_counter() - started) * 1000)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95), "latency_p99_ms": float(p99)}


def batch_qps(search_all: Callable[[list[str]], object], queries: list[str]) -> float:
    started = time.perf_counter()
    search_all(queries)
    return len(queries) / (time.perf_counter() - started)


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# systems -------------------------------------------------------------------------------------
def bench_bm25(dataset: BeirDataset, queries: dict[str, str], workdir: Path) -> SystemResult:
    from retriever.index.lexical import LexicalIndex

    ids = list(dataset.corpus)
    texts = [encoding_text(d.title, d.text) for d in dataset.corpus.values()]
    with PeakMemory() as memory:
        started = time.perf_counter()
        index = LexicalIndex().index(ids, texts)
        build = time.perf_counter() - started
        index.save(workdir / "bm25")
        qids, qtexts = list(queries), list(queries.values())
        run = {q: dict(hits) for q, hits in zip(qids, index.retrieve(qtexts, k=RUN_DEPTH))}
        speed = {
            "build_seconds": build,
            "encode_docs_per_second": None,
            "index_bytes": directory_size(workdir / "bm25"),
            **latency_ms(lambda q: index.retrieve([q], k=LATENCY_K), qtexts),
            "batch_queries_per_second": batch_qps(lambda qs: index.retrieve(qs, k=LATENCY_K), qtexts),
            "ann_recall_at_10": None,
        }
    speed["peak_rss_mb"] = memory.peak / 1e6
    return SystemResult("bm25", {}, speed, run)


def bench_reference(dataset: BeirDataset, queries: dict[str, str], encoder: Encoder, cache: EmbeddingCache,
                    progress: bool) -> SystemResult:
    """Plain sentence-transformers: encode the corpus, exact dot-product search in numpy."""
    model = encoder.model
    ids = list(dataset.corpus)
    texts = [encoding_text(d.title, d.text) for d in dataset.corpus.values()]
    with PeakMemory() as memory:
        key = cache_key(encoder.fingerprint, texts, "reference")
        hit = cache.get(key)
        if hit is None:
            started = time.perf_counter()
            matrix = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=progress).astype(np.float32)
            meta = {"seconds": time.perf_counter() - started, "texts": len(texts)}
            cache.put(key, matrix, meta)
        else:
            matrix, meta = hit
        encode_seconds = meta["seconds"]

        import torch
        from sentence_transformers.util import semantic_search

        corpus = torch.from_numpy(matrix)

        def search(query_texts: list[str], k: int) -> list[list[tuple[str, float]]]:
            """sentence-transformers' own exact search (torch), as its documentation shows."""
            vectors = model.encode(query_texts, normalize_embeddings=True, convert_to_tensor=True,
                                   show_progress_bar=False)
            found = semantic_search(vectors, corpus, top_k=min(k, len(ids)))
            return [[(ids[hit["corpus_id"]], float(hit["score"])) for hit in hits] for hits in found]

        qids, qtexts = list(queries), list(queries.values())
        run = {q: dict(hits) for q, hits in zip(qids, search(qtexts, RUN_DEPTH))}
        speed = {
            "build_seconds": encode_seconds,
            "encode_docs_per_second": len(texts) / encode_seconds,
            "encode_cached": hit is not None,
            "index_bytes": int(matrix.nbytes),
            **latency_ms(lambda q: search([q], LATENCY_K), qtexts),
            "batch_queries_per_second": batch_qps(lambda qs: search(qs, LATENCY_K), qtexts),
            "ann_recall_at_10": 1.0,
        }
    speed["peak_rss_mb"] = memory.peak / 1e6
    return SystemResult("reference", {}, speed, run)


def bench_engine(name: str, retriever: Any, built: dict[str, Any], queries: dict[str, str],
                 options: dict[str, Any]) -> SystemResult:
    """Search an engine index with some options (mode, fusion, rerank) as a user would."""
    with PeakMemory() as memory:
        qids, qtexts = list(queries), list(queries.values())
        results = retriever.search_many(qtexts, k=RUN_DEPTH, **options)
        run = {q: {h.doc_id: h.score for h in hits} for q, hits in zip(qids, results)}
        recall = None
        if options.get("mode") == "dense":
            recall = ann_recall_at_10(retriever.snapshot, retriever.encoder.encode_queries(qtexts))
        speed = {
            **{k: v for k, v in built.items() if k != "build_peak_rss_mb"},
            **latency_ms(lambda q: retriever.search(q, k=LATENCY_K, **options), qtexts),
            "batch_queries_per_second": batch_qps(lambda qs: retriever.search_many(qs, k=LATENCY_K, **options), qtexts),
            "ann_recall_at_10": recall,
        }
    speed["peak_rss_mb"] = max(memory.peak, built["build_peak_rss_mb"] * 1e6) / 1e6
    return SystemResult(name, {}, speed, run)


ENGINE_SYSTEMS = {  # system -> (index kind, search options)
    "flat": ("flat", {"mode": "dense"}),
    "hnsw": ("hnsw", {"mode": "dense"}),
    "lexical": ("flat", {"mode": "lexical"}),
    "hybrid": ("flat", {"mode": "hybrid", "fusion": "convex"}),
    "hybrid-rrf": ("flat", {"mode": "hybrid", "fusion": "rrf"}),
}
TUNED_SYSTEMS = {  # fine-tuned model columns, when --model is given
    "fine-tuned": {"mode": "dense"},
    "fine-tuned-hybrid": {"mode": "hybrid", "fusion": "convex"},
}
RERANK_DEPTH = 30


def ann_recall_at_10(snapshot: Any, queries: np.ndarray) -> float:
    """Share of the exact top-10 passages (brute force over every live passage) that the index's own search returns."""
    found = snapshot.dense(queries, 10)
    truth = snapshot.dense(queries, 10, exact=True)
    overlaps = [len({c[0] for c in f} & {c[0] for c in t}) / max(1, len(t)) for f, t in zip(found, truth)]
    return float(np.mean(overlaps))


# the whole run -------------------------------------------------------------------------------
def run_bench(config: BenchConfig, log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Run every system, score it, and write JSON, markdown, a plot and TREC runs to ``config.output``."""
    started = time.perf_counter()
    dataset = load_beir(config.dataset, config.split)
    queries, qrels, counts = select(dataset, config)
    log(f"{dataset.name}/{config.split}: {counts['queries_scored']} queries, {counts['documents']} documents "
        f"({counts['queries_skipped_no_judgement']} queries skipped: no relevant judgement)")
    cache = EmbeddingCache(config.cache)
    results: list[SystemResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="retriever-bench-"))
    built: dict[tuple[str, str | None], tuple[Any, dict]] = {}  # (index kind, store) -> (retriever, figures)
    try:
        base = None
        if set(config.systems) - {"bm25"}:
            base = CachedEncoder.wrap(make_encoder(config.model, config.backend, config.quantize,
                                                   device=config.device, progress=progress), cache)
        stores: list[str | None] = [None] + ([config.store] if config.store else [])
        for system in config.systems:
            if system == "bm25":
                log(f"running {system} ...")
                results.append(bench_bm25(dataset, queries, workdir))
            elif system == "reference":
                log(f"running {system} ...")
                results.append(bench_reference(dataset, queries, base, cache, progress))
            elif system in ENGINE_SYSTEMS:
                kind, options = ENGINE_SYSTEMS[system]
                for store in stores:
                    name = system if store is None else STORE_PREFIX + system
                    log(f"running {name} ...")
                    if (kind, store) not in built:
                        folder = kind if store is None else STORE_PREFIX + kind
                        built[kind, store] = build_engine(folder, dataset, base, kind, workdir, progress, store)
                    results.append(bench_engine(name, *built[kind, store], queries, options))
            else:
                raise ValueError(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")
        if config.finetuned:
            tuned = CachedEncoder.wrap(Encoder(config.finetuned, backend=base.backend, quantize=base.quantize,
                                               device=config.device), cache)
            retriever, figures = build_engine("fine-tuned", dataset, tuned, "flat", workdir, progress)
            columns = dict(TUNED_SYSTEMS)
            if retriever.rerank_head is not None:
                columns["fine-tuned-hybrid-rerank"] = {**columns["fine-tuned-hybrid"], "rerank": RERANK_DEPTH}
            for system, options in columns.items():
                log(f"running {system} ...")
                results.append(bench_engine(system, retriever, figures, queries, options))
        encoding = None
        if config.backends:
            from retriever.eval.encoding_bench import run_encoding_bench

            encoding = run_encoding_bench(dataset, queries, qrels, config.model, config.backends, cache, workdir,
                                          device=config.device, speed_docs=config.speed_docs, seed=config.seed,
                                          log=log, progress=progress)
    finally:
        for (_, store), (retriever, _) in built.items():
            if store is not None:  # the bench's collections go with its temporary index folders
                drop_store(retriever)
        shutil.rmtree(workdir, ignore_errors=True)
    for result in results:
        evaluation = evaluate(result.run, qrels, DEFAULT_METRICS)
        result.quality = evaluation.scores
    add_ratios(results, counts["documents"])
    report = {
        "dataset": str(config.dataset),
        "dataset_name": dataset.name,
        "split": config.split,
        "model": config.model,
        "finetuned": config.finetuned,
        "counts": counts,
        "limits": {"queries": config.limit_queries, "docs": config.limit_docs, "seed": config.seed},
        "store": config.store,
        "systems": {r.name: {"quality": r.quality, "speed": r.speed} for r in results},
        "encoder": {"backend": base.backend, "quantize": base.quantize,  # and, for auto, why (measured docs/s)
                    "backend_choice": base.backend_choice} if base is not None else None,
        "encoding": encoding,
        "command": config.command,
        "environment": environment(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "seconds": time.perf_counter() - started,
    }
    write_outputs(report, results, config.output)
    return report


RATIO_FIELDS = ("build_seconds", "encode_docs_per_second", "index_bytes", "latency_p50_ms", "latency_p95_ms",
                "latency_p99_ms", "batch_queries_per_second", "peak_rss_mb")


def add_ratios(results: list[SystemResult], documents: int) -> None:
    """Bytes per document, and each speed figure as a ratio to the reference's."""
    reference = next((r for r in results if r.name == "reference"), None)
    for result in results:
        size = result.speed.get("index_bytes")
        result.speed["bytes_per_document"] = size / documents if size is not None and documents else None
    if reference is None:
        return
    for result in results:
        for name in RATIO_FIELDS:
            mine, theirs = result.speed.get(name), reference.speed.get(name)
            if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and theirs:
                result.speed[f"{name}_ratio"] = mine / theirs


def environment() -> dict[str, Any]:
    import importlib.metadata as md
    import os

    versions = {}
    for package in ("retriever", "sentence-transformers", "transformers", "torch", "faiss-cpu", "bm25s",
                    "pytrec-eval-terrier", "numpy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "packages": versions,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
    }


# outputs -------------------------------------------------------------------------------------
def markdown_table(report: dict[str, Any]) -> str:
    systems = report["systems"]
    names = list(systems)
    rows = [
        ("nDCG@10", "quality", "ndcg@10", "{:.3f}"),
        ("Recall@100", "quality", "recall@100", "{:.3f}"),
        ("MRR@10", "quality", "mrr@10", "{:.3f}"),
        ("MAP@100", "quality", "map@100", "{:.3f}"),
        ("docs encoded/s", "speed", "encode_docs_per_second", "{:.1f}"),
        ("build time (s)", "speed", "build_seconds", "{:.1f}"),
        ("index size (MB)", "speed", "index_bytes", "mb"),
        ("bytes/doc", "speed", "bytes_per_document", "{:.0f}"),
        ("latency p50 (ms)", "speed", "latency_p50_ms", "{:.1f}"),
        ("latency p95 (ms)", "speed", "latency_p95_ms", "{:.1f}"),
        ("latency p99 (ms)", "speed", "latency_p99_ms", "{:.1f}"),
        ("batch queries/s", "speed", "batch_queries_per_second", "{:.0f}"),
        ("peak RSS (MB)", "speed", "peak_rss_mb", "{:.0f}"),
        ("ANN recall@10 vs exact", "speed", "ann_recall_at_10", "{:.3f}"),
    ]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, group, key, fmt in rows:
        cells = []
        for name in names:
            value = systems[name][group].get(key)
            if value is None:
                cells.append("–")
                continue
            text = f"{value / 1e6:.2f}" if fmt == "mb" else fmt.format(value)
            ratio = systems[name][group].get(f"{key}_ratio")
            if ratio is not None and name != "reference":
                text += f" ({ratio:.2f}x)"
            cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    counts = report["counts"]
    header = (
        f"**{report['dataset_name']}** ({report['split']}): {counts['queries_scored']} queries scored, "
        f"{counts['queries_skipped_no_judgement']} skipped (no relevant judgement), {counts['documents']} documents. "
        f"Ratios are to the reference (plain sentence-transformers, exact search) in the same run. "
        f"{report['environment']['cpu']}, {report['environment']['cores']} cores, {report['date']}."
    )
    return header + "\n\n" + "\n".join(lines) + "\n"


def drop_store(retriever: Any) -> None:
    """Drop the Milvus collections of a bench index (its folder is temporary)."""
    from retriever.index.backend import store_of
    from retriever.index.milvus import collections
    from retriever.index.milvus.connection import connect

    retriever.close()
    collections.drop(connect(store_of(retriever.manifest).uri), retriever.manifest.backend)


def write_outputs(report: dict[str, Any], results: list[SystemResult], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    stem = f"{report['dataset_name']}-{report['split']}" + ("-milvus" if report.get("store") else "")
    if results:  # an encoding-table-only run leaves the systems table as it was
        (output / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
        (output / f"{stem}.md").write_text(markdown_table(report))
        runs = output / f"{stem}-runs"
        runs.mkdir(exist_ok=True)
        for result in results:
            write_trec_run(result.run, runs / f"{result.name}.trec", result.name)
        plot(report, output / f"{stem}.png")
    if report.get("encoding"):
        from retriever.eval.encoding_bench import encoding_markdown

        (output / f"encoding-{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
        (output / f"encoding-{stem}.md").write_text(
            encoding_markdown(report, f"{report['dataset_name']} ({report['split']})"))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, figures in report["systems"].items():
        x, y = figures["speed"].get("latency_p50_ms"), figures["quality"].get("ndcg@10")
        if x is None or y is None:
            continue
        ax.scatter([x], [y], s=40)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("warm query latency p50 (ms, log scale)")
    ax.set_xscale("log")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"{report['dataset_name']} ({report['split']}): quality vs latency")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
