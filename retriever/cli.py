"""The ``retriever`` command: a thin click shell over ``retriever.Retriever``.

Heavy libraries (torch, sentence-transformers, faiss) are imported inside the commands, so
``retriever --help`` answers at once. Every failure prints one line and exits with status 1:
input errors say what to do, anything unexpected is named with its type (``--debug`` or
``RETRIEVER_DEBUG=1`` shows the traceback). Warnings are one ``warning:`` line each. Ctrl-C exits
with 130 and leaves the previous index as it was.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from retriever.serve.limits import Limits

INDEX_HOME = Path("indexes")
MODEL_HOME = Path("models")
DEBUG_FLAG = "--debug"
MESSAGE_LIMIT = 400  # characters of an error message shown; a message quoting a huge input is cut


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message as one printable line: newlines escaped, lone surrogates escaped, cut at ``limit``."""
    text = str(message).replace("\r", "\\r").replace("\n", "\\n")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_exception(exc: BaseException) -> str:
    """What went wrong, for an exception nobody anticipated; an OSError names its file."""
    if isinstance(exc, OSError) and exc.filename is not None:
        files = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        return f"{exc.strerror or exc}: {files}"
    return str(exc) or type(exc).__name__


class FriendlyGroup(click.Group):
    """Turns every failure into one line on stderr, and every RetrieverWarning into one ``warning:`` line.

    A RetrieverError is a problem with the input and is shown as it is. Anything else is a last
    resort: ``error: <what> (<ExceptionType>); run with --debug for the traceback``, status 1.
    ``--debug`` (anywhere on the command line) or ``RETRIEVER_DEBUG=1`` lets tracebacks through.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Click's own errors (a bad option, a missing argument) in one line too, with where to find help."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # plain `retriever`: the help is the answer
                exc.show()
                sys.exit(exc.exit_code)
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            _silence_stdout()  # `retriever search ... | head` closed the pipe: exit without noise
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Accept ``--debug`` after the subcommand too, where users put it when told to rerun with it."""
        cut = args.index("--") if "--" in args else len(args)
        if DEBUG_FLAG in args[1:cut]:
            args = [DEBUG_FLAG] + [a for i, a in enumerate(args) if not (a == DEBUG_FLAG and i < cut)]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from retriever.errors import RetrieverError, RetrieverWarning

        debug = bool(ctx.params.get("debug"))
        with warnings.catch_warnings():
            warnings.simplefilter("always", RetrieverWarning)
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except RetrieverError as exc:
                if debug:
                    raise
                click.echo(f"error: {one_line(exc)}", err=True)
                sys.exit(1)
            except KeyboardInterrupt:
                click.echo("interrupted: the index is unchanged", err=True)
                sys.exit(130)
            except Exception as exc:  # noqa: BLE001 - the last resort: one line instead of a traceback
                if debug or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                    raise  # ``main`` ends a closed pipe (``retriever search ... | head``) quietly
                what = one_line(describe_exception(exc))
                click.echo(f"error: {what} ({type(exc).__name__}); run with {DEBUG_FLAG} for the traceback",
                           err=True)
                sys.exit(1)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail on a closed pipe (Python docs' recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Our warnings as one ``warning:`` line; other libraries' in Python's own format, on one line."""
    from retriever.errors import RetrieverWarning

    if issubclass(category, RetrieverWarning):
        click.echo(f"warning: {one_line(message)}", err=True)
    else:
        click.echo(one_line(warnings.formatwarning(message, category, filename, lineno, line).strip()), err=True)


def find_index(index: Path | None) -> Path:
    """The index to use: the one given, or the only one under ``indexes/``."""
    from retriever.errors import IndexNotFoundError

    if index is not None:
        if index.exists() and not index.is_dir():
            raise IndexNotFoundError(f"{index} is a file, not an index folder; give the folder that holds CURRENT")
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
# encoding: how texts become vectors (retriever/encoding/); an index records its backend and quantization
backend_option = click.option(
    "--backend", type=click.Choice(["auto", "torch", "onnx", "openvino"]), default=None,
    help="Encoder runtime. auto (the default for a new index): the fastest on this machine within the quality "
         "bound, measured once per model and machine ('retriever doctor'); an existing index uses its own.",
)
quantize_option = click.option(
    "--quantize", type=click.Choice(["none", "int8"]), default=None,
    help="int8 weights (onnx: dynamic; openvino: static, calibrated once on a shipped set). Default: as the backend.",
)
device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
    help="Where to encode; auto picks an accelerator when one is present.",
)


