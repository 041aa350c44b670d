"""The ``retriever`` command: a thin click shell over ``retriever.Retriever``.

Heavy libraries (torch, sentence-transformers, faiss) are imported inside the commands, so
``retriever --help`` answers at once. Input errors print one line and exit with status 1;
Ctrl-C exits with 130 and leaves the previous index as it was.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

INDEX_HOME = Path("indexes")


class FriendlyGroup(click.Group):
    """Turns RetrieverError (and Ctrl-C) into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from retriever.errors import RetrieverError

        try:
            return super().invoke(ctx)
        except RetrieverError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: the index is unchanged", err=True)
            sys.exit(130)


def find_index(index: Path | None) -> Path:
    """The index to use: the one given, or the only one under ``indexes/``."""
    from retriever.errors import IndexNotFoundError

    if index is not None:
        return index
    candidates = sorted(p for p in INDEX_HOME.glob("*") if (p / "CURRENT").exists()) if INDEX_HOME.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise IndexNotFoundError(f"no index under {INDEX_HOME}/; build one with 'retriever index PATH'")
    names = ", ".join(str(p) for p in candidates)
    raise IndexNotFoundError(f"several indexes under {INDEX_HOME}/ ({names}); choose one with --index")


index_option = click.option(
    "--index", "index_dir", type=click.Path(path_type=Path), default=None,
    help="Index directory (default: the only one under indexes/).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")


@click.group(cls=FriendlyGroup)
@click.version_option(package_name="retriever")
def main() -> None:
    """Semantic document retrieval: index a folder, search it by meaning."""


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@index_option
@click.option("--model", default=None, help="sentence-transformers model name or path (default: all-MiniLM-L6-v2).")
@click.option("--ann", default="auto", show_default=True,
              help="Vector index: auto (exact up to 50,000 passages a segment, HNSW above), flat, hnsw, ivf, "
                   "ivf-pq, sq8, binary (compressed kinds rescore exactly), or a FAISS factory string.")
@click.option("--chunk-tokens", type=click.IntRange(8), default=None,
              help="Passage length in tokens (default: the model's maximum).")
@click.option("--overlap", type=click.IntRange(0), default=None,
              help="Tokens shared by consecutive passages (default: 32, at most a quarter of the passage length).")
@click.option("--wait", type=click.FloatRange(0), default=None,
              help="Seconds to wait for another process writing the index (default: as long as it takes).")
@click.option("--store", default=None,
              help="Where a new index keeps passages, vectors and BM25: local (default), milvus:PATH.db (Milvus Lite) "
                   "or milvus:http://host:19530 (a Milvus server). Needs 'retriever[milvus]'.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
              help="Chunk and encode on Ray: --ray starts a local Ray, --ray auto or --ray ray://host:10001 joins a "
                   "cluster. Needs 'retriever[ray]'.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Ray encoding actors, one model each (default: one per GPU, else one per CPU).")
@quiet_option
def index(path: Path, index_dir: Path | None, model: str | None, ann: str, chunk_tokens: int | None,
          overlap: int | None, wait: float | None, store: str | None, ray_address: str | None, workers: int | None,
          quiet: bool) -> None:
    """Index PATH (a folder, searched recursively, or a file); re-running updates it incrementally."""
    from retriever.errors import RetrieverError
    from retriever.retriever import Retriever, default_index_dir

    if not path.exists():
        raise RetrieverError(f"path not found: {path}")
    target = index_dir or default_index_dir(path, INDEX_HOME)
    if workers is not None and ray_address is None:
        raise RetrieverError("--workers sets the number of Ray encoding actors: add --ray")
    retriever = Retriever.build(path, index_dir=target, model=model, ann=ann, chunk_tokens=chunk_tokens,
                                overlap=overlap, progress=not quiet, wait=wait, store=store, ray=ray_address,
                                workers=workers)
    report = retriever.last_report
    for file, reason in report.skipped_files:
        click.echo(f"warning: skipped {file}: {reason}", err=True)
    for doc_id in report.duplicate_ids:
        click.echo(f"warning: duplicate document id {doc_id!r} skipped", err=True)
    click.echo(f"{target}: {report.summary()}")
    counts = retriever.manifest.counts
    click.echo(f"{target}: {counts.get('documents', 0)} documents, {counts.get('passages', 0)} passages")


@main.command()
@click.argument("query")
@index_option
@click.option("-k", "--top-k", "k", type=click.IntRange(1), default=10, show_default=True, help="Number of results.")
@click.option("--passages", is_flag=True, help="Return raw passages instead of one result per document.")
@click.option("--mode", type=click.Choice(["dense", "lexical", "hybrid"]), default=None,
              help="Dense vectors, BM25, or both fused (default: hybrid, the benchmark's winner).")
