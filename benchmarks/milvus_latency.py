"""Search latency of the local store and Milvus Lite on SciFact, interleaved query by query.

    python benchmarks/milvus_latency.py ../shared/datasets/scifact

Both stores are built from the same cached embeddings (``retriever bench`` fills the cache) with ``--ann flat``;
each of the 300 test queries is then searched in each mode on the local index and on the Milvus one alternately,
so that a burst of load on a shared machine hits both alike. Query encoding is done once beforehand and excluded
(it is the same model call for both stores). Writes ``benchmarks/results/milvus_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from retriever.eval.machine import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/milvus_latency.json"))
    args = parser.parse_args()

    from retriever.encoding.cache import CachedEncoder, EmbeddingCache
    from retriever.encoding.encoder import Encoder
    from retriever.eval.beir import load_beir
    from retriever.retriever import Retriever
    from retriever.search.ranking import SearchOptions, search_batch

    dataset = load_beir(args.dataset, "test")
    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    queries = [dataset.queries[q] for q in sorted(dataset.qrels) if q in dataset.queries]
    workdir = Path(tempfile.mkdtemp(prefix="milvus-latency-"))
    try:
        encoder = CachedEncoder.wrap(Encoder(), EmbeddingCache())
        stores = {}
        for name, store in (("local", None), ("milvus", f"milvus:{workdir / 'store.db'}")):
            started = time.perf_counter()
            stores[name] = Retriever.build(records, index_dir=workdir / name, encoder=encoder, ann="flat", store=store)
            print(name, "built in", round(time.perf_counter() - started, 1), "s", flush=True)
        vectors = encoder.encode_queries(queries)
        report = {"dataset": str(args.dataset), "queries": len(queries), "ann": "flat",
                  "passages": stores["local"].manifest.counts["passages"], "modes": {}, **provenance()}
        for mode in ("dense", "lexical", "hybrid"):
            options = SearchOptions(k=10, mode=mode)
            times: dict[str, list[float]] = {"local": [], "milvus": []}
            for name in times:  # warm-up
                search_batch(queries[:1], vectors[:1], options, stores[name].snapshot)
            for i, (query, vector) in enumerate(zip(queries, vectors)):
                order = ("local", "milvus") if i % 2 == 0 else ("milvus", "local")
                for name in order:
                    started = time.perf_counter()
                    search_batch([query], vector[None, :], options, stores[name].snapshot)
                    times[name].append((time.perf_counter() - started) * 1000)
            report["modes"][mode] = {
                name: {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95))}
                for name, t in times.items()}
            report["modes"][mode]["p50_ratio"] = report["modes"][mode]["milvus"]["p50_ms"] / \
                report["modes"][mode]["local"]["p50_ms"]
            print(mode, report["modes"][mode], flush=True)
        for retriever in stores.values():
            retriever.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