@click.group(cls=FriendlyGroup)
@click.version_option(package_name="retriever")
@click.option(DEBUG_FLAG, "debug", is_flag=True, envvar="RETRIEVER_DEBUG",
              help="Show the traceback of an error (also RETRIEVER_DEBUG=1).")
def main(debug: bool) -> None:
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
@click.option("--strict", is_flag=True,
              help="Refuse to index (and write nothing) if any file, record or duplicate id would be skipped.")
@click.option("--adapt", "adapt_first", is_flag=True,
              help="First adapt the model to PATH ('retriever adapt'), then index with the adapted model.")
@click.option("--adapt-output", type=click.Path(path_type=Path), default=None,
              help="Where --adapt saves the model (default: models/<name>-adapted).")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Time budget of --adapt [default: 15].")
@click.option("--pairs", "adapt_pairs", type=click.IntRange(1), default=None,
              help="With --adapt: train on exactly N pairs (ignores --minutes).")
@backend_option
@quantize_option
@device_option
@click.option("--store", default=None,
              help="Where a new index keeps passages, vectors and BM25: local (default), milvus:PATH.db (Milvus Lite) "
                   "or milvus:http://host:19530 (a Milvus server). Needs 'retriever[milvus]'.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
              help="Chunk and encode on Ray: --ray starts a local Ray, --ray auto or --ray ray://host:10001 joins a "
                   "cluster. Needs 'retriever[ray]'.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Encoding processes (for machines with many cores) [default: 1]; with --ray, encoding actors "
                   "[default: one per GPU, else one per CPU].")
@quiet_option
def index(path: Path, index_dir: Path | None, model: str | None, ann: str, chunk_tokens: int | None,
          overlap: int | None, wait: float | None, strict: bool, adapt_first: bool, adapt_output: Path | None,
          minutes: float | None, adapt_pairs: int | None, backend: str | None, quantize: str | None, device: str,
          store: str | None, ray_address: str | None, workers: int | None, quiet: bool) -> None:
    """Index PATH (a folder, searched recursively, or a file); re-running updates it incrementally.

    Unreadable files, records with no text and no title, and duplicate ids are skipped with one
    warning per kind (counted, the first few named); --strict refuses them instead.
    """
    from retriever.encoding.backends import backend_label
    from retriever.errors import RetrieverError
    from retriever.retriever import Retriever, default_index_dir

    if not path.exists():
        raise RetrieverError(f"path not found: {path}")
    target = index_dir or default_index_dir(path, INDEX_HOME)
    if target.exists() and not target.is_dir():
        raise RetrieverError(f"{target} is a file, not an index folder; give a folder with --index")
    if adapt_first:
        model = run_adapt(path, adapt_output or MODEL_HOME / f"{target.name}-adapted", quiet,
                          model=model, minutes=minutes, pairs=adapt_pairs)
    elif adapt_output is not None or minutes is not None or adapt_pairs is not None:
        raise RetrieverError("--adapt-output, --minutes and --pairs go with --adapt")
    retriever = Retriever.build(path, index_dir=target, model=model, ann=ann, chunk_tokens=chunk_tokens,
                                overlap=overlap, progress=not quiet, wait=wait, strict=strict, backend=backend,
                                quantize=quantize, device=device, workers=workers, store=store,
                                ray=ray_address)
    retriever.close()
    report = retriever.last_report
    click.echo(f"{target}: {report.summary()}")
    counts, model = retriever.manifest.counts, retriever.manifest.model
    encoder = backend_label(model.get("backend", "torch"), model.get("quantize", "none"))
    click.echo(f"{target}: {counts.get('documents', 0)} documents, {counts.get('passages', 0)} passages "
               f"(encoder {encoder})")


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
@click.option("--diversity", type=click.FloatRange(0, 1), default=None,
              help="Maximal marginal relevance lambda: 1 pure relevance, lower drops near-copies (default: off).")
@click.option("--fetch-k", type=click.IntRange(1), default=None,
              help="Candidates --diversity chooses from (default: max(4k, 20)).")
