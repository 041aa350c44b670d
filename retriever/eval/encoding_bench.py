"""``retriever bench --backends``: the encoding table, every backend measured in one run.

Rows: plain sentence-transformers fp32 (``SentenceTransformer.encode``, the reference) and each
backend of this engine (``torch``, ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``).
Speed is measured on the same texts for every row: a sample of the corpus's documents (title
and text, truncated by the model as the reference does), encoded in alternating rounds so that a
busy moment of the machine does not fall on one row only, best round kept; single-query
encoding and warm dense and hybrid search latency at the full corpus. Quality comes from a flat
index of the whole corpus built with each backend (static int8 calibrated on the shipped set).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from retriever.encoding.backends import parse_backend_label
from retriever.encoding.cache import CachedEncoder, EmbeddingCache
from retriever.encoding.encoder import Encoder
from retriever.eval.beir import BeirDataset
from retriever.eval.engine import build_engine
from retriever.eval.metrics import DEFAULT_METRICS, evaluate
from retriever.ingest.chunking import encoding_text

REFERENCE = "sentence-transformers"
RUN_DEPTH = 100
LATENCY_K = 10


def median_ms(call: Callable[[str], object], queries: list[str]) -> float:
    """Warm p50 of one call per query, in milliseconds (one warm-up call first)."""
    call(queries[0])
    times = []
    for query in queries:
        started = time.perf_counter()
        call(query)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50))


def speed_sample(dataset: BeirDataset, size: int, seed: int) -> list[str]:
    ids = sorted(dataset.corpus)
    if size < len(ids):
        ids = sorted(random.Random(seed).sample(ids, size))
    return [encoding_text(dataset.corpus[i].title, dataset.corpus[i].text) for i in ids]


def run_encoding_bench(
    dataset: BeirDataset,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    model: str,
    labels: tuple[str, ...],
    cache: EmbeddingCache,
    workdir: Path,
    device: str = "auto",
    speed_docs: int = 500,
    rounds: int = 2,
    seed: int = 0,
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> dict[str, Any]:
    """The encoding table's figures: one entry per row, reference first."""
    qtexts = list(queries.values())
    sample = speed_sample(dataset, speed_docs, seed)
    rows: dict[str, dict[str, Any]] = {}
    encoders: dict[str, Encoder] = {}
    retrievers: dict[str, Any] = {}
    for label in labels:
        backend, quantize = parse_backend_label(label)
        log(f"encoding bench: {label}: building a flat index of {len(dataset.corpus)} documents ...")
        started = time.perf_counter()
        encoder = CachedEncoder.wrap(Encoder(model, backend=backend, quantize=quantize, device=device), cache)
        retriever, built = build_engine(f"encoding-{label}", dataset, encoder, "flat", workdir, progress)
        run = {q: {h.doc_id: h.score for h in hits}
               for q, hits in zip(queries, retriever.search_many(qtexts, k=RUN_DEPTH, mode="dense"))}
        export_seconds = None
        if encoder.export_dir is not None:
                export_seconds = json.loads((encoder.export_dir / "export.json").read_text()).get("seconds")
        rows[label] = {
            "backend": backend, "quantize": quantize, "device": encoder.device, "fingerprint": encoder.fingerprint,
            "quality": evaluate(run, qrels, DEFAULT_METRICS).scores,
            "index_passages_per_second": built["encode_passages_per_second"],
            "index_encoding_cached": built["encode_cached"],
            "export_seconds": export_seconds,
            "setup_seconds": time.perf_counter() - started,
        }
        encoders[label], retrievers[label] = encoder, retriever

    reference = Encoder(model, device=device).model  # plain sentence-transformers, fp32
    encode_plain = {
        REFERENCE: lambda texts: reference.encode(texts, batch_size=32, normalize_embeddings=True,
                                                  convert_to_numpy=True, show_progress_bar=False),
        # Encoder's own method: the embedding cache of the index builds is not consulted here
        **{label: (lambda texts, e=encoders[label]: Encoder.encode_documents(e, texts)) for label in labels},
    }
    for encode in encode_plain.values():  # warm-up: first-call allocations are not encoding speed
        encode(sample[:8])
    rounds_seen: dict[str, list[float]] = {name: [] for name in encode_plain}
    vectors: dict[str, np.ndarray] = {}
    for turn in range(rounds):
        for name, encode in encode_plain.items():
            started = time.perf_counter()
            vectors[name] = np.asarray(encode(sample))
            rate = len(sample) / (time.perf_counter() - started)
            rounds_seen[name].append(rate)
            log(f"encoding bench: round {turn + 1}: {name} {rate:.1f} docs/s")

    rows = {REFERENCE: {"backend": "sentence-transformers", "quantize": "none", "quality": {}}, **rows}
    rows[REFERENCE]["query_encode_p50_ms"] = median_ms(
        lambda q: reference.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
        qtexts)
    for label in labels:
        encoder, retriever = encoders[label], retrievers[label]
        rows[label]["query_encode_p50_ms"] = median_ms(lambda q, e=encoder: e.encode_queries([q]), qtexts)
        rows[label]["dense_search_p50_ms"] = median_ms(
            lambda q, r=retriever: r.search(q, k=LATENCY_K, mode="dense"), qtexts)
        rows[label]["hybrid_search_p50_ms"] = median_ms(
            lambda q, r=retriever: r.search(q, k=LATENCY_K, mode="hybrid"), qtexts)
    for name, rates in rounds_seen.items():
        rows[name]["docs_per_second"] = max(rates)
        rows[name]["docs_per_second_rounds"] = rates
        # agreement with the reference on the speed sample: the per-vector cosine, the quality bound
        cosines = (vectors[name] * vectors[REFERENCE]).sum(axis=1)
        rows[name]["agreement_min_cosine"] = float(cosines.min())
        rows[name]["agreement_mean_cosine"] = float(cosines.mean())
    ref = rows[REFERENCE]
    torch_ndcg = rows.get("torch", {}).get("quality", {}).get("ndcg@10")
    for row in rows.values():
        row["docs_per_second_ratio"] = row["docs_per_second"] / ref["docs_per_second"]
        row["query_encode_ratio"] = row["query_encode_p50_ms"] / ref["query_encode_p50_ms"]
        ndcg = row["quality"].get("ndcg@10")
        row["ndcg_delta_vs_torch"] = ndcg - torch_ndcg if ndcg is not None and torch_ndcg is not None else None
    for retriever in retrievers.values():
        retriever.close()
    return {
        "rows": rows,
        "speed_docs": len(sample),
        "rounds": rounds,
        "queries": len(qtexts),
        "documents": len(dataset.corpus),
        "default_candidate": default_candidate(rows),
    }


