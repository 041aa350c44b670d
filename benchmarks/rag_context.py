"""What RAG retrieval gives a prompt on SciFact: context_for against plain passages, MMR's cost, added latency.

For the judged test claims:

- the share of judged relevant documents whose text reaches a 1,000- and a 2,000-token context, built by
  ``Retriever.context_for`` (near-copies once, one neighbour on each side, merged; and with no neighbours)
  against the plain top passages in rank order in the same budget (the last one cut to fit, as
  ``context_for`` cuts its last);
- nDCG@10 of the default hybrid search and of MMR (``diversity``) at lambda 0.5, 0.7 and 0.9;
- the time highlights (``annotate``) and context expansion (``context=1``) add to a k=10 search: p50 and
  p95 per query, measured on their own over the same hits.

Embeddings come from the cache that ``retriever bench`` fills, so a second run does not encode the corpus.

    python benchmarks/rag_context.py ../shared/datasets/scifact [--model DIR] [--queries N]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

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


def added_latency(retriever: Retriever, texts: list[str]) -> dict[str, float]:
    """Per query, seconds of highlights and of one-neighbour expansion over the k=10 hits of a search."""
    highlight, expand = [], []
    for text in texts:
        planned = retriever._plan([text], k=10)
        ranked = rank(*planned)
        options = planned[2]
        found = hits_of(ranked, planned[0], options, planned[3])[0]
        hits = [copy.copy(hit) for _, hit in found]
        started = time.perf_counter()
        annotate(hits, text)
        highlight.append(time.perf_counter() - started)
        started = time.perf_counter()
        ContextExpander(planned[3], 1).expand(hits, [key for key, _ in found])
        expand.append(time.perf_counter() - started)
    both = np.asarray(highlight) + np.asarray(expand)
    ms = {"highlights": np.asarray(highlight), "expansion": np.asarray(expand), "both": both}
    return {f"{name}_{q}_ms": float(np.percentile(v, q) * 1000) for name, v in ms.items() for q in (50, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--queries", type=int, default=None, help="Only the first N judged test claims.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/rag_context.json"))
    args = parser.parse_args()
    dataset = load_beir(args.dataset, "test")
    encoder = CachedEncoder.wrap(Encoder(args.model), EmbeddingCache(args.cache))
    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    retriever = Retriever.build(records, index_dir=Path(tempfile.mkdtemp()) / "index", encoder=encoder)
    qrels = judged_queries(read_qrels(args.dataset / "qrels" / "test.tsv"))
    qids = [q for q in qrels if q in dataset.queries][: args.queries]
    qrels = {q: qrels[q] for q in qids}
    texts = [dataset.queries[q] for q in qids]
    report = {**provenance(), "model": args.model, "queries": len(qids), "candidates": CANDIDATES}
    report["reach"] = {str(b): reach(retriever, qids, texts, qrels, b) for b in BUDGETS}
    for budget, shares in report["reach"].items():
        print(f"{budget} tokens: context_for {shares['context_for']:.3f} (no neighbours "
              f"{shares['context_for_no_neighbours']:.3f}), plain {shares['plain_passages']:.3f}")
    report["mmr_ndcg@10"] = mmr_cost(retriever, qids, texts, qrels)
    print("nDCG@10", {name: round(v, 4) for name, v in report["mmr_ndcg@10"].items()})
    retriever.search_many(texts[:20], k=10)  # warm up before timing
    report["added_latency"] = added_latency(retriever, texts)
    print("added latency", {name: round(v, 3) for name, v in report["added_latency"].items()})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
