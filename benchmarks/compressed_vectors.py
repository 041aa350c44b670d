"""Compressed vectors with exact rescoring (issue 10, items 5-6): RAM per passage, recall and latency by kind.

    python benchmarks/compressed_vectors.py ../shared/datasets/scifact                 # SciFact + 1M synthetic
    python benchmarks/compressed_vectors.py ../shared/datasets/scifact --synthetic 0   # SciFact only
    python benchmarks/compressed_vectors.py --synthetic 1000000                        # synthetic only

Every figure comes from ``retriever.index.vectors.SegmentVectors`` (one segment per kind):

- SciFact: the corpus is split into passages as ``Retriever`` does (the model's 256-token windows,
  32 tokens of overlap, title prefixed: 9,952 passages for 5,183 abstracts) and encoded once with
  all-MiniLM-L6-v2 through the embedding cache (about 10 minutes the first time); the queries are the
  300 test queries. Per kind: RAM bytes per passage (``ram_bytes``: the FAISS index, or the float32
  copy for flat), recall@10 against exact search over the float16 vectors before rescoring (the ANN's
  own top 10) and after (``search``), single-query p50/p95 ms, build seconds. Sweeps of the rescoring
  depth and of nprobe show where the defaults come from. Masks allowing 1, 5, 50 and 90% of the
  passages check that every query gets min(k, allowed) results.
- Synthetic: ``synthetic_unit_vectors`` (a seeded generator: unit vectors around 1,024 centres, d=384)
  at 1M rows for ivf-pq and binary: build seconds, RAM (``ram_bytes`` and the growth of the process's
  RSS on open), p50, recall@10 on 200 queries, and filtered p50 through the exact path and the ANN path
  at several selectivities (where ``SELECTIVE_FRACTION`` comes from).

Results go to ``benchmarks/results/compressed_vectors.json``. Run it alone on the machine: every figure is
a timing or depends on one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from retriever.eval.machine import provenance
from retriever.index import vectors as vectors_module
from retriever.index.vectors import COMPRESSED_KINDS, SegmentVectors

K = 10
SCIFACT_KINDS = ("flat", "hnsw", "ivf", "ivf-pq", "sq8", "binary")
# (kind, params): ivf-pq with its default lists (4 sqrt(n) = 4,000 at 1M) and with sqrt(n) lists
SYNTHETIC_RUNS = (("ivf-pq", None), ("ivf-pq", {"nlist": 1024}), ("binary", None))
DEPTHS = (1, 2, 5, 10, 20, 50)
NPROBES = (8, 16, 32, 64)
MASK_FRACTIONS = (0.01, 0.05, 0.5, 0.9)
FILTER_FRACTIONS = (0.001, 0.01, 0.02, 0.05, 0.2, 0.5)
CHUNK_OVERLAP = 32  # as Retriever.build's default for a 256-token model


# ---------------------------------------------------------------- data


def scifact_vectors(dataset_path: Path, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(passage vectors, test query vectors, facts) for SciFact, encoded through the embedding cache."""
    from retriever.encoding.cache import CachedEncoder, EmbeddingCache
    from retriever.encoding.encoder import Encoder
    from retriever.eval.beir import load_beir
    from retriever.ingest.chunking import Chunker, encoding_text

    dataset = load_beir(dataset_path, "test")
    encoder = Encoder()
    cached = CachedEncoder.wrap(encoder, EmbeddingCache(cache_dir) if cache_dir else EmbeddingCache())
    chunker = Chunker(encoder.tokenizer, encoder.max_seq_length, min(CHUNK_OVERLAP, encoder.max_seq_length // 4))
    docs = list(dataset.corpus.values())
    texts = [encoding_text(p.title, p.text) for ps in chunker.split_many(docs) for p in ps]
    passages = cached.encode_documents(texts, progress=True)
    query_ids = sorted(q for q in dataset.qrels if q in dataset.queries)
    queries = encoder.encode_queries([dataset.queries[q] for q in query_ids])
    facts = {
        "documents": len(docs),
        "passages": len(texts),
        "queries": len(query_ids),
        "model": encoder.name,
        "encode_seconds": cached.last_encode.get("seconds"),
        "chunking": {"max_tokens": encoder.max_seq_length, "overlap_tokens": chunker.overlap, "title_prefix": True},
    }
    return passages, queries, facts


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_unit_vectors(rows: int, dim: int = 384, seed: int = 0, centres: int = 1024) -> np.ndarray:
    """Deterministic unit vectors with cluster structure, as embeddings have (uniform random vectors have
    no near neighbours, which no ANN and no real corpus looks like). Generated in blocks of 100,000 rows,
    each from its own seed, so any prefix is the same whatever ``rows`` is."""
    centre_vectors = np.random.default_rng([seed, 0]).standard_normal((centres, dim)).astype(np.float32)
    out = np.empty((rows, dim), np.float32)
    for block, start in enumerate(range(0, rows, 100_000)):
        stop = min(start + 100_000, rows)
        rng = np.random.default_rng([seed, block + 1])
        assign = rng.integers(0, centres, stop - start)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        out[start:stop] = _unit(centre_vectors[assign] + noise)
    return out


def near_queries(vectors: np.ndarray, count: int, seed: int = 1, noise: float = 0.5) -> np.ndarray:
    """Queries near stored rows (a row plus noise), as a query is near the passages that answer it."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), count)]
    return _unit(picked + noise / np.sqrt(vectors.shape[1]) * rng.standard_normal(picked.shape, dtype=np.float32))


def exact_top(vectors16: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Reference top-k rows by inner product with the float16 vectors, computed independently of the module."""
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best_rows = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors16), 100_000):
        block = np.asarray(vectors16[start : start + 100_000], dtype=np.float32)
        scores = queries @ block.T
        if allowed is not None:
            scores[:, ~allowed[start : start + len(block)]] = -np.inf
        scores = np.hstack([best_scores, scores])
        rows = np.hstack([best_rows, np.broadcast_to(np.arange(start, start + len(block)), (len(queries), len(block)))])
        top = np.argsort(-scores, axis=1)[:, :k]
        best_scores, best_rows = np.take_along_axis(scores, top, 1), np.take_along_axis(rows, top, 1)
    return best_rows


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


