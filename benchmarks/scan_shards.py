"""The 8-bit scan of a flat segment, before and after integer codes and shards (issue 18, item 4).

    python benchmarks/scan_shards.py --sizes 50000 --queries 200    # writes benchmarks/results/scan_shards.json

One flat segment of synthetic passages (the scale benchmark's corpus and vectors), three ways to find its
candidates, each rescored exactly from the float16 rows as the engine does:

- ``uniform``: FAISS's uniform 8-bit quantizer, one scan (what ``scan.py`` built before);
- ``direct``: signed 8-bit codes scored in integers (``scan.Sq8Scan`` with one shard);
- ``direct-sharded``: the same codes in one shard per core, a query's shards scanned in parallel threads
  (``scan.Sq8Scan`` as a segment opens it; on a 2-core machine two shards).

Each class runs in a child with ``benchmarks/cpu_caps.py``'s caps; queries go one at a time, the variants
interleaved per query so that machine load hits them alike. Wall and process CPU time (every thread) per
query; recall@10 against exact search over the float16 values, and whether each query's exact top 10 and top
125 (hybrid search's first probe) were all among the candidates the engine rescores.
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
    one, sharded = scan.Sq8Scan(vectors16, shards=1), scan.Sq8Scan(vectors16)
    faiss.omp_set_num_threads(1)
    finders = {
        "uniform": lambda q, fetch: uniform.search(q, fetch)[1],
        "direct": lambda q, fetch: one.candidates(q, fetch, None, parallel=True)[1],
        "direct-sharded": lambda q, fetch: sharded.candidates(q, fetch, None, parallel=True)[1],
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
        "size": size, "queries": len(asked), "cores": cores(), "shards": len(sharded.shards), "caps": caps,
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
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scan_shards.json"))
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
