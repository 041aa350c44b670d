"""How many passages a first search fetches per document: 4 in every index, against the index's own mean.

    python benchmarks/first_probe.py --index indexes/scifact --queries ../shared/datasets/scifact/queries.jsonl \
        --label SciFact
    python benchmarks/first_probe.py --synthetic 100000      # benchmarks/scale.py's corpus, synthetic encoder

Hybrid search fuses 100 documents a side; a document can have several passages, so the engine fetched
``4 x 100`` passages a side and searched deeper when those held fewer than 100 documents. It now fetches the
index's mean passages per document times 1.25 (``retriever.search.ranking.first_probe``). For each query, the
two are run one after the other (the order alternating), on the same open index: CPU time of the dense side,
the lexical side and the whole hybrid search (query encoding excluded), how many searches had to go deeper, and
whether the hits are the same. Writes ``benchmarks/results/first_probe.json`` (one entry per index in ``runs``,
replaced when rerun).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retriever.eval.machine import provenance  # noqa: E402
from retriever.search import ranking  # noqa: E402

FOUR_PER_DOCUMENT = ("four_per_document", lambda snapshot, depth, passages: depth if passages else 4 * depth)
MEAN = ("mean_x1.25", ranking.first_probe)


def open_index(args: argparse.Namespace) -> tuple[object, list[str], str]:
    from retriever import Retriever

    if args.synthetic:
        from benchmarks.scale import build, passages, queries_for
        from retriever.encoding.synthetic import SyntheticEncoder

        folder = Path(args.workdir) / f"synthetic-{args.synthetic}"
        if not (folder / "CURRENT").exists():
            build(folder, args.synthetic, "auto")
        return (Retriever.load(folder, encoder=SyntheticEncoder()), queries_for(passages(args.synthetic))[:args.limit],
                f"synthetic {args.synthetic:,} passages")
    queries = [json.loads(line)["text"] for line in Path(args.queries).read_text().splitlines()][:args.limit]
    return Retriever.load(args.index), queries, args.label or str(args.index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="an index folder, searched with its own encoder")
    parser.add_argument("--queries", help="BEIR queries.jsonl for --index")
    parser.add_argument("--synthetic", type=int, help="instead: benchmarks/scale.py's corpus of this many passages")
    parser.add_argument("--workdir", default="/tmp/first-probe")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--label", help="the index's name in the results (default: its path)")
    parser.add_argument("--output", default="benchmarks/results/first_probe.json")
    args = parser.parse_args()
    retriever, queries, label = open_index(args)
    snapshot = retriever.snapshot
    vectors = retriever.encoder.encode_queries(queries)
    depth = ranking.HYBRID_DEPTH
    figures: dict[str, dict[str, list[float]]] = {name: {"dense_ms": [], "lexical_ms": [], "hybrid_ms": []}
                                                 for name, _ in (FOUR_PER_DOCUMENT, MEAN)}
    searches = {name: 0 for name, _ in (FOUR_PER_DOCUMENT, MEAN)}
    different = 0
    original_dense = snapshot.dense

    def counted(*a: object, **kw: object) -> object:
        searches[current] += 1
        return original_dense(*a, **kw)

    current = MEAN[0]
    snapshot.dense = counted
    for warm in queries[:5]:
        retriever.search(warm, mode="hybrid")
    searches = dict.fromkeys(searches, 0)
    for i, query in enumerate(queries):
        hits = {}
        for name, probe in ((FOUR_PER_DOCUMENT, MEAN) if i % 2 == 0 else (MEAN, FOUR_PER_DOCUMENT)):
            current = name
            ranking.first_probe = probe
            started = time.process_time()
            ranking.dense_candidates(snapshot, vectors[i:i + 1], depth, False, None)
            figures[name]["dense_ms"].append((time.process_time() - started) * 1000)
            started = time.process_time()
            ranking.lexical_candidates(snapshot, [query], depth, False, None)
            figures[name]["lexical_ms"].append((time.process_time() - started) * 1000)
            started = time.process_time()
            found = ranking.search_batch([query], vectors[i:i + 1], ranking.SearchOptions(), snapshot)
            figures[name]["hybrid_ms"].append((time.process_time() - started) * 1000)
            hits[name] = [(h.doc_id, round(h.score, 6)) for h in found[0]]
        different += hits[FOUR_PER_DOCUMENT[0]] != hits[MEAN[0]]
    ranking.first_probe = MEAN[1]
    entry = {
        "index": label,
        "documents": snapshot.documents,
        "passages": snapshot.passages,
        "queries": len(queries),
        "probe": {name: MEAN[1](snapshot, depth, False) if name == MEAN[0] else 4 * depth for name in figures},
        "cpu_ms_p50": {name: {key: statistics.median(values) for key, values in found.items()}
                       for name, found in figures.items()},
        "dense_searches": searches,
        "queries_with_different_hits": different,
    }
    entry["hybrid_ratio"] = entry["cpu_ms_p50"][MEAN[0]]["hybrid_ms"] / entry["cpu_ms_p50"][FOUR_PER_DOCUMENT[0]][
        "hybrid_ms"]
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {"runs": []}
    results.update(provenance())
    results["runs"] = [run for run in results["runs"] if run["index"] != label] + [{**entry, **provenance()}]
    output.write_text(json.dumps(results, indent=1) + "\n")
    machine = results["machine"]
    old, new = entry["cpu_ms_p50"][FOUR_PER_DOCUMENT[0]], entry["cpu_ms_p50"][MEAN[0]]
    print(f"{machine['cpu']} ({machine['isa']}) {label}: hybrid CPU ms p50 {old['hybrid_ms']:.2f} -> "
          f"{new['hybrid_ms']:.2f} ({entry['hybrid_ratio']:.2f}x); dense side {old['dense_ms']:.2f} -> "
          f"{new['dense_ms']:.2f}; searches {searches}; queries with other hits: {different}")


if __name__ == "__main__":
    main()