def latency_ms(segment: SegmentVectors, queries: np.ndarray, allowed: np.ndarray | None = None) -> dict:
    """Single-query search latency (the way an interactive search calls it), after a warm-up."""
    for query in queries[:5]:
        segment.search(query[None], K, allowed)
    times = []
    for query in queries:
        started = time.perf_counter()
        segment.search(query[None], K, allowed)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 3), "p95": round(float(np.percentile(times, 95)), 3)}


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def with_params(folder: Path, meta: dict, **params: Any) -> SegmentVectors:
    """The same segment opened with other search-time parameters (depth, nprobe): no rebuild."""
    return SegmentVectors.open(folder, {**meta, "params": {**meta["params"], **params}})


# ---------------------------------------------------------------- measurements


def measure_kind(
    kind: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, workdir: Path, params: dict | None = None
) -> tuple[dict, Path, dict]:
    """Build, open and search one kind: the figures, and the segment's folder and meta for further sweeps."""
    folder = workdir / (kind.replace(",", "_") + "".join(f"-{k}{v}" for k, v in (params or {}).items()))
    started = time.perf_counter()
    meta = SegmentVectors.write(folder, vectors, kind, params)
    build = time.perf_counter() - started
    rss_before = rss_bytes()
    started = time.perf_counter()
    segment = SegmentVectors.open(folder, meta)
    opened = time.perf_counter() - started
    rss_growth = rss_bytes() - rss_before
    started = time.perf_counter()
    _, batch_rows = segment.search(queries, K)
    batch = time.perf_counter() - started
    out = {
        "kind": meta["kind"],
        "factory": meta["factory"],
        "params": meta["params"],
        "rows": len(segment),
        "ram_bytes": segment.ram_bytes,
        "ram_bytes_per_passage": round(segment.ram_bytes / len(segment), 1),
        "rss_growth_on_open_bytes": rss_growth,
        "disk_bytes": sum(f["bytes"] for f in meta["files"].values()),
        "build_seconds": round(build, 3),
        "open_seconds": round(opened, 4),
        "recall@10_before_rescoring": round(recall(segment.candidates(queries, K), truth), 4),
        "recall@10_after_rescoring": round(recall(batch_rows, truth), 4),
        "search_ms": latency_ms(segment, queries),
        "batch_ms_per_query": round(batch * 1000 / len(queries), 3),
    }
    print(json.dumps({folder.name: out}), flush=True)
    return out, folder, meta


def depth_sweep(folder: Path, meta: dict, queries: np.ndarray, truth: np.ndarray) -> dict:
    out = {}
    for depth in DEPTHS:
        segment = with_params(folder, meta, depth=depth)
        out[str(depth)] = {
            "recall@10": round(recall(segment.search(queries, K)[1], truth), 4),
            "search_ms": latency_ms(segment, queries[:100]),
        }
    return out


def nprobe_sweep(folder: Path, meta: dict, queries: np.ndarray, truth: np.ndarray) -> dict:
    out = {}
    for nprobe in NPROBES:
        segment = with_params(folder, meta, nprobe=nprobe)
        out[str(nprobe)] = {
            "recall@10": round(recall(segment.search(queries, K)[1], truth), 4),
            "search_ms": latency_ms(segment, queries[:100]),
        }
    return out


