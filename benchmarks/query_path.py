"""Where the time of encoding one short query goes, and what the engine's query path saves.

Measures, in one process and interleaved call by call (so a busy moment hits every variant):
sentence-transformers' ``encode_query`` of one query, this engine's ``Encoder.encode_queries``
(torch backend: tokenize with the model's own preprocessing, then the forward pass, without
``encode``'s per-call set-up), the two parts of the latter alone (tokenization, forward pass),
and ``encode_queries`` with every other installed backend. A cProfile of ``encode_query`` shows
what its per-call set-up is.

    python benchmarks/query_path.py ../shared/datasets/scifact --queries 200
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path

import numpy as np

from retriever.eval.machine import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a BEIR folder (its queries.jsonl is used)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="onnx,onnx-int8,openvino,openvino-int8")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/query_path.json"))
    args = parser.parse_args()

    import torch

    from retriever.encoding.backends import parse_backend_label
    from retriever.encoding.encoder import Encoder

    queries = [json.loads(line)["text"] for line in (args.dataset / "queries.jsonl").open()][: args.queries]
    corpus = [json.loads(line) for _, line in zip(range(300), (args.dataset / "corpus.jsonl").open())]
    documents = [f"{d.get('title', '')}\n{d['text']}" for d in corpus]
    encoder = Encoder()
    model = encoder.model
    variants = {
        "sentence-transformers encode_query": lambda q: model.encode_query(
            [q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
        "engine encode_queries (torch)": lambda q: encoder.encode_queries([q]),
        "  tokenization alone": lambda q: model.preprocess([q], task="query"),
    }

    def forward(q: str) -> None:
        features = model.preprocess([q], task="query")
        started = time.perf_counter()
        with torch.inference_mode():
            model(features, task="query")
        return time.perf_counter() - started

    for label in (b for b in args.backends.split(",") if b):
        backend, quantize = parse_backend_label(label)
        other = Encoder(backend=backend, quantize=quantize)
        other.encode_documents(documents[:4])
        variants[f"engine encode_queries ({label})"] = lambda q, e=other: e.encode_queries([q])
    times: dict[str, list[float]] = {name: [] for name in [*variants, "  forward pass alone"]}
    for call in variants.values():
        call(queries[0])
    for query in queries:
        for name, call in variants.items():
            started = time.perf_counter()
            call(query)
            times[name].append(time.perf_counter() - started)
        times["  forward pass alone"].append(forward(query))
    report = {name: {"p50_ms": float(np.percentile(t, 50)) * 1000, "p95_ms": float(np.percentile(t, 95)) * 1000}
              for name, t in times.items()}
    for name, row in report.items():
        print(f"{name:42s} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms")

    profile = cProfile.Profile()
    profile.enable()
    for query in queries[:50]:
        variants["sentence-transformers encode_query"](query)
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(12)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {**provenance(), "queries": len(queries), "torch_threads": torch.get_num_threads(),
              "p50": report, "encode_query_profile_top": text.getvalue()[-4000:]}
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