@click.option("--context", default=None, callback=lambda _ctx, _param, value: context_value(value),
              help="Widen each passage by N neighbouring passages on each side, or 'document' (whole document "
                   "if it fits --context-tokens).")
@click.option("--context-tokens", type=click.IntRange(1), default=2000, show_default=True,
              help="--context document: the most tokens a whole document may have.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per result, for scripts.")
@click.option("--explain", is_flag=True, help="Say why each hit ranks where it does: each side's score, rank and "
              "normalised value, the fused score and the alpha used (JSON: field 'explanation').")
@click.option("--model", default=None, help="Refuse to search unless the index was built with this model.")
@backend_option
@quantize_option
@device_option
def search(query: str, index_dir: Path | None, k: int, passages: bool, mode: str | None, fusion: str | None,
           alpha: float | None, where: tuple[str, ...], rerank: int, diversity: float | None, fetch_k: int | None,
           context: int | str | None, context_tokens: int, as_json: bool, explain: bool, model: str | None,
           backend: str | None, quantize: str | None, device: str) -> None:
    """Search an index for QUERY by meaning."""
    from retriever.errors import RetrieverError
    from retriever.retriever import Retriever

    if not query.strip():
        raise RetrieverError("empty query: give some text to search for")
    retriever = Retriever.load(find_index(index_dir), model=model, backend=backend, quantize=quantize, device=device)
    hits = retriever.search(query, k=k, passages=passages, mode=mode, fusion=fusion, alpha=alpha, where=where,
                            rerank=rerank, diversity=diversity, fetch_k=fetch_k, context=context,
                            context_tokens=context_tokens, explain=explain)
    if as_json:
        for hit in hits:
            click.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
        return
    if not hits:
        click.echo("no results")
    for rank, hit in enumerate(hits, start=1):
        label = hit.title or hit.source or hit.doc_id
        click.echo(f"{rank:>2}. {hit.score:.3f}  {hit.doc_id}  {label}")
        click.echo(f"    {marked(hit.text, hit.highlights)}")
        if hit.explanation is not None:
            click.echo(f"    why: {hit.explanation.line()}")


def context_value(value: str | None) -> int | str | None:
    """--context: a number of neighbouring passages, or "document"."""
    if value is None or value == "document":
        return value
    if value.isdigit():
        return int(value)
    raise click.BadParameter(f"{value!r} is neither a number of passages nor 'document'", param_hint="'--context'")


def marked(text: str, highlights: list[dict[str, int]]) -> str:
    """The passage on one line with its matched words in bold (click.echo drops the bold off a terminal)."""
    pieces, at = [], 0
    for span in sorted(highlights, key=lambda s: s["start"]):
        if span["start"] < at:
            continue
        pieces += [text[at:span["start"]], click.style(text[span["start"]:span["end"]], bold=True)]
        at = span["end"]
    pieces.append(text[at:])
    return " ".join("".join(pieces).split())  # ANSI codes hold no whitespace: flattening keeps them whole


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
        ("encoder", f"{model.get('backend', 'torch')}, {model.get('quantize', 'none')}"
         + (f", calibration {model['calibration']}" if model.get("calibration") else "")),
        *([("chosen by", backend_choice_line(model["backend_choice"]))] if model.get("backend_choice") else []),
        ("dimensions", model["dimension"]),
        ("similarity", f"{details['similarity']} (normalised vectors, inner product)"),
        ("ann", f"{ann['requested']} (segments: {kinds or 'none'}); "
                f"{ann['ram_bytes_per_passage']:.0f} bytes/passage in RAM"),
        *([("flat scan", ", ".join(f"{scan}: {n} segment{'s' if n > 1 else ''}"
                                   for scan, n in ann["flat_scans"].items()))] if ann.get("flat_scans") else []),
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


def backend_choice_line(choice: dict[str, Any]) -> str:
    """How ``--backend auto`` chose an index's encoder: on which CPU class, and why."""
    cpu = choice.get("cpu") or {}
    where = f" on {cpu.get('runs_as', cpu.get('isa'))} ({cpu.get('cpu')}, {cpu.get('cores')} cores)" if cpu else ""
    return f"--backend auto{where}: {choice.get('reason', '')}"