@click.option("--fusion", type=click.Choice(["rrf", "convex"]), default=None,
              help="Hybrid fusion: reciprocal rank or min-max normalised convex combination (default: convex).")
@click.option("--alpha", type=click.FloatRange(0, 1), default=None, help="Convex fusion: weight of the dense side.")
@click.option("--where", multiple=True, help="Metadata filter, e.g. 'year>=2020' or 'source~guides/*'; repeatable.")
@click.option("--rerank", type=click.IntRange(0), default=0, help="Rerank the top N with the model's learned metric.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per result, for scripts.")
@click.option("--model", default=None, help="Refuse to search unless the index was built with this model.")
def search(query: str, index_dir: Path | None, k: int, passages: bool, mode: str | None, fusion: str | None,
           alpha: float | None, where: tuple[str, ...], rerank: int, as_json: bool, model: str | None) -> None:
    """Search an index for QUERY by meaning."""
    from retriever.errors import RetrieverError
    from retriever.retriever import Retriever

    if not query.strip():
        raise RetrieverError("empty query: give some text to search for")
    retriever = Retriever.load(find_index(index_dir), model=model)
    hits = retriever.search(query, k=k, passages=passages, mode=mode, fusion=fusion, alpha=alpha, where=where,
                            rerank=rerank)
    if as_json:
        for hit in hits:
            click.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
        return
    if not hits:
        click.echo("no results")
    for rank, hit in enumerate(hits, start=1):
        label = hit.title or hit.source or hit.doc_id
        click.echo(f"{rank:>2}. {hit.score:.3f}  {hit.doc_id}  {label}")
        click.echo(f"    {snippet(hit.text)}")


def snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


@main.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
def info(index_dir: Path | None, as_json: bool) -> None:
    """Describe an index: model, dimensions, metric, ANN type, counts, size, build time."""
    from retriever.retriever import Retriever

    details = Retriever.load(find_index(index_dir)).info()
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    model, ann, counts = details["model"], details["ann"], details["counts"]
    kinds = ", ".join(f"{n} {kind}" for kind, n in ann["segments_by_kind"].items())
    lines = [
        ("index", details["index"]),
        ("store", details["store"]),
        ("model", f"{model['name']} ({model['architecture']}, fingerprint {model['fingerprint']})"),
        ("dimensions", model["dimension"]),
        ("similarity", f"{details['similarity']} (normalised vectors, inner product)"),
        ("ann", f"{ann['requested']} (segments: {kinds or 'none'}); "
                f"{ann['ram_bytes_per_passage']:.0f} bytes/passage in RAM"),
        ("chunking", f"{details['chunking']['max_tokens']} tokens, overlap {details['chunking']['overlap_tokens']}"),
        ("lexical", "BM25 (English stemming and stopwords, statistics over every live passage)"
         + ("" if details["store"] == "local" else ", by Milvus full-text search")),
        ("verification", f"threshold {details['extras']['verification']['threshold']:.4f} "
         f"({details['extras']['verification']['objective']})" if details["extras"].get("verification")
         else "uncalibrated (run 'retriever calibrate')"),
        ("documents", counts.get("documents", 0)),
        ("passages", counts.get("passages", 0)),
        ("files", counts.get("files", 0)),
        ("segments", f"{len(details['segments'])} ({details['generation']})"),
        ("size on disk", f"{details['size_bytes'] / 1e6:.2f} MB"),
        ("created", details["created_at"]),
        ("updated", details["updated_at"]),
        ("last build", f"{details['last_build_seconds']:.1f}s"),
    ]
    for key, value in lines:
        click.echo(f"{key:>12}: {value}")


@main.command()
@index_option
def optimize(index_dir: Path | None) -> None:
    """Merge an index's segments into one and drop deleted passages (searches keep working meanwhile)."""
    from retriever.retriever import Retriever

    target = find_index(index_dir)
    with Retriever.load(target) as retriever:
        before = len(retriever.manifest.segments)
        retriever.optimize()
        after = len(retriever.manifest.segments)
    click.echo(f"{target}: {before} segments -> {after}")


@main.command()
@index_option
def check(index_dir: Path | None) -> None:
    """Read every file of an index against the checksums recorded when it was written (exit 1 if damaged)."""
    from retriever.retriever import Retriever

    target = find_index(index_dir)
    with Retriever.load(target) as retriever:
        problems = retriever.check()
    if problems:
        for problem in problems:
            click.echo(f"damaged: {problem}", err=True)
        click.echo(f"error: index {target} is corrupt ({len(problems)} damaged files); rebuild it", err=True)
        sys.exit(1)
    click.echo(f"{target}: every file matches its checksum")


