"""What RAG retrieval gives a prompt on SciFact: context_for against plain passages, MMR's cost, added latency.

For the judged test claims:

- the share of judged relevant documents whose text reaches a 1,000- and a 2,000-token context, built by
  ``Retriever.context_for`` (near-copies once, one neighbour on each side, merged; and with no neighbours)
  against the plain top passages in rank order in the same budget (the last one cut to fit, as
  ``context_for`` cuts its last);
- nDCG@10 of the default hybrid search and of MMR (``diversity``) at lambda 0.5, 0.7 and 0.9;
- the time highlights (``annotate``, then reading them) and context expansion (``context=1``) add to a k=10
  search: p50 and p95 per query, measured on their own over the same hits (wall clock and CPU time), with the
  load average.

Embeddings come from the cache that ``retriever bench`` fills, so a second run does not encode the corpus.

    python benchmarks/rag_context.py ../shared/datasets/scifact [--model DIR] [--queries N]
    python benchmarks/rag_context.py ../shared/datasets/scifact --latency-only [--repeats N]  # latency alone
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from retriever.encoding.cache import DEFAULT_CACHE_DIR, CachedEncoder, EmbeddingCache
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.eval.beir import load_beir, read_qrels
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate, judged_queries
from retriever.retriever import Retriever
from retriever.search.assembly import MIN_CUT_TOKENS
from retriever.search.context import ContextExpander, token_counter
from retriever.search.highlights import annotate
from retriever.search.ranking import hits_of, rank

BUDGETS = (1000, 2000)
LAMBDAS = (0.5, 0.7, 0.9)
CANDIDATES = 30  # passages context_for and the plain baseline draw from


def plain_passages(retriever: Retriever, query: str, budget: int, count: object) -> set[str]:
    """Documents whose text reaches a context of the top passages in rank order, the last one cut to fit."""
    reached, left = set(), budget
    for hit in retriever.search(query, k=CANDIDATES, passages=True):
        tokens = count(hit.text)
        if tokens > left and left < MIN_CUT_TOKENS:  # as context_for: no piece shorter than this
            break
        reached.add(hit.doc_id)  # all of it, or its first ``left`` tokens
        left -= tokens
        if left <= 0:
            break
    return reached


def reach(retriever: Retriever, qids: list[str], texts: list[str], qrels: dict, budget: int) -> dict[str, float]:
    count = token_counter(retriever.encoder.tokenizer)
    relevant = sum(len(qrels[q]) for q in qids)
    assembled = bare = plain = 0
    for qid, text in zip(qids, texts):
        wanted = set(qrels[qid])
        parts = retriever.context_for(text, max_tokens=budget, k=CANDIDATES)
        assembled += len(wanted & {p.doc_id for p in parts})
        parts = retriever.context_for(text, max_tokens=budget, k=CANDIDATES, context=0)
        bare += len(wanted & {p.doc_id for p in parts})
        plain += len(wanted & plain_passages(retriever, text, budget, count))
    return {"context_for": assembled / relevant, "context_for_no_neighbours": bare / relevant,
            "plain_passages": plain / relevant, "relevant_documents": relevant}


def mmr_cost(retriever: Retriever, qids: list[str], texts: list[str], qrels: dict) -> dict[str, float]:
    out = {}
    for lam in (None, *LAMBDAS):
        hits = retriever.search_many(texts, k=10, diversity=lam)
        run = {q: {h.doc_id: float(10 - rank) for rank, h in enumerate(row)} for q, row in zip(qids, hits)}
        out["relevance" if lam is None else f"lambda_{lam}"] = evaluate(run, qrels).scores["ndcg@10"]
    return out


def added_latency(retriever: Retriever, texts: list[str], repeats: int = 1) -> dict[str, Any]:
    """Per search, milliseconds of highlights and of one-neighbour expansion over the k=10 hits: p50 and p95 of
    the wall clock and, less disturbed by other processes on a busy machine, of this process's CPU time."""
    prepared = []
    for text in texts:
        planned = retriever._plan([text], k=10)
        found = hits_of(rank(*planned), planned[0], planned[2], planned[3])[0]
        prepared.append((text, planned[3], found))
    wall: dict[str, list[float]] = {"highlights": [], "expansion": []}
    cpu: dict[str, list[float]] = {"highlights": [], "expansion": []}
    for _ in range(repeats):
        for text, snapshot, found in prepared:
            hits = [copy.copy(hit) for _, hit in found]
            started, started_cpu = time.perf_counter(), time.process_time()
            annotate(hits, text)
            [hit.highlights for hit in hits]  # marked on first read: the cost a caller that reads them pays
            wall["highlights"].append(time.perf_counter() - started)
            cpu["highlights"].append(time.process_time() - started_cpu)
            started, started_cpu = time.perf_counter(), time.process_time()
            ContextExpander(snapshot, 1).expand(hits, [key for key, _ in found])
            wall["expansion"].append(time.perf_counter() - started)
            cpu["expansion"].append(time.process_time() - started_cpu)
    out: dict[str, Any] = {}
    for clock, times in (("", wall), ("cpu_", cpu)):
        parts = {name: np.asarray(v) for name, v in times.items()}
        parts["both"] = parts["highlights"] + parts["expansion"]
        out |= {f"{clock}{name}_{q}_ms": float(np.percentile(v, q) * 1000)
                for name, v in parts.items() for q in (50, 95)}
    out["searches"] = len(wall["highlights"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--queries", type=int, default=None, help="Only the first N judged test claims.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/rag_context.json"))
    parser.add_argument("--latency-only", action="store_true",
                        help="Only time highlights and expansion; the output's other figures are kept.")
    parser.add_argument("--repeats", type=int, default=1, help="Time each search this many times (a busy machine).")
    args = parser.parse_args()
    dataset = load_beir(args.dataset, "test")
    encoder = CachedEncoder.wrap(Encoder(args.model), EmbeddingCache(args.cache))
    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    retriever = Retriever.build(records, index_dir=Path(tempfile.mkdtemp()) / "index", encoder=encoder)
    qrels = judged_queries(read_qrels(args.dataset / "qrels" / "test.tsv"))
    qids = [q for q in qrels if q in dataset.queries][: args.queries]
    qrels = {q: qrels[q] for q in qids}
    texts = [dataset.queries[q] for q in qids]
    if args.latency_only:
        retriever.search_many(texts[:20], k=10)  # warm up before timing
        load_before = os.getloadavg()[0]
        latency = added_latency(retriever, texts, args.repeats)
        latency["provenance"] = {**provenance(), "load_average_1min": [round(load_before, 2),
                                                                       round(os.getloadavg()[0], 2)]}
        report = json.loads(args.output.read_text()) if args.output.exists() else {}
        report["added_latency"] = latency  # the reach and MMR figures stay those of their own run
        print("added latency", {name: round(v, 3) for name, v in latency.items() if name.endswith("_ms")},
              "load average", latency["provenance"]["load_average_1min"])
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        return
    report = {**provenance(), "model": args.model, "queries": len(qids), "candidates": CANDIDATES}
    report["reach"] = {str(b): reach(retriever, qids, texts, qrels, b) for b in BUDGETS}
    for budget, shares in report["reach"].items():
        print(f"{budget} tokens: context_for {shares['context_for']:.3f} (no neighbours "
              f"{shares['context_for_no_neighbours']:.3f}), plain {shares['plain_passages']:.3f}")
    report["mmr_ndcg@10"] = mmr_cost(retriever, qids, texts, qrels)
    print("nDCG@10", {name: round(v, 4) for name, v in report["mmr_ndcg@10"].items()})
    retriever.search_many(texts[:20], k=10)  # warm up before timing
    load_before = os.getloadavg()[0]
    report["added_latency"] = added_latency(retriever, texts, args.repeats)
    report["added_latency"]["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print("added latency", {name: round(v, 3) for name, v in report["added_latency"].items() if name.endswith("_ms")})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
