"""How the engine's storage and search scale: 10k, 100k and 1M passages, with the model taken out.

    python benchmarks/scale.py                               # 10k, 100k, 1M (about an hour on 2 cores)
    python benchmarks/scale.py --sizes 10000 --ann ivf-pq    # one size, one vector index
    python benchmarks/scale.py --smoke                       # 2,000 passages, seconds (run by the test suite)

Passages are synthetic: 20-60 words drawn from a Zipf distribution over a 30,000-word vocabulary (a seeded
generator, so every run sees the same corpus), one passage per document. Vectors come from
``retriever.encoding.synthetic.SyntheticEncoder`` (the documented hook that bypasses the model: a bag of random
word vectors), so what is timed is the engine's own work: chunking, storage, vector index, BM25, merges.
Queries are 2-5 words of random passages.

For each size it reports build time, disk size, the time to open the index, the resident memory of a fresh
process that opened it and ran the searches, p50/p95 latency of dense, lexical and hybrid search *excluding
query encoding*, and the time to add 1, add 1,000 and delete 1,000 documents (merges included). The search
phase runs in a subprocess so that its memory is its own. Results: ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from retriever.eval.machine import provenance

VOCABULARY = 30_000
QUERIES = 200


@functools.lru_cache(maxsize=4)  # ~1 s a call, and a smoke run asks for the same vocabulary eight times
def words(seed: int) -> tuple[str, ...]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return tuple("".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(VOCABULARY))


def passages(n: int, start: int = 0, seed: int = 0) -> list[dict]:
    """Records ``p<start>``..: deterministic Zipf-distributed texts."""
    vocabulary = words(seed)
    rng = np.random.default_rng(seed + 1 + start)
    lengths = rng.integers(20, 61, size=n)
    ranks = np.minimum(rng.zipf(1.15, size=int(lengths.sum())), VOCABULARY) - 1
    out, at = [], 0
    for i, length in enumerate(lengths):
        text = " ".join(vocabulary[r] for r in ranks[at:at + length])
        out.append({"_id": f"p{start + i}", "text": text})
        at += length
    return out


def queries_for(records: list[dict], seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(records), size=min(QUERIES, len(records)), replace=False)
    out = []
    for i in chosen:
        terms = records[i]["text"].split()
        start = rng.integers(0, max(1, len(terms) - 5))
        out.append(" ".join(terms[start:start + int(rng.integers(2, 6))]))
    return out


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


# phases -----------------------------------------------------------------------------------------------------
def build(index_dir: Path, size: int, ann: str, batch: int = 100_000) -> dict:
    from retriever import Retriever
    from retriever.encoding.synthetic import SyntheticEncoder

    encoder = SyntheticEncoder()
    started = time.perf_counter()
    retriever = None
    for start in range(0, size, batch):  # records are made in batches so the corpus is never all in memory
        records = passages(min(batch, size - start), start)
        if retriever is None:
            retriever = Retriever.build(records, index_dir=index_dir, encoder=encoder, ann=ann)
        else:
            retriever.add(records)
    seconds = time.perf_counter() - started
    info = retriever.info()
    retriever.close()
    return {"build_seconds": seconds, "disk_bytes": info["size_bytes"], "segments": len(info["segments"]),
            "ann": info["ann"]["segments_by_kind"], "build_peak_rss_mb": peak_rss_mb()}


def search_phase(index_dir: Path, size: int) -> dict:
    """Run in a fresh process: open, search (encoding excluded), report memory and latency."""
    from retriever import Retriever
    from retriever.encoding.synthetic import SyntheticEncoder
    from retriever.search.ranking import SearchOptions, search_batch

    encoder = SyntheticEncoder()
    before = current_rss_mb()
    started = time.perf_counter()
    retriever = Retriever.load(index_dir, encoder=encoder)
    open_seconds = time.perf_counter() - started
    sample = passages(min(size, 5_000))
    queries = queries_for(sample)
    vectors = encoder.encode_queries(queries)
    out = {"open_seconds": open_seconds, "ram_bytes_per_passage": retriever.info()["ann"]["ram_bytes_per_passage"]}
    for mode in ("dense", "lexical", "hybrid"):
        options = SearchOptions(k=10, mode=mode)
        search_batch(queries[:1], vectors[:1], options, retriever.snapshot)  # warm-up
        times = []
        for query, vector in zip(queries, vectors):
            t0 = time.perf_counter()
            search_batch([query], vector[None, :], options, retriever.snapshot)
            times.append((time.perf_counter() - t0) * 1000)
        out[f"{mode}_ms"] = pct(times)
    exact = retriever.snapshot.dense(vectors, 10, exact=True)
    found = retriever.snapshot.dense(vectors, 10)
    out["dense_recall_at_10"] = float(np.mean([len({c[0] for c in f} & {c[0] for c in e}) / max(1, len(e))
                                               for f, e in zip(found, exact)]))
    out["rss_search_mb"] = current_rss_mb()
    out["rss_before_open_mb"] = before
    return out


def write_phase(index_dir: Path, size: int) -> dict:
    from retriever import Retriever
    from retriever.encoding.synthetic import SyntheticEncoder

    retriever = Retriever.load(index_dir, encoder=SyntheticEncoder())
    out = {}
    adds = []
    for i in range(5):  # one document at a time, five times: the median is the cost of a write
        record = passages(1, start=size + 10 * i, seed=3)[0]
        t0 = time.perf_counter()
        retriever.add([record])
        adds.append(time.perf_counter() - t0)
    out["add_1_seconds"] = float(np.median(adds))
    thousand = passages(1_000, start=size + 100, seed=4)
    t0 = time.perf_counter()
    retriever.add(thousand)
    out["add_1000_seconds"] = time.perf_counter() - t0
    step = max(1, size // 1_000)  # 1,000 documents spread over the whole index, so most segments change
    doomed = [f"p{i}" for i in range(0, size, step)][:1_000]
    t0 = time.perf_counter()
    removed = retriever.remove(doomed)
    out["delete_1000_seconds"] = time.perf_counter() - t0
    out["deleted"] = removed
    out["segments_after_writes"] = len(retriever.manifest.segments)
    retriever.close()
    return out


def run_size(size: int, ann: str, workdir: Path) -> dict:
    index_dir = workdir / f"scale-{size}"
    shutil.rmtree(index_dir, ignore_errors=True)
    result = {"passages": size, "ann_requested": ann}
    result.update(build(index_dir, size, ann))
    child = subprocess.run([sys.executable, __file__, "--phase", "search", "--index", str(index_dir),
                            "--sizes", str(size)], capture_output=True, text=True, check=True)
    result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    result.update(write_phase(index_dir, size))
    shutil.rmtree(index_dir, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--ann", default="auto", help="vector index kind for every size (default: auto)")
    parser.add_argument("--smoke", action="store_true", help="2,000 passages, for the test suite")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scale.json"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--phase", choices=["all", "search"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = [2_000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    if args.phase == "search":
        print(json.dumps(search_phase(args.index, sizes[0])))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="retriever-scale-"))
    results = []
    for size in sizes:
        result = run_size(size, args.ann, workdir)
        results.append(result)
        print(json.dumps(result), flush=True)
    report = {"results": results, **provenance()}
    if not args.smoke:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