@main.command()
@click.option("--measure", is_flag=True, help="Measure the backends for --model again (and cache the new choice).")
@click.option("--model", default=None, help="Model to measure with --measure (default: all-MiniLM-L6-v2).")
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
def doctor(measure: bool, model: str | None, as_json: bool) -> None:
    """What this machine supports for encoding: CPU class and flags, runtimes, cached --backend auto choices."""
    from retriever.encoding.doctor import machine_lines, machine_report, measurement_lines

    record = None
    if measure:
        from retriever.encoding.auto import auto_choice
        from retriever.encoding.encoder import DEFAULT_MODEL, Encoder

        record = auto_choice(Encoder(model or DEFAULT_MODEL, device="cpu"), remeasure=True, progress=not as_json)
    report = machine_report()
    if as_json:
        click.echo(json.dumps({**report, "measured": record}, indent=2))
        return
    for key, value in machine_lines(report):
        click.echo(f"{key:>12}: {value}")
    if record is not None:
        click.echo("")
        for line in measurement_lines(record):
            click.echo(line)


@main.command()
@index_option
@click.option("--judgments", "judgments_dir", type=click.Path(path_type=Path), default=None,
              help="A BEIR folder (queries.jsonl, qrels/*.tsv) to tune on instead of the index's own judgments.")
@click.option("--split", default=None, help="With --judgments: the qrels split to read (default: every qrels/*.tsv).")
@click.option("--no-fine-tune", "no_fine_tune", is_flag=True, help="Only re-choose the hybrid weight and fusion.")
@click.option("--folds", type=click.IntRange(2), default=5, show_default=True, help="Cross-validation folds.")
@click.option("--seed", type=int, default=0, show_default=True)
@quiet_option
def tune(index_dir: Path | None, judgments_dir: Path | None, split: str | None, no_fine_tune: bool, folds: int,
         seed: int, quiet: bool) -> None:
    """Learn from judged results: re-choose alpha and fusion, fine-tune the model, keep only what CV says helps."""
    from retriever.retriever import Retriever
    from retriever.training.tune import tune as run_tune
    from retriever.training.tune.judgments import beir_judgments, stored_judgments

    target = find_index(index_dir)
    qrels = beir_judgments(judgments_dir, split) if judgments_dir else None
    with Retriever.load(target) as retriever:
        qrels = qrels if qrels is not None else stored_judgments(target)
        log = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
        report = run_tune(retriever, qrels, fine_tune=not no_fine_tune, folds=folds, seed=seed, log=log)
    click.echo(report.summary)


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
        from retriever.errors import CorruptIndexError

        shown = ", ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise CorruptIndexError(f"index {target} is corrupt: {len(problems)} damaged files ({shown}); rebuild it")
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
@backend_option
@quantize_option
@device_option
@click.option("--backends", default="",
              help="Encoding table rows, comma-separated: torch, onnx, onnx-int8, openvino, openvino-int8 "
                   "(beside plain sentence-transformers); written to encoding-<dataset>-<split>.md/.json.")
@click.option("--speed-docs", type=click.IntRange(1), default=500, show_default=True,
              help="Documents every encoding-table row encodes for its docs/s.")
@click.option("--store", default=None,
              help="Also run each engine system on this store (milvus:PATH.db or milvus:http://host:19530), as "
                   "milvus-<system> columns beside the local ones.")
