"""The 8-bit scan of a flat segment: uniform codes against signed integer codes, and split across threads (issue 18).

    python benchmarks/scan_codes.py --sizes 50000,100000 --queries 200    # writes benchmarks/results/scan_codes.json

One flat segment of synthetic passages (the scale benchmark's corpus and vectors), four ways to find its
candidates, each rescored exactly from the float16 rows as the engine does:

- ``uniform``: FAISS's uniform 8-bit quantizer (what ``scan.py`` built before);
- ``direct``: signed 8-bit codes scored in integers (``scan.Sq8Scan``, what it builds now);
- ``direct, 2 Python threads``: the same codes in two halves, a query's halves scanned on a two-thread pool
  (FAISS releases the GIL) and merged by their approximate scores;
- ``direct, 2 FAISS threads``: the two halves under a threaded ``faiss.IndexShards`` (C++ threads, no GIL).

The two split variants are what a second core could add to one query; the engine does not split (the docs say
why). Each class runs in a child with ``benchmarks/cpu_caps.py``'s caps; queries go one at a time, the variants
interleaved per query so that machine load hits them alike. Wall and process CPU time (every thread) per query;
recall@10 against exact search over the float16 values, and whether each query's exact top 10 and top 125
(hybrid search's first probe) were all among the candidates rescored.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cpu_caps import CLASS_CAPS, confirm_caps  # noqa: E402
from benchmarks.scan_variants import corpus  # noqa: E402

DEPTHS = (10, 125)


def child(size: int, queries: int) -> dict:
    import faiss

    from retriever.index import scan
    from retriever.index.vectors import best_first, exact_scores
    from retriever.machine import cores

    caps = confirm_caps()
    vectors16, asked = corpus(size, queries)
    rows = np.asarray(vectors16, dtype=np.float32)
    uniform = faiss.IndexScalarQuantizer(rows.shape[1], faiss.ScalarQuantizer.QT_8bit_uniform,
                                         faiss.METRIC_INNER_PRODUCT)
    uniform.train(rows[:: max(1, size // scan.TRAIN_ROWS)])
    uniform.add(rows)
    direct = scan.Sq8Scan(vectors16)
    halves = [scan.Sq8Scan(vectors16[: size // 2]), scan.Sq8Scan(vectors16[size // 2 :])]
    for half, part in zip(halves, (vectors16[: size // 2], vectors16[size // 2 :])):  # one scale for both
        half.scale = direct.scale
        half.index.reset()
        half.index.add(np.clip(np.rint(np.asarray(part, dtype=np.float32) * half.scale), -127, 127))
    threaded = faiss.IndexShards(rows.shape[1], True, True)  # threaded, successive ids
    for half in halves:
        threaded.add_shard(half.index)
    pool = ThreadPoolExecutor(2)
    faiss.omp_set_num_threads(1)

    def two_python_threads(q: np.ndarray, fetch: int) -> np.ndarray:
        found = list(pool.map(lambda half: half.candidates(q, fetch, None), halves))
        scores = np.hstack([s for s, _ in found])
        both = np.hstack([found[0][1], np.where(found[1][1] >= 0, found[1][1] + size // 2, -1)])
        return np.take_along_axis(both, np.argsort(-scores, axis=1, kind="stable")[:, :fetch], axis=1)

    finders = {
        "uniform": lambda q, fetch: uniform.search(q, fetch)[1],
        "direct": lambda q, fetch: direct.candidates(q, fetch, None)[1],
        "direct, 2 Python threads": two_python_threads,
        "direct, 2 FAISS threads": lambda q, fetch: threaded.search(scan.as_codes(q)[0], fetch)[1],
    }
    exact = np.argsort(-(asked @ rows.T), axis=1, kind="stable")
    times = {name: [] for name in finders}
    cpu = {name: [] for name in finders}
    recall = {name: 0.0 for name in finders}
    covered = {name: {depth: 0 for depth in DEPTHS} for name in finders}
    for find in finders.values():  # warm-up
        find(asked[:1], 100)
    for i in range(len(asked)):
        q = asked[i : i + 1]
        for name, find in finders.items():
            t0, c0 = time.perf_counter(), time.process_time()
            candidates = find(q, scan.sq8_fetch(10, size))
            _, top = best_first(exact_scores(q, vectors16, candidates), candidates, 10)
            times[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.process_time() - c0) * 1000)
            recall[name] += len(set(top[0]) & set(exact[i, :10])) / 10
            for depth in DEPTHS:  # outside the timing: the deeper fetch of hybrid search's first probe
                fetched = candidates if depth == 10 else find(q, scan.sq8_fetch(depth, size))
                covered[name][depth] += set(exact[i, :depth]) <= set(fetched[0])
    return {
        "size": size, "queries": len(asked), "cores": cores(), "caps": caps,
        "variants": {name: {"p50_ms": float(np.median(times[name])), "p95_ms": float(np.percentile(times[name], 95)),
                            "cpu_p50_ms": float(np.median(cpu[name])), "recall_at_10": recall[name] / len(asked),
                            **{f"top{depth}_all_fetched": covered[name][depth] / len(asked) for depth in DEPTHS}}
                     for name in finders},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--classes", default="AVX2,native", help=f"of {', '.join(CLASS_CAPS)}")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scan_codes.json"))
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queries)))
        return
    from retriever.eval.machine import provenance
    from retriever.machine import cpu_flags, isa_class

    native = isa_class(cpu_flags())
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.classes.split(","):
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, __file__, "--child", str(size), "--queries", str(args.queries)],
                                 env={**os.environ, **CLASS_CAPS[name]}, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"child failed under {name}:\n{out.stderr[-3000:]}")
            record = {"class": native if name == "native" else name, "capped": name != "native",
                      "load_average_1min": [load, os.getloadavg()[0]],
                      **json.loads(out.stdout.strip().splitlines()[-1])}
            results.append(record)
            print(json.dumps(record), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"results": results, **provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