def mask_check(segment: SegmentVectors, vectors16: np.ndarray, queries: np.ndarray) -> dict:
    """Masks at several selectivities: results per query (must be min(k, allowed)) and recall vs filtered exact."""
    out = {}
    rng = np.random.default_rng(7)
    for fraction in MASK_FRACTIONS:
        allowed = rng.random(len(segment)) < fraction
        _, rows = segment.search(queries, K, allowed)
        want = min(K, int(allowed.sum()))
        out[str(fraction)] = {
            "allowed": int(allowed.sum()),
            "short_queries": int(((rows >= 0).sum(axis=1) < want).sum()),
            "results_outside_filter": int((~allowed[rows[rows >= 0]]).sum()),
            "recall@10": round(recall(rows, exact_top(vectors16, queries, K, allowed)), 4),
        }
    return out


def filtered_paths(segment: SegmentVectors, queries: np.ndarray) -> dict:
    """p50 of a filtered search through the exact path and through the ANN path, at several selectivities."""
    out = {}
    rng = np.random.default_rng(11)
    saved = vectors_module.SELECTIVE_FRACTION, vectors_module.SELECTIVE_ROWS
    try:
        for fraction in FILTER_FRACTIONS:
            allowed = rng.random(len(segment)) < fraction
            row = {"allowed": int(allowed.sum())}
            for path, settings in (("exact", (1.0, 0)), ("ann", (0.0, 0))):
                vectors_module.SELECTIVE_FRACTION, vectors_module.SELECTIVE_ROWS = settings
                row[f"{path}_ms"] = latency_ms(segment, queries, allowed)
            out[str(fraction)] = row
            print(json.dumps({"filtered": {fraction: row}}), flush=True)
    finally:
        vectors_module.SELECTIVE_FRACTION, vectors_module.SELECTIVE_ROWS = saved
    return out


def run_scifact(dataset: Path, cache: Path | None, workdir: Path) -> dict:
    passages, queries, facts = scifact_vectors(dataset, cache)
    vectors16 = passages.astype(np.float16)
    truth = exact_top(vectors16, queries, K)
    result: dict = {"data": facts, "kinds": {}}
    for kind in SCIFACT_KINDS:
        out, folder, meta = measure_kind(kind, passages, queries, truth, workdir)
        segment = SegmentVectors.open(folder, meta)
        if meta["kind"] in COMPRESSED_KINDS:
            out["depth_sweep"] = depth_sweep(folder, meta, queries, truth)
        if meta["kind"] in ("ivf", "ivf-pq"):
            out["nprobe_sweep"] = nprobe_sweep(folder, meta, queries, truth)
        out["masks"] = mask_check(segment, vectors16, queries)
        result["kinds"][kind] = out
        print(json.dumps({kind: {k: out[k] for k in out if k.endswith("sweep") or k == "masks"}}), flush=True)
    return result


def run_synthetic(rows: int, n_queries: int, workdir: Path) -> dict:
    started = time.perf_counter()
    vectors = synthetic_unit_vectors(rows)
    generated = time.perf_counter() - started
    queries = near_queries(vectors, n_queries)
    truth = exact_top(vectors.astype(np.float16), queries, K)
    result: dict = {"rows": rows, "dimension": vectors.shape[1], "queries": n_queries,
                    "generate_seconds": round(generated, 1), "kinds": {}}
    for kind, params in SYNTHETIC_RUNS:
        out, folder, meta = measure_kind(kind, vectors, queries, truth, workdir, params)
        if params is None:
            out["filtered"] = filtered_paths(SegmentVectors.open(folder, meta), queries[:50])
        result["kinds"][folder.name] = out
        for path in folder.iterdir():
            path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, nargs="?", help="BEIR folder, e.g. ../shared/datasets/scifact")
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="rows of the synthetic run (0: none)")
    parser.add_argument("--synthetic-queries", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (default ~/.cache/retriever)")
    parser.add_argument("--workdir", type=Path, default=None, help="where segments are written (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/compressed_vectors.json"))
    args = parser.parse_args()
    import faiss

    workdir = Path(tempfile.mkdtemp(dir=args.workdir))
    result: dict = {
        **provenance(),
        "packages": {"numpy": np.__version__, "faiss": faiss.__version__},
        "k": K,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.dataset:
        result["scifact"] = run_scifact(args.dataset, args.cache, workdir)
        args.output.write_text(json.dumps(result, indent=2) + "\n")  # kept if the synthetic run fails
    if args.synthetic:
        result["synthetic"] = run_synthetic(args.synthetic, args.synthetic_queries, workdir)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
