"""Segmented BM25 (``retriever.index.lexical``) against one bm25s index and against tantivy.

Issue 10, item 2: BM25 statistics must stay global under incremental writes. This script
measures, in one process, the three ways to get there:

1. Quality on BEIR SciFact (test queries, title + abstract): nDCG@10 of one bm25s index
   (``LexicalIndex``), of ``LexicalSearcher`` over one segment, and of tantivy with its English
   stemming tokenizer (``en_stem``) and with an analyzer built to mimic ours.
2. Exactness after deletes (SciFact in 10 segments/commits, 10% of documents deleted): every
   score against a fresh build over the live documents, for our segments (vs bm25s) and for
   tantivy (vs a fresh tantivy index).
3. Scale on synthetic passages (1-3 random SciFact sentences each, deterministic), at each size:
   write, merge and open times, disk size, per-query p50/p95 (k=10 and k=100) over one segment
   and over 10 segments with 10% of rows deleted, the cost of adding 1 and 1,000 passages and
   deleting 1,000, and the same for one bm25s index and for tantivy. Queries are SciFact's test
   queries; times include tokenizing the query.

    python benchmarks/lexical_segments.py ../shared/datasets/scifact     # alone on the machine: it is timed

tantivy is not a dependency: ``pip install tantivy`` into the venv to include it (else skipped).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retriever.eval.beir import load_beir
from retriever.eval.machine import provenance
from retriever.eval.metrics import evaluate
from retriever.index.lexical import LexicalIndex, LexicalSearcher, LexicalSegment, tokenize
from retriever.ingest.chunking import encoding_text

RESULTS = Path(__file__).parent / "results" / "lexical_segments.json"
DEPTH = 100  # run depth for nDCG and for score comparisons


# helpers -------------------------------------------------------------------------------------
def seconds(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def latency(search_one: Callable[[str], object], queries: Sequence[str]) -> dict[str, float]:
    """Warm per-query latency in ms (the first 10 queries warm up and are timed again)."""
    for query in queries[:10]:
        search_one(query)
    times = []
    for query in queries:
        started = time.perf_counter()
        search_one(query)
        times.append((time.perf_counter() - started) * 1000)
    p50, p95 = np.percentile(times, [50, 95])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3)}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def synthetic_passages(corpus_texts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` passages of 1-3 random SciFact sentences: SciFact's term statistics, any number of rows."""
    sentences = [s for text in corpus_texts for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 20]
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 4, size=n)
    picks = rng.integers(0, len(sentences), size=int(counts.sum()))
    out, at = [], 0
    for c in counts:
        out.append(" ".join(sentences[i] for i in picks[at:at + c]))
        at += c
    return out


def split(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


# ours ----------------------------------------------------------------------------------------
def write_segments(root: Path, texts: Sequence[str], parts: int) -> tuple[list[Path], float]:
    folders, total = [], 0.0
    for i, (start, end) in enumerate(split(len(texts), parts)):
        folder = root / f"segment-{i:03d}"
        _, took = seconds(lambda folder=folder, start=start, end=end: LexicalSegment.write(folder, texts[start:end]))
        folders.append(folder)
        total += took
    return folders, total


def open_searcher(folders: Sequence[Path], live: Sequence[np.ndarray | None] | None = None
                  ) -> tuple[list[LexicalSegment], LexicalSearcher, float]:
    started = time.perf_counter()
    segments = [LexicalSegment.open(f) for f in folders]
    searcher = LexicalSearcher(list(zip(segments, live or [None] * len(segments))))
    return segments, searcher, time.perf_counter() - started


def random_deletions(segments: Sequence[LexicalSegment], fraction: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(len(s)) >= fraction for s in segments]


def ours_scores(searcher: LexicalSearcher, queries: Sequence[str], k: int, key: Callable[[int, int], str]
                ) -> list[dict[str, float]]:
    return [{key(s, r): v for s, r, v in hits} for hits in searcher.search(queries, k)]


def max_difference(got: list[dict[str, float]], expected: list[dict[str, float]]) -> dict:
    """Largest absolute score difference over documents found by both, and how many top lists differ."""
    worst, top_differs, compared = 0.0, 0, 0
    for g, e in zip(got, expected):
        for doc in g.keys() & e.keys():
            worst = max(worst, abs(g[doc] - e[doc]))
            compared += 1
        if sorted(g, key=lambda d: (-g[d], d))[:10] != sorted(e, key=lambda d: (-e[d], d))[:10]:
            top_differs += 1
    return {"max_abs_score_difference": worst, "scores_compared": compared, "queries_with_different_top10": top_differs}


# tantivy -------------------------------------------------------------------------------------
def tantivy_available() -> bool:
    try:
        import tantivy  # noqa: F401
    except ImportError:
        return False
    return True


def our_analyzer():  # noqa: ANN201 - tantivy has no type hints
    """tantivy analyzer as close to bm25s's tokenizer as tantivy allows: same regex, stopwords, stemmer."""
    import tantivy
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(r"(?u)\b\w\w+\b"))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.custom_stopword(list(STOPWORDS_EN_PLUS)))
            .filter(tantivy.Filter.stemmer("english"))
            .build())