@main.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--split", default="test", show_default=True, help="Qrels split to score (qrels/<split>.tsv).")
@click.option("--model", "finetuned", default=None, help="A fine-tuned model directory to add as a column.")
@click.option("--base-model", default="all-MiniLM-L6-v2", show_default=True, help="Model of the dense baselines.")
@click.option("--systems", default="bm25,reference,flat,hnsw,hybrid,hybrid-rrf", show_default=True,
              help="Comma-separated systems: bm25, reference (plain sentence-transformers), flat, hnsw (dense "
                   "search of this engine), lexical (its BM25), hybrid (convex fusion), hybrid-rrf.")
@click.option("--output", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Embedding cache directory (default: ~/.cache/retriever/embeddings).")
@click.option("--limit-queries", type=click.IntRange(1), default=None, help="Score only N queries (smoke run).")
@click.option("--limit-docs", type=click.IntRange(1), default=None,
              help="Keep only N documents; those judged for the kept queries always stay.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--store", default=None,
              help="Also run each engine system on this store (milvus:PATH.db or milvus:http://host:19530), as "
                   "milvus-<system> columns beside the local ones.")
@quiet_option
def bench(dataset: Path, split: str, finetuned: str | None, base_model: str, systems: str, output: Path,
          cache: Path | None, limit_queries: int | None, limit_docs: int | None, seed: int, store: str | None,
          quiet: bool) -> None:
    """Benchmark quality and speed on a BEIR dataset folder, beside BM25 and plain sentence-transformers."""
    from retriever.errors import RetrieverError
    from retriever.eval.bench import SYSTEMS, BenchConfig, markdown_table, run_bench

    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown:
        raise RetrieverError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    if store is not None:
        from retriever.index.backend import parse_store

        if parse_store(store).is_local:
            raise RetrieverError("--store names a second store to compare with the local one: milvus:PATH.db or "
                                 "milvus:http://host:19530")
    config = BenchConfig(dataset=dataset, split=split, model=base_model, finetuned=finetuned, systems=chosen,
                         output=output, limit_queries=limit_queries, limit_docs=limit_docs, seed=seed, store=store)
    if cache is not None:
        config.cache = cache
    report = run_bench(config, log=lambda line: click.echo(line, err=True), progress=not quiet)
    click.echo(markdown_table(report))
    click.echo(f"results written to {output}/ in {report['seconds']:.0f}s", err=True)


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="Directory for the trained model.")
@click.option("--model", default="all-MiniLM-L6-v2", show_default=True, help="Base model name or path.")
@click.option("--architecture", type=click.Choice(["twin", "half-twin"]), default="twin", show_default=True,
              help="twin: shared weights; half-twin: separate query and document towers.")
@click.option("--loss", type=click.Choice(["infonce", "contrastive", "triplet"]), default="infonce", show_default=True)
@click.option("--metric-head", type=click.Choice(["none", "linear"]), default="none", show_default=True,
              help="linear: a learned projection W, i.e. a Mahalanobis distance ||W(f(q) - f(d))||^2.")
@click.option("--head", "rerank_head", type=click.Choice(["none", "mlp"]), default="none", show_default=True,
              help="mlp: train only a reranking head over [u, v, |u-v|, u*v] with --model frozen "
                   "(used by 'retriever search --rerank N').")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Passes over the data [default: 2].")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Queries per step [default: 32].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate [default: 2e-4].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None, help="AdamW weight decay [default: 0.01].")
@click.option("--max-seq-length", type=click.IntRange(8), default=None, help="Tokens per text [default: 256].")
@click.option("--normalize/--no-normalize", default=True, show_default=True, help="Train on unit-length embeddings.")
@click.option("--cached/--no-cached", default=None, help="GradCache for InfoNCE batches [default: above 16 queries].")
@click.option("--margin", type=float, default=None, help="Margin of contrastive (1.0) or triplet (0.2) loss.")
@click.option("--negatives", type=click.Choice(["bm25", "dense", "both", "none"]), default="bm25", show_default=True,
              help="Where hard negatives are mined.")
@click.option("--negatives-per-query", type=click.IntRange(0), default=None,
              help="Hard negatives per query [default: 1].")
@click.option("--negatives-range", default=None, help="Ranks START:END to draw negatives from [default: 3:30].")
@click.option("--negatives-skip", type=click.IntRange(0), default=None,
              help="Top ranks never taken: START of the range [default: 3].")
