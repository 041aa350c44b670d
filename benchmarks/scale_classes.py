"""Search latency at scale on each CPU class, for each way a flat segment can be scanned (issue 18, item 4).

    python benchmarks/scale_classes.py --sizes 10000,100000          # writes benchmarks/results/scale_classes.json

The corpus, queries and engine-only timing are those of ``benchmarks/scale.py`` (synthetic passages, vectors
from ``SyntheticEncoder``, query encoding excluded). Each index is built once; then, per class, a child
process with that class's instruction-set caps (``benchmarks/cpu_caps.py``, confirmed by reading back what
FAISS, NumPy and OpenBLAS dispatch to) opens it twice, once per flat scan (``RETRIEVER_FLAT_SCAN``: the
float32 copy and the 8-bit codes), and times dense and hybrid search one query at a time with the two
interleaved query by query, so that the load of a shared machine hits both alike. Recall@10 is against
exact search over the float16 vectors. The load average is recorded before and after each child, and each
query's CPU time (all the process's threads) beside its wall time: on a machine shared with other work the
wall time mostly measures the wait for a core, the CPU time the work itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cpu_caps import CLASS_CAPS, confirm_caps  # noqa: E402
from benchmarks.scale import build, current_rss_mb, passages, pct, queries_for  # noqa: E402
from retriever.eval.machine import provenance  # noqa: E402
from retriever.machine import cpu_flags, isa_class  # noqa: E402

SCANS = ("fp32", "sq8")
MODES = ("dense", "hybrid")


def recall_at_10(found: list, exact: list) -> float:
    return float(np.mean([len({c[0] for c in f} & {c[0] for c in e}) / max(1, len(e)) for f, e in zip(found, exact)]))


def scan_label(scan: str) -> str:
    """The table's row name: the 8-bit scan changed (signed codes, candidates pooled across segments) after the
    first runs in the results file, so its runs get a row of their own."""
    return "sq8 signed, pooled" if scan == "sq8" else scan


def search_child(index_dir: Path, size: int, queries: int) -> dict:
    """Open the index once per scan and time both, interleaved (runs in a child with the class's caps)."""
    from retriever import Retriever
    from retriever.encoding.synthetic import SyntheticEncoder
    from retriever.index.scan import SCAN_ENV
    from retriever.search.ranking import SearchOptions, search_batch

    load_before = os.getloadavg()
    caps = confirm_caps()
    encoder = SyntheticEncoder()
    texts = queries_for(passages(min(size, 5_000)))[:queries]
    vectors = encoder.encode_queries(texts)
    opened, out = {}, {}
    for scan in SCANS:
        os.environ[SCAN_ENV] = scan
        rss, started = current_rss_mb(), time.perf_counter()
        opened[scan] = Retriever.load(index_dir, encoder=encoder)
        ann = opened[scan].info()["ann"]
        out[scan] = {"open_seconds": time.perf_counter() - started, "rss_added_mb": current_rss_mb() - rss,
                     "ram_bytes_per_passage": ann["ram_bytes_per_passage"], "flat_scans": ann["flat_scans"],
                     "label": scan_label(scan)}
    truth = opened["fp32"].snapshot.dense(vectors, 10, exact=True)
    for scan, retriever in opened.items():
        out[scan]["dense_recall_at_10"] = recall_at_10(retriever.snapshot.dense(vectors, 10), truth)
    for mode in MODES:
        options = SearchOptions(k=10, mode=mode)
        times: dict[str, list[float]] = {scan: [] for scan in SCANS}
        cpu: dict[str, list[float]] = {scan: [] for scan in SCANS}
        for retriever in opened.values():  # warm-up
            search_batch(texts[:1], vectors[:1], options, retriever.snapshot)
        for text, vector in zip(texts, vectors):
            for scan, retriever in opened.items():
                t0, c0 = time.perf_counter(), time.process_time()
                search_batch([text], vector[None, :], options, retriever.snapshot)
                times[scan].append((time.perf_counter() - t0) * 1000)
                cpu[scan].append((time.process_time() - c0) * 1000)
        for scan in SCANS:
            out[scan][f"{mode}_ms"] = pct(times[scan])
            out[scan][f"{mode}_cpu_ms"] = pct(cpu[scan])
    for retriever in opened.values():
        retriever.close()
    return {"caps_confirmed": caps, "load_average_1min": [load_before[0], os.getloadavg()[0]], "scans": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--classes", default="AVX2,native", help=f"of {', '.join(CLASS_CAPS)}")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scale_classes.json"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        print(json.dumps(search_child(args.child, sizes[0], args.queries)))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="retriever-scale-classes-"))
    native = isa_class(cpu_flags())
    results = []
    for size in sizes:
        index_dir = workdir / f"scale-{size}"
        shutil.rmtree(index_dir, ignore_errors=True)
        built = build(index_dir, size, "auto")
        for name in args.classes.split(","):
            env = {**os.environ, **CLASS_CAPS[name]}
            child = subprocess.run([sys.executable, __file__, "--child", str(index_dir), "--sizes", str(size),
                                    "--queries", str(args.queries)], env=env, capture_output=True, text=True)
            if child.returncode:
                sys.exit(f"search child failed under {name}:\n{child.stderr[-3000:]}")
            record = {"passages": size, "class": native if name == "native" else name, "capped": name != "native",
                      "caps": CLASS_CAPS[name], "segments": built["ann"], "queries": args.queries,
                      **json.loads(child.stdout.strip().splitlines()[-1])}
            results.append(record)
            print(json.dumps(record), flush=True)
        shutil.rmtree(index_dir, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"results": results, **provenance()}, indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