@quiet_option
def bench(dataset: Path, split: str, finetuned: str | None, base_model: str, systems: str, output: Path,
          cache: Path | None, limit_queries: int | None, limit_docs: int | None, seed: int, backend: str | None,
          quantize: str | None, device: str, backends: str, speed_docs: int, store: str | None, quiet: bool) -> None:
    """Benchmark quality and speed on a BEIR dataset folder, beside BM25 and plain sentence-transformers."""
    from retriever.errors import RetrieverError
    from retriever.extras import require_extra

    require_extra("bench", "psutil", "matplotlib")  # before minutes of work, not after
    from retriever.eval.bench import SYSTEMS, BenchConfig, markdown_table, run_bench

    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SYSTEMS]
    from retriever.encoding.backends import parse_backend_label

    rows = tuple(b.strip() for b in backends.split(",") if b.strip())
    if not chosen and not rows:  # an empty --systems is for an encoding-table-only run
        raise RetrieverError(f"--systems is empty; choose from {', '.join(SYSTEMS)} (or give --backends)")
    if unknown:
        raise RetrieverError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    for row in rows:
        parse_backend_label(row)  # an unknown backend is refused before any work
    if store is not None:
        from retriever.index.backend import parse_store

        if parse_store(store).is_local:
            raise RetrieverError("--store names a second store to compare with the local one: milvus:PATH.db or "
                                 "milvus:http://host:19530")
    config = BenchConfig(dataset=dataset, split=split, model=base_model, finetuned=finetuned, systems=chosen,
                         output=output, limit_queries=limit_queries, limit_docs=limit_docs, seed=seed,
                         backend=backend, quantize=quantize, device=device, backends=rows, speed_docs=speed_docs,
                         store=store)
    if cache is not None:
        config.cache = cache
    report = run_bench(config, log=lambda line: click.echo(line, err=True), progress=not quiet)
    if chosen:
        click.echo(markdown_table(report))
    if report.get("encoding"):
        from retriever.eval.encoding_bench import encoding_markdown

        click.echo(encoding_markdown(report, f"{report['dataset_name']} ({report['split']})"))
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
@click.option("--l2sp", type=click.FloatRange(min=0), default=None,
              help="Pull toward the starting weights: adds L2SP * sum((w - w0)^2) to the loss [default: 0, off].")
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
              help="Training queries held out for dev when there is no qrels/dev.tsv [default: 0.1; with fewer "
                   "than 300 training queries and no --dev-fraction or qrels/dev.tsv, 5-fold cross-validation "
                   "over all of them decides whether the trained model is kept].")
@click.option("--eval-steps", type=click.IntRange(0), default=0, help="Evaluate on dev every N steps (0: each epoch).")
@click.option("--max-steps", type=click.IntRange(0), default=0, help="Stop after N steps (0: no limit; smoke runs).")
@click.option("--seed", type=int, default=None, help="Seed for the dev split, negatives and shuffling [default: 42].")
@click.option("--resume", is_flag=True, help="Continue the interrupted run saved in OUTPUT/checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a model previously trained into OUTPUT.")
@device_option
@quiet_option
def train(data: Path, output: Path, quiet: bool, negatives_range: str | None, negatives_skip: int | None,
          rerank_head: str, **options: Any) -> None:
    """Fine-tune a model on DATA: a BEIR folder (qrels/train.tsv) or a JSONL file of training pairs."""
    if rerank_head == "mlp":
        from retriever.training.config import DEFAULT_SEED
        from retriever.training.head import train_mlp_head

        seed = options["seed"] if options.get("seed") is not None else DEFAULT_SEED  # --seed 0 is a seed
        head = train_mlp_head(data, options.get("model") or "all-MiniLM-L6-v2", output, progress=not quiet,
                              seed=seed)
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
    if result.cv is not None:
        from retriever.training.crossval import summary

        click.echo(summary(result.cv))
    if result.dev_before and result.dev_after:
        before, after = result.dev_before["ndcg@10"], result.dev_after["ndcg@10"]
        click.echo(f"dev nDCG@10: {before:.4f} -> {after:.4f}")
    click.echo(f"{result.output}: {result.steps} steps in {result.seconds / 60:.1f} min, "
               f"peak memory {result.peak_memory_mb:.0f} MB")


@main.command()
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="Directory for the adapted model.")
@click.option("--model", default=None, help="Base model name or path [default: all-MiniLM-L6-v2].")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Time budget for the whole run; the pairs are sized to fit it on this machine [default: 15].")
@click.option("--sources", default=None,
              help="Pair sources, comma-separated: ict, title, crops, keyterms [default: ict,title].")
@click.option("--pairs", type=click.IntRange(1), default=None, help="Train on exactly N pairs (ignores --minutes).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Pairs per step [default: 32].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate [default: 2e-4].")
@click.option("--max-seq-length", type=click.IntRange(8), default=None, help="Tokens per text [default: 256].")
@click.option("--negatives", type=click.Choice(["bm25", "dense", "both", "none"]), default=None,
              help="Where hard negatives are mined [default: bm25].")
