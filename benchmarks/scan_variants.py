"""Exploration (issue 18, item 4): ways to score one segment's vectors exactly or near-exactly, per CPU class.

What it found (100,000 synthetic passages, one segment; numbers in retriever/index/scan.py's docstring): the
8-bit scan rescored took half the time of the float32 product with recall@10 1.0 on AVX2 and AVX-512 alike;
every ANN that was faster (HNSW32 efSearch 128, IVF-SQ8, fast-scan PQ with 1,000 rescored) stayed below
recall@10 0.99 on these vectors (bags of random word vectors, harder for an ANN than real embeddings).

    python benchmarks/scan_variants.py --sizes 100000 --queries 100    # writes benchmarks/results/scan_variants.json

Each class runs in a child process with the instruction-set caps of ``benchmarks/cpu_caps.py`` set before
any library loads; every variant is timed one query at a time (as a search serves them), variants
interleaved per query, so machine load hits them alike. Recall@10 is against exact search over the float16
values. Prints one JSON line per (class, size).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cpu_caps import CLASS_CAPS, confirm_caps  # noqa: E402


def corpus(size: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    from benchmarks.scale import passages, queries_for
    from retriever.encoding.synthetic import SyntheticEncoder

    encoder = SyntheticEncoder()
    records = passages(size)
    vectors = encoder.encode_documents([r["text"] for r in records]).astype(np.float16)
    asked = encoder.encode_queries(queries_for(records[:5_000])[:queries])
    return vectors, np.ascontiguousarray(asked, dtype=np.float32)


def meta_flat(folder: Path) -> dict:
    """The meta of a flat segment written by ``child`` (kept beside it)."""
    return json.loads((folder / "meta.json").read_text())


def child(size: int, queries: int) -> dict:
    import faiss

    from retriever.index import vectors as vec
    from retriever.index.scan import SCAN_ENV

    caps = confirm_caps()
    vectors16, asked = corpus(size, queries)
    tmp = Path(os.environ["SCAN_TMP"])
    built: dict[str, vec.SegmentVectors] = {}
    for kind, params in (("flat", None), ("sq8", {"depth": 10}), ("hnsw", None)):
        meta = vec.SegmentVectors.write(tmp / f"{kind}-{size}", vectors16, kind, params)
        (tmp / f"{kind}-{size}" / "meta.json").write_text(json.dumps(meta))
        built[kind] = vec.SegmentVectors.open(tmp / f"{kind}-{size}", meta)
    os.environ[SCAN_ENV] = "fp32"  # the float32 copy flat segments held before the 8-bit scan
    flat = vec.SegmentVectors.open(tmp / f"flat-{size}", meta_flat(tmp / f"flat-{size}"))
    del os.environ[SCAN_ENV]
    d = vectors16.shape[1]
    faiss_flat = faiss.IndexFlatIP(d)
    faiss_flat.add(vectors16.astype(np.float32))
    sq_fp16 = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    sq_fp16.train(vectors16[:1000].astype(np.float32))
    sq_fp16.add(vectors16.astype(np.float32))
    sq8u = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT)
    sq8u.train(vectors16.astype(np.float32))
    sq8u.add(vectors16.astype(np.float32))
    factories = {}
    for factory in ("PQ48x4fs", "PQ96x4fs", f"IVF{int(np.sqrt(len(vectors16)))},SQ8"):
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors16[::4].astype(np.float32))
        index.add(vectors16.astype(np.float32))
        factories[factory] = index
    faiss.omp_set_num_threads(1)

    def rescored(index, fetch, params=None):
        def run(q, k):
            _, rows = index.search(q, fetch, params=params)
            return vec.best_first(vec.exact_scores(q, vectors16, rows), rows, k)
        return run

    def fp16_upcast(q, k):
        return flat._exact.__func__(_NoFlat(flat), q, k, None)

    variants = {
        "fp32-numpy (flat before)": lambda q, k: flat.search(q, k),
        "sq8u-scan (flat now)": lambda q, k: built["flat"].search(q, k),
        "fp16-upcast-numpy": fp16_upcast,
        "fp32-faiss-flat": rescored(faiss_flat, 18),
        "fp16-faiss-sq": rescored(sq_fp16, 18),
        "sq8-faiss+rescore100": lambda q, k: built["sq8"].search(q, k),
        "sq8u-faiss+rescore100": rescored(sq8u, 100),
        "hnsw32-ef128": lambda q, k: built["hnsw"].search(q, k),
    }
    ivf = next(name for name in factories if name.startswith("IVF"))
    for nprobe in (32, 64):
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        variants[f"{ivf} nprobe {nprobe}+rescore100"] = rescored(factories[ivf], 100, params)
    for factory in ("PQ48x4fs", "PQ96x4fs"):
        variants[f"{factory}+rescore1000"] = rescored(factories[factory], 1000)
    truth = flat.search(asked, 10, exact=True)[1]
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    hits: dict[str, float] = {name: 0.0 for name in variants}
    for run in variants.values():  # warm-up
        run(asked[:1], 10)
    for i in range(len(asked)):
        q = asked[i:i + 1]
        for name, run in variants.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            _, rows = run(q, 10)
            times[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.thread_time() - c0) * 1000)
            hits[name] += len(set(rows[0]) & set(truth[i])) / 10
    return {
        "size": size, "caps": caps,
        "variants": {name: {"p50_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95)),
                            "cpu_p50_ms": float(np.median(cpu[name])),
                            "recall_at_10": hits[name] / len(asked)} for name, t in times.items()},
    }


class _NoFlat:
    """A view of a flat segment without its float32 copy: exact search then upcasts float16 blocks."""

    def __init__(self, segment) -> None:
        self._segment = segment
        self._flat = None
        self._vectors16 = segment._vectors16

    def __len__(self) -> int:
        return len(self._segment)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--classes", default="AVX2,native")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scan_variants.json"))
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queries)))
        return
    import tempfile

    from retriever.eval.machine import provenance

    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.classes.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, **CLASS_CAPS.get(name, {}), "SCAN_TMP": tmp}
                out = subprocess.run([sys.executable, __file__, "--child", str(size), "--queries",
                                      str(args.queries)], env=env, capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    continue
                record = json.loads(out.stdout.strip().splitlines()[-1])
                record["class"] = name
                record["load_average_1min"] = os.getloadavg()[0]
                results.append(record)
                print(json.dumps(record), flush=True)
    args.output.write_text(json.dumps({"results": results, **provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