def default_candidate(rows: dict[str, dict[str, Any]], max_loss: float = 0.005) -> str | None:
    """The fastest backend (document encoding) within ``max_loss`` nDCG@10 of PyTorch fp32; torch if none."""
    if "torch" not in rows:
        return None
    eligible = [name for name, row in rows.items() if name != REFERENCE
                and row.get("ndcg_delta_vs_torch") is not None and row["ndcg_delta_vs_torch"] >= -max_loss]
    return max(eligible, key=lambda name: rows[name]["docs_per_second"], default="torch")


def encoding_markdown(report: dict[str, Any], title: str) -> str:
    table = report["encoding"]
    lines = [
        f"**Encoding backends, {title}**: document speed on the same {table['speed_docs']} documents "
        f"(best of {table['rounds']} alternating rounds), latency p50 over {table['queries']} queries, quality "
        f"from a flat index of all {table['documents']} documents built with each backend. Ratios are to plain "
        f"sentence-transformers fp32 in the same run. {report['environment']['cpu']}, "
        f"{report['environment']['cores']} cores, {report['date']}.",
        "",
        "| encoder | docs/s | vs reference | query encode p50 (ms) | vs reference | dense search p50 (ms) "
        "| hybrid search p50 (ms) | nDCG@10 | vs torch | Recall@100 | export (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: float | None, fmt: str) -> str:
        return "–" if value is None else fmt.format(value)

    for name, row in table["rows"].items():
        quality = row.get("quality", {})
        lines.append(
            f"| {name} | {row['docs_per_second']:.1f} | {row['docs_per_second_ratio']:.2f}x "
            f"| {row['query_encode_p50_ms']:.2f} | {row['query_encode_ratio']:.2f}x "
            f"| {cell(row.get('dense_search_p50_ms'), '{:.2f}')} | {cell(row.get('hybrid_search_p50_ms'), '{:.2f}')} "
            f"| {cell(quality.get('ndcg@10'), '{:.4f}')} | {cell(row.get('ndcg_delta_vs_torch'), '{:+.4f}')} "
            f"| {cell(quality.get('recall@100'), '{:.4f}')} | {cell(row.get('export_seconds'), '{:.0f}')} |"
        )
    candidate = table.get("default_candidate")
    if candidate:
        lines += ["", f"Fastest within 0.5 point nDCG@10 of PyTorch fp32: **{candidate}**."]
    return "\n".join(lines) + "\n"