@click.option("--keep-margin", type=click.FloatRange(min=0), default=None,
              help="Held-out pseudo-pair nDCG@10 gain needed to keep the adapted model [default: 0.01].")
@click.option("--seed", type=int, default=None, help="Seed for pairs, held-out documents and shuffling [default: 42].")
@click.option("--overwrite", is_flag=True, help="Replace a model previously saved in OUTPUT.")
@quiet_option
def adapt(corpus: Path, output: Path, quiet: bool, **options: Any) -> None:
    """Adapt a model to the documents under CORPUS, without labels: pairs cut from the documents themselves."""
    run_adapt(corpus, output, quiet, **options)


def run_adapt(corpus: Path, output: Path, quiet: bool, **options: Any) -> str:
    """Run ``retriever adapt`` and print its verdict; returns the model directory to index with."""
    from retriever.training.adapt import AdaptConfig
    from retriever.training.adapt import adapt as run

    settings = {k: v for k, v in options.items() if v is not None}
    if "sources" in settings:
        settings["sources"] = tuple(s.strip() for s in settings["sources"].split(",") if s.strip())
    config = AdaptConfig(corpus=corpus, output=output, progress=not quiet, **settings)
    try:
        result = run(config)
    except KeyboardInterrupt:
        click.echo("interrupted: no adapted model saved", err=True)
        sys.exit(130)
    click.echo(result.verdict)
    click.echo(f"{result.output}: {result.train.steps} steps, {sum(result.pairs.values())} pairs in "
               f"{result.seconds / 60:.1f} min, peak memory {result.train.peak_memory_mb:.0f} MB")
    return str(result.output)


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
@click.argument("query")
@click.argument("doc_id")
@click.argument("grade", type=click.IntRange(0, 2))
@index_option
def judge(query: str, doc_id: str, grade: int, index_dir: Path | None) -> None:
    """Grade document DOC_ID for QUERY: 0 not relevant, 1 relevant, 2 highly relevant (the latest grade wins)."""
    from retriever.errors import RetrieverWarning
    from retriever.judgments import GRADES
    from retriever.retriever import Retriever

    with Retriever.load(find_index(index_dir)) as retriever:
        judged = retriever.judge(query, doc_id, grade)
        if retriever.get(judged.doc_id) is None:
            warnings.warn(f"document {judged.doc_id!r} is not in index {retriever.layout.name}; judged anyway "
                          "(a judgment is kept for the query and the id)", RetrieverWarning, stacklevel=1)
    click.echo(f"{judged.doc_id} graded {judged.grade} ({GRADES[judged.grade]}) for {judged.query!r}")


@main.group()
def judgments() -> None:
    """List, export and import the relevance judgments kept with an index (judgments.sqlite)."""


def judged_index(index_dir: Path | None) -> Path:
    """The index whose judgments a command reads or writes; refused if it is not an index."""
    from retriever.index.layout import IndexLayout

    target = find_index(index_dir)
    IndexLayout(target).current()
    return target


@judgments.command("list")
@index_option
@click.option("--query", default=None, help="Only this query's judgments.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per judgment, for scripts.")
def judgments_list(index_dir: Path | None, query: str | None, as_json: bool) -> None:
    """The judgments, oldest first: grade, document id, query."""
    from retriever.judgments import JudgmentStore

    found = JudgmentStore(judged_index(index_dir)).all(query)
    for judgment in found:
        click.echo(json.dumps(judgment.to_dict(), ensure_ascii=False) if as_json
                   else f"{judgment.grade}  {judgment.doc_id}  {judgment.query}")
    if not found and not as_json:
        click.echo("no judgments")


@judgments.command("export")
@click.argument("out_dir", type=click.Path(path_type=Path))
@index_option
def judgments_export(out_dir: Path, index_dir: Path | None) -> None:
    """Write the judgments and the index's documents as a new BEIR folder OUT_DIR ('retriever bench' and
    'retriever train' read it)."""
    from retriever.eval.judged_beir import export_judgments
    from retriever.retriever import Retriever

    with Retriever.load(judged_index(index_dir)) as retriever:
        report = export_judgments(retriever, out_dir)
    missing = (f"; {report.judged_missing} about a document not in the index (in qrels/test.tsv, not in "
               "qrels/train.tsv)") if report.judged_missing else ""
    click.echo(f"{report.folder}: {report.judgments} judgments of {report.queries} queries, "
               f"{report.documents} documents{missing}")