class Tantivy:
    """A tantivy index of (integer id, text), as the engine would use it: one writer, commits, deletes."""

    def __init__(self, path: Path, tokenizer: str = "en_stem") -> None:
        import tantivy

        path.mkdir(parents=True, exist_ok=True)
        builder = tantivy.SchemaBuilder()
        builder.add_unsigned_field("id", stored=True, indexed=True, fast=True)
        builder.add_text_field("text", tokenizer_name=tokenizer, index_option="freq")
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema, path=str(path))
        self.tokenizer = tokenizer
        if tokenizer == "ours":
            self.index.register_tokenizer("ours", our_analyzer())
        self.writer = self.index.writer(heap_size=256_000_000, num_threads=1)
        self.path = path

    def add(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        import tantivy

        for i, text in zip(ids, texts):
            doc = tantivy.Document()
            doc.add_unsigned("id", int(i))
            doc.add_text("text", text)
            self.writer.add_document(doc)

    def delete(self, ids: Sequence[int]) -> None:
        import tantivy

        self.writer.delete_documents_by_query(tantivy.Query.term_set_query(self.schema, "id", [int(i) for i in ids]))

    def commit(self) -> None:
        self.writer.commit()
        self.index.reload()

    def query(self, text: str):  # noqa: ANN201
        clean = re.sub(r"[^\w\s]", " ", text).lower()  # a bag of words: no query syntax, default OR
        return self.index.parse_query(clean or "nothingmatches", ["text"])

    def search(self, text: str, k: int, searcher=None) -> list[tuple[float, object]]:  # noqa: ANN001
        searcher = searcher or self.index.searcher()
        return searcher.search(self.query(text), k, count=False).hits

    def scores(self, queries: Sequence[str], k: int) -> list[dict[int, float]]:
        searcher = self.index.searcher()
        return [{searcher.doc(a)["id"][0]: s for s, a in self.search(q, k, searcher)} for q in queries]


# sections ------------------------------------------------------------------------------------
def quality_and_exactness(data: Path, workdir: Path) -> dict:
    dataset = load_beir(data, "test")
    ids = list(dataset.corpus)
    texts = [encoding_text(d.title, d.text) for d in dataset.corpus.values()]
    qids = [q for q in dataset.qrels if q in dataset.queries]
    queries = [dataset.queries[q] for q in qids]
    out: dict = {"documents": len(ids), "queries": len(qids)}

    def ndcg(runs: list[dict[str, float]]) -> float:
        return round(evaluate(dict(zip(qids, runs)), dataset.qrels, ("ndcg@10",)).scores["ndcg@10"], 4)

    bm25s_runs = [dict(hits) for hits in LexicalIndex().index(ids, texts).retrieve(queries, k=DEPTH)]
    LexicalSegment.write(workdir / "scifact", texts)
    _, searcher, _ = open_searcher([workdir / "scifact"])
    ours_runs = ours_scores(searcher, queries, DEPTH, lambda s, r: ids[r])
    out["ndcg@10"] = {"bm25s": ndcg(bm25s_runs), "segments": ndcg(ours_runs)}
    out["segments_vs_bm25s"] = max_difference(ours_runs, bm25s_runs)

    # 10% deleted after 10 writes: ours against a fresh bm25s build over the live documents
    folders, _ = write_segments(workdir / "scifact-10", texts, 10)
    segments = [LexicalSegment.open(f) for f in folders]
    live = random_deletions(segments, 0.1, seed=1)
    flat_live = np.concatenate(live)
    starts = [start for start, _ in split(len(texts), 10)]
    searcher = LexicalSearcher(list(zip(segments, live)))
    live_ids = [i for i, alive in zip(ids, flat_live) if alive]
    live_texts = [t for t, alive in zip(texts, flat_live) if alive]
    fresh = [dict(hits) for hits in LexicalIndex().index(live_ids, live_texts).retrieve(queries, k=DEPTH)]
    after = ours_scores(searcher, queries, DEPTH, lambda s, r: ids[starts[s] + r])
    out["after_deletes"] = {"segments": 10, "deleted": int((~flat_live).sum()),
                            "segments_vs_fresh_bm25s": max_difference(after, fresh)}

    if tantivy_available():
        numbers = list(range(len(ids)))
        for tokenizer in ("en_stem", "ours"):
            index = Tantivy(workdir / f"tantivy-{tokenizer}", tokenizer)
            index.add(numbers, texts)
            index.commit()
            runs = [{ids[i]: s for i, s in hits.items()} for hits in index.scores(queries, DEPTH)]
            out["ndcg@10"][f"tantivy_{tokenizer}"] = ndcg(runs)
        analyzer = our_analyzer()
        same = sum(analyzer.analyze(t) == tokens for t, tokens in zip(texts, tokenize(texts)))
        out["tantivy_ours_analyzer_same_tokens_as_bm25s"] = f"{same}/{len(texts)} documents"
        # the same history in tantivy: 10 commits, then 10% deleted, against a fresh tantivy index of the live docs
        index = Tantivy(workdir / "tantivy-history")
        for start, end in split(len(texts), 10):
            index.add(numbers[start:end], texts[start:end])
            index.commit()
        index.writer.wait_merging_threads()  # let tantivy's merge policy run, as it would between writes
        index.writer = index.index.writer(heap_size=256_000_000, num_threads=1)
        index.delete([i for i, alive in zip(numbers, flat_live) if not alive])
        index.commit()
        fresh_index = Tantivy(workdir / "tantivy-fresh")
        fresh_index.add([i for i, alive in zip(numbers, flat_live) if alive], live_texts)
        fresh_index.commit()
        got, expected = index.scores(queries, DEPTH), fresh_index.scores(queries, DEPTH)
        out["after_deletes"]["tantivy_vs_fresh_tantivy"] = {
            **max_difference(got, expected), "segments": index.index.searcher().num_segments}
    return out


def scale(texts_all: Sequence[str], queries: Sequence[str], sizes: Sequence[int], parts: int, workdir: Path,
          baseline_max: int, with_tantivy: bool) -> dict:
    out = {}
    for size in sizes:
        texts = texts_all[:size]
        root = workdir / f"scale-{size}"
        row: dict = {"passages": size,
                     "tokens_per_passage": round(float(np.mean([len(t) for t in tokenize(texts[:2000])])), 1)}
        row["one_segment"], searcher = measure_one_segment(root / "one", texts, queries)
        row["vocabulary"] = len(searcher.segments[0].vocabulary)
        row["many_segments"] = measure_many_segments(root / "many", texts, texts_all, queries, parts)
        if size <= baseline_max:
            row["bm25s_one_index"] = measure_bm25s(texts, queries, searcher)
            row["speedup_k10_p50_one_segment_vs_bm25s"] = round(
                row["bm25s_one_index"]["k10"]["p50_ms"] / row["one_segment"]["k10"]["p50_ms"], 2)
        if with_tantivy:
            row["tantivy"] = tantivy_scale(root / "tantivy", texts, texts_all, queries)
        out[str(size)] = row
        print(json.dumps(row), flush=True)
        shutil.rmtree(root)
    return out


def measure_one_segment(root: Path, texts: Sequence[str], queries: Sequence[str]) -> tuple[dict, LexicalSearcher]:
    [folder], took = write_segments(root, texts, 1)
    rss_before = rss_mb()
    _, searcher, opened = open_searcher([folder])
    out = {"write_s": round(took, 3), "open_s": round(opened, 4), "disk_mb": round(folder_bytes(folder) / 1e6, 1),
           "rss_after_open_mb": round(rss_mb() - rss_before, 1)}
    out["k10"] = latency(lambda q: searcher.search([q], 10), queries)
    out["k100"] = latency(lambda q: searcher.search([q], 100), queries)
    _, batch = seconds(lambda: searcher.search(queries, 10))
    out["batch_ms_per_query"] = round(batch * 1000 / len(queries), 3)
    return out, searcher


def measure_many_segments(root: Path, texts: Sequence[str], texts_all: Sequence[str], queries: Sequence[str],
                          parts: int) -> dict:
    """``parts`` segments with 10% of rows deleted: search, merge, and the lexical side of a write."""
    folders, took = write_segments(root, texts, parts)
    live = random_deletions([LexicalSegment.open(f) for f in folders], 0.1, seed=2)
    segments, searcher, opened = open_searcher(folders, live)
    out = {"segments": parts, "deleted_fraction": 0.1, "write_s": round(took, 3), "open_s": round(opened, 4),
           "disk_mb": round(folder_bytes(root) / 1e6, 1)}
    out["k10"] = latency(lambda q: searcher.search([q], 10), queries)
    out["k100"] = latency(lambda q: searcher.search([q], 100), queries)
    allowed = random_deletions(segments, 0.99, seed=4)  # a filter that keeps 1% of rows
    out["k10_filter_1pct"] = latency(lambda q: searcher.search([q], 10, allowed=allowed), queries)
    _, took = seconds(lambda: LexicalSegment.merge(root / "merged", list(zip(segments, live))))
    out["merge_into_one_s"] = round(took, 3)
    # a write: a new segment, or new deletion marks, then a new searcher over the segments already open
    rng = np.random.default_rng(3)
    for name, count in (("add_1", 1), ("add_1000", 1000)):
        new = [texts_all[int(i)] for i in rng.integers(0, len(texts_all), count)]
        started = time.perf_counter()
        LexicalSegment.write(root / name, new)
        LexicalSearcher(list(zip(segments, live)) + [(LexicalSegment.open(root / name), None)])
        out[f"{name}_s"] = round(time.perf_counter() - started, 4)
    started = time.perf_counter()
    marks = [m.copy() for m in live]
    for _ in range(1000):
        s = int(rng.integers(0, len(marks)))
        marks[s][int(rng.integers(0, len(marks[s])))] = False
    LexicalSearcher(list(zip(segments, marks)))
    out["delete_1000_s"] = round(time.perf_counter() - started, 4)
    return out


def measure_bm25s(texts: Sequence[str], queries: Sequence[str], one_segment: LexicalSearcher) -> dict:
    """Today's LexicalIndex (one bm25s index rebuilt at each write): the baseline, and the scores to equal."""
    index, took = seconds(lambda: LexicalIndex().index(list(range(len(texts))), texts))
    out = {"index_s": round(took, 3)}
    out["k10"] = latency(lambda q: index.retrieve([q], 10), queries)
    out["k100"] = latency(lambda q: index.retrieve([q], 100), queries)
    expected = [dict(h) for h in index.retrieve(queries[:50], DEPTH)]
    got = [{r: v for _, r, v in hits} for hits in one_segment.search(queries[:50], DEPTH)]
    out["one_segment_vs_bm25s"] = max_difference(got, expected)
    return out


def tantivy_scale(path: Path, texts: Sequence[str], texts_all: Sequence[str], queries: Sequence[str]) -> dict:
    import tantivy

    index = Tantivy(path)
    started = time.perf_counter()
    index.add(range(len(texts)), texts)
    index.commit()
    index.writer.wait_merging_threads()
    out = {"build_s": round(time.perf_counter() - started, 3), "disk_mb": round(folder_bytes(path) / 1e6, 1)}
    _, opened = seconds(lambda: tantivy.Index.open(str(path)).searcher())
    out["open_s"] = round(opened, 4)
    index.writer = index.index.writer(heap_size=256_000_000, num_threads=1)
    searcher = index.index.searcher()
    out["segments"] = searcher.num_segments
    out["k10"] = latency(lambda q: searcher.search(index.query(q), 10, count=False), queries)
    out["k100"] = latency(lambda q: searcher.search(index.query(q), 100, count=False), queries)
    rng = np.random.default_rng(3)
    next_id = len(texts)
    for name, count in (("add_1", 1), ("add_1000", 1000)):
        new = [texts_all[int(i)] for i in rng.integers(0, len(texts_all), count)]
        started = time.perf_counter()
        index.add(range(next_id, next_id + count), new)
        index.commit()
        out[f"{name}_commit_s"] = round(time.perf_counter() - started, 4)
        next_id += count
    started = time.perf_counter()
    index.delete(rng.choice(len(texts), 1000, replace=False))
    index.commit()
    out["delete_1000_commit_s"] = round(time.perf_counter() - started, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="BEIR SciFact folder")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--baseline-max", type=int, default=1_000_000, help="largest size for the bm25s baseline")
    parser.add_argument("--no-tantivy", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with_tantivy = tantivy_available() and not args.no_tantivy
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="lexical-bench-"))
    report: dict = {
        **provenance(),
        "options": "benchmarks/lexical_segments.py " + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in
                                                                  vars(args).items() if k not in ("data", "out")),
        "packages": package_versions(),
    }
    try:
        if not args.skip_quality:
            report["scifact"] = quality_and_exactness(args.data, workdir)
            print(json.dumps(report["scifact"]), flush=True)
        dataset = load_beir(args.data, "test")
        corpus = [encoding_text(d.title, d.text) for d in dataset.corpus.values()]
        queries = [dataset.queries[q] for q in dataset.qrels if q in dataset.queries]
        texts = synthetic_passages(corpus, max(sizes))
        report["scale"] = scale(texts, queries, sizes, args.segments, workdir, args.baseline_max, with_tantivy)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("bm25s", "PyStemmer", "numpy", "tantivy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    main()
