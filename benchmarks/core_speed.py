"""Speed of the core engine (issue 2), measured side by side in one process.

1. Encoding throughput of indexing (``Retriever.build``, end to end: reading records,
   chunking, encoding, FAISS, SQLite, atomic write) with the encoder a new index gets (``--backend``,
   default auto: chosen by measurement on this machine) against a plain
   ``SentenceTransformer.encode`` over the same passage texts with the same model.
   The two alternate (A B A B) to spread the machine's noise over both.
2. Warm in-process search latency (p50/p95) over the whole corpus for each mode (dense,
   hybrid, lexical), with the query encoding and the ANN lookup measured on their own; each search
   also with every hit's snippet and highlights read (worked out on first read). Modes and variants
   alternate query by query, over ``--rounds`` passes of the queries.
3. Cold ``retriever search`` from the shell, and ``retriever --help``.

    python benchmarks/core_speed.py ../shared/datasets/scifact --docs 400
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from retriever.encoding.auto import make_encoder
from retriever.encoding.cache import CachedEncoder, EmbeddingCache
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.eval.beir import load_beir
from retriever.eval.machine import provenance
from retriever.ingest.chunking import Chunker, encoding_text
from retriever.retriever import Retriever


def records_of(dataset, limit: int | None = None) -> list[dict]:
    docs = list(dataset.corpus.values())[:limit]
    return [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in docs]


def throughput(encoder: Encoder, records: list[dict], rounds: int) -> dict:
    """Passages per second of plain encode and of a full index build, alternating."""
    from retriever.ingest.documents import document_from_record

    docs = [document_from_record(r, "bench") for r in records]
    chunker = Chunker(encoder.tokenizer, encoder.max_seq_length, 32)
    texts = [encoding_text(d.title, p.text) for d, ps in zip(docs, chunker.split_many(docs)) for p in ps]
    plain, engine = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        encoder.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        plain.append(len(texts) / (time.perf_counter() - started))
        workdir = Path(tempfile.mkdtemp())
        started = time.perf_counter()
        Retriever.build(records, index_dir=workdir / "index", encoder=encoder)
        engine.append(len(texts) / (time.perf_counter() - started))
        shutil.rmtree(workdir)
    return {
        "documents": len(records),
        "passages": len(texts),
        "plain_encode_passages_per_second": plain,
        "index_passages_per_second": engine,
        "ratio": float(np.median(engine) / np.median(plain)),
    }


def latency(dataset, index_dir: Path, encoder: Encoder, cache: Path, rounds: int) -> dict:
    """Warm search latency over the full corpus, with the time spent in each stage."""
    cached = CachedEncoder.wrap(encoder, EmbeddingCache(cache))
    retriever = Retriever.build(records_of(dataset), index_dir=index_dir, encoder=cached, progress=True)
    queries = list(dataset.queries.values())[:300]
    retriever.search(queries[0])
    pct = lambda xs: {"p50": float(np.percentile(xs, 50)), "p95": float(np.percentile(xs, 95))}  # noqa: E731
    out: dict = {"passages": retriever.snapshot.passages, "ann": retriever.info()["ann"]["kind"],
                 "backend": "-".join(v for v in (encoder.backend, encoder.quantize) if v and v != "none")}
    encode, ann = [], []
    for query in queries:
        t0 = time.perf_counter()
        vector = retriever.encoder.encode_queries([query])
        t1 = time.perf_counter()
        retriever.snapshot.dense(vector, 40)
        encode.append((t1 - t0) * 1000)
        ann.append((time.perf_counter() - t1) * 1000)
    out["query_encoding_ms"], out["ann_lookup_ms"] = pct(encode), pct(ann)
    modes = ("dense", "hybrid", "lexical")
    total: dict[str, list[float]] = {mode: [] for mode in modes}
    read: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(rounds):  # interleaved query by query, so that a busy moment hits every mode and variant
        for query in queries:
            for mode in modes:
                started = time.perf_counter()
                retriever.search(query, k=10, mode=mode)  # the hits' text only
                total[mode].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                [(hit.snippet, hit.highlights) for hit in retriever.search(query, k=10, mode=mode)]
                read[mode].append((time.perf_counter() - started) * 1000)
    for mode in modes:
        out[f"search_{mode}_ms"], out[f"search_{mode}_with_snippets_ms"] = pct(total[mode]), pct(read[mode])
    return out


def cold_cli(index_dir: Path) -> dict:
    exe = str(Path(sys.executable).with_name("retriever"))
    out = {}
    for name, args in {
        "help_seconds": [exe, "--help"],
        "cold_search_seconds": [exe, "search", "vitamin D and bone density", "--index", str(index_dir), "-k", "5"],
    }.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        out[name] = float(np.median(times))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="BEIR folder, e.g. ../shared/datasets/scifact")
    parser.add_argument("--docs", type=int, default=400, help="documents for the throughput comparison")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/retriever/embeddings")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/core_speed.json"))
    parser.add_argument("--backend", default=None,
                        help="encoder runtime (default: auto, as for a new index: measured on this machine)")
    args = parser.parse_args()
    dataset = load_beir(args.dataset, "test")
    encoder = make_encoder(DEFAULT_MODEL, args.backend)
    result = {**provenance(), "throughput": throughput(encoder, records_of(dataset, args.docs), args.rounds)}
    print(json.dumps(result["throughput"], indent=2), flush=True)
    index_dir = Path(tempfile.mkdtemp()) / "scifact"
    result["latency"] = latency(dataset, index_dir, encoder, args.cache, args.rounds)
    print(json.dumps(result["latency"], indent=2), flush=True)
    result["cli"] = cold_cli(index_dir)
    print(json.dumps(result["cli"], indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(index_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