@judgments.command("import")
@click.argument("beir_dir", type=click.Path(path_type=Path))
@index_option
@click.option("--split", default="test", show_default=True, help="Qrels split to read (qrels/<split>.tsv).")
def judgments_import(beir_dir: Path, index_dir: Path | None, split: str) -> None:
    """Read the judgments of a BEIR folder (queries.jsonl, qrels/<split>.tsv) into the index's; all or none."""
    from retriever.eval.judged_beir import import_judgments
    from retriever.judgments import JudgmentStore

    target = judged_index(index_dir)
    count, queries = import_judgments(JudgmentStore(target), beir_dir, split)
    click.echo(f"{target}: {count} judgments of {queries} queries imported")


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


@main.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; only this machine can connect unless you change it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--api-key", envvar="RETRIEVER_API_KEY", show_envvar=True, default=None,
              help="Require 'Authorization: Bearer KEY' on every endpoint but /health (prefer the variable: "
                   "an option shows in the process list).")
@click.option("--read-only", is_flag=True, help="Turn the write endpoints off (403).")
@click.option("--model", default=None, help="Refuse to serve unless the index was built with this model.")
@click.option("--max-k", type=click.IntRange(1), default=Limits.max_k, show_default=True,
              help="Most results per query.")
@click.option("--max-batch", type=click.IntRange(1), default=Limits.max_batch, show_default=True,
              help="Most queries per batch search (and ids per delete).")
@click.option("--max-documents", type=click.IntRange(1), default=Limits.max_documents, show_default=True,
              help="Most documents per add request.")
@click.option("--max-query-chars", type=click.IntRange(1), default=Limits.max_query_chars, show_default=True)
@click.option("--max-body-mb", type=click.FloatRange(0, min_open=True), default=Limits.max_body_bytes / 2**20,
              show_default=True,
              help="Largest request body, in MiB.")
@click.option("--batch-searches/--no-batch-searches", default=True, show_default=True,
              help="Encode the queries of concurrent searches as one batch.")
@click.option("--access-log", is_flag=True, help="Log every request (errors are always logged).")
def serve(index_dir: Path | None, host: str, port: int, api_key: str | None, read_only: bool, model: str | None,
          max_k: int, max_batch: int, max_documents: int, max_query_chars: int, max_body_mb: float,
          batch_searches: bool, access_log: bool) -> None:
    """Serve an index over HTTP (FastAPI; OpenAPI docs at /docs) until Ctrl-C."""
    from retriever.extras import require_extra

    require_extra("serve", "fastapi", "uvicorn", feature="retriever serve")
    import uvicorn

    from retriever.serve.app import create_app
    from retriever.serve.errors import JsonErrorH11Protocol

    limits = Limits(max_body_bytes=int(max_body_mb * 2**20), max_query_chars=max_query_chars, max_k=max_k,
                    max_batch=max_batch, max_documents=max_documents)
    app = create_app(find_index(index_dir), api_key=api_key, read_only=read_only, limits=limits, model=model,
                     batch_searches=batch_searches)
    if not api_key and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host} without an API key: anyone who can reach it can read "
                   "and change the index; set RETRIEVER_API_KEY", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log, server_header=False,
                http=JsonErrorH11Protocol)  # what uvicorn refuses itself is answered as JSON too


@main.command()
@index_option
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--api-key", envvar="RETRIEVER_API_KEY", show_envvar=True, default=None,
              help="Require this key (the page asks for it once per tab).")
@click.option("--read-only", is_flag=True, help="Turn writes off, judging from the page included.")
@click.option("--browser/--no-browser", default=True, show_default=True, help="Open the page in the browser.")
def ui(index_dir: Path | None, port: int, api_key: str | None, read_only: bool, browser: bool) -> None:
    """Open the search page of an index: search, see why each hit ranks, read documents, judge results."""
    from retriever.extras import require_extra

    require_extra("serve", "fastapi", "uvicorn", feature="retriever ui")
    from retriever.serve.ui import run_ui

    run_ui(find_index(index_dir), port=port, open_browser=browser, api_key=api_key, read_only=read_only,
           announce=lambda line: click.echo(line))