@click.option("--dev-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Training queries held out for dev when there is no qrels/dev.tsv [default: 0.1].")
@click.option("--eval-steps", type=click.IntRange(0), default=0, help="Evaluate on dev every N steps (0: each epoch).")
@click.option("--max-steps", type=click.IntRange(0), default=0, help="Stop after N steps (0: no limit; smoke runs).")
@click.option("--seed", type=int, default=None, help="Seed for the dev split, negatives and shuffling [default: 42].")
@click.option("--resume", is_flag=True, help="Continue the interrupted run saved in OUTPUT/checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a model previously trained into OUTPUT.")
@quiet_option
def train(data: Path, output: Path, quiet: bool, negatives_range: str | None, negatives_skip: int | None,
          rerank_head: str, **options: Any) -> None:
    """Fine-tune a model on DATA: a BEIR folder (qrels/train.tsv) or a JSONL file of training pairs."""
    if rerank_head == "mlp":
        from retriever.training.head import train_mlp_head

        head = train_mlp_head(data, options.get("model") or "all-MiniLM-L6-v2", output, progress=not quiet,
                              seed=options.get("seed") or 42)
        verdict = "kept" if head.kept else "NOT kept: it did not improve dev nDCG@10"
        click.echo(f"rerank head {verdict}; dev nDCG@10 {head.dev_before:.4f} -> {head.dev_after:.4f} "
                   f"(reranking the dense top 30); {head.output} in {head.seconds:.0f}s")
        return
    from retriever.errors import RetrieverError
    from retriever.training import TrainConfig, TrainingInterrupted
    from retriever.training import train as run_training

    settings = {k: v for k, v in options.items() if v is not None}
    if negatives_range is not None:
        start, _, end = negatives_range.partition(":")
        if not (start.strip().isdigit() and end.strip().isdigit()):
            raise RetrieverError(f"--negatives-range must look like 3:30 (START:END ranks), not {negatives_range!r}")
        settings["negatives_skip"], settings["negatives_depth"] = int(start), int(end)
    if negatives_skip is not None:
        settings["negatives_skip"] = negatives_skip
    config = TrainConfig(data=data, output=output, progress=not quiet, **settings)
    try:
        result = run_training(config)
    except TrainingInterrupted as stop:
        click.echo(f"interrupted: checkpoint saved in {stop.checkpoint}; add --resume to continue", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted: no checkpoint saved", err=True)
        sys.exit(130)
    if result.dev_before and result.dev_after:
        before, after = result.dev_before["ndcg@10"], result.dev_after["ndcg@10"]
        click.echo(f"dev nDCG@10: {before:.4f} -> {after:.4f}")
    click.echo(f"{result.output}: {result.steps} steps in {result.seconds / 60:.1f} min, "
               f"peak memory {result.peak_memory_mb:.0f} MB")


@main.command()
@click.argument("query")
@click.argument("doc_id")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(query: str, doc_id: str, index_dir: Path | None, as_json: bool) -> None:
    """Is document DOC_ID a match for QUERY? Yes or no at the index's calibrated threshold (exit 0 / 2)."""
    from retriever.retriever import Retriever

    verdict = Retriever.load(find_index(index_dir)).verify(query, doc_id)
    if as_json:
        click.echo(json.dumps(verdict.to_dict()))
    else:
        answer = "match" if verdict.is_match else "no match"
        note = "" if verdict.calibrated else " (uncalibrated default; run 'retriever calibrate')"
        click.echo(f"{answer}: score {verdict.score:.3f}, threshold {verdict.threshold:.3f}{note}")
    sys.exit(0 if verdict.is_match else 2)


@main.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@index_option
@click.option("--split", default="train", show_default=True, help="Qrels split whose pairs are used.")
@click.option("--target-precision", type=click.FloatRange(0, 1), default=None,
              help="Lowest threshold reaching this precision (default: the best F1).")
@click.option("--negatives", type=click.IntRange(1), default=3, show_default=True,
              help="Mined hard negatives per query (top results that are not judged relevant).")
@click.option("--seed", type=int, default=0, show_default=True)
def calibrate(dataset: Path, index_dir: Path | None, split: str, target_precision: float | None, negatives: int,
              seed: int) -> None:
    """Pick the verification threshold on labelled pairs of a BEIR DATASET and store it in the index."""
    from retriever.retriever import Retriever
    from retriever.verification.calibration import calibrate_index

    retriever = Retriever.load(find_index(index_dir))
    result = calibrate_index(retriever, dataset, split=split, target_precision=target_precision,
                             negatives=negatives, seed=seed)
    click.echo(
        f"threshold {result.threshold:.4f} ({result.objective}); held-out {result.pairs} pairs "
        f"({result.positives} positive): precision {result.precision:.3f}, recall {result.recall:.3f}, "
        f"F1 {result.f1:.3f}"
    )
