"""Render every results table and quoted figure in README.md and docs/*.md from benchmarks/results/*.json.

    python -m benchmarks.render_tables          # rewrite the marked regions in place (also: make tables)
    python -m benchmarks.render_tables --check  # exit 1 and name each region that differs from its JSON

Figures typed by hand go stale; these are written only by this script, from what a benchmark wrote.

**Tables.** A region ``<!-- table: NAME -->`` ... ``<!-- /table -->`` holds the table ``NAME`` of
``TABLES`` below and, under it, the results file(s) it came from with the command that wrote each, its
date and the machine (CPU model and instruction-set class). The script replaces everything between the
two markers. The same table may appear in several files (the README's encoder table is also in
docs/encoding.md).

**Figures in prose.** ``<!-- fig FILE PATH [xSCALE] FORMAT -->TEXT<!-- /fig -->`` holds one value of
``benchmarks/results/FILE``: ``PATH`` is the keys (or list positions) down to it separated by ``/``,
``xSCALE`` multiplies it (``x1000``: seconds to milliseconds), ``FORMAT`` is a Python format spec
(``.1f``, ``,.0f``, ``.0%``). The script replaces ``TEXT``.

**Provenance.** ``command``, ``date`` and ``machine`` come from the JSON (``retriever.eval.machine.provenance``
writes them since this script exists). Older files recorded less: their CPU model is taken from
``environment.cpu`` where they have one, and the rest from ``FALLBACK`` below (each entry says where it comes
from: the docs that quoted the command, or ``git log --format=%ad`` of the file). A machine whose
instruction-set class was not recorded says so rather than guessing.

**Which Markdown tables must be rendered** (checked by tests/test_docs_tables.py): a *figure table* is a
table in which at least half of the body cells outside the first column, not counting empty cells and
dashes, are figures. A *figure* cell is one whose text, without Markdown emphasis, code marks and footnote
signs, starts with a number (``12``, ``-0.7``, ``1,536``, ``0.74-0.76``) followed by at most three words
(units such as ``ms``, ``GB``, ``min``). Tables of words (endpoints, losses, options, where each part
lives) are not figure tables and may be typed. Every figure table must sit in a rendered region.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RESULTS_LABEL = "benchmarks/results/"


def documents() -> list[Path]:
    """The Markdown files whose tables are rendered: the README and every page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@cache
def load(name: str) -> Any:
    return json.loads((RESULTS / name).read_text())


# provenance ------------------------------------------------------------------------------------------------
# What older results files did not record. Commands: as the docs quoted them when the figures were added;
# dates: `git log --format=%ad -- benchmarks/results/FILE` (the commit that added the file).
FALLBACK: dict[str, dict[str, str]] = {
    "hybrid_sweep.json": {"command": "python benchmarks/hybrid_sweep.py ../shared/datasets/scifact",
                          "date": "2026-11-28"},
    "capacity.json": {"command": "python benchmarks/capacity.py"},
    "milvus_latency.json": {"command": "python benchmarks/milvus_latency.py ../shared/datasets/scifact"},
    "ray_scifact.json": {"command": "python benchmarks/ray_scifact.py ../shared/datasets/scifact"},
    "reliability.json": {"date": "2026-11-29"},
    "lexical_segments.json": {"date": "2026-11-29"},
    "adapt_scifact-run1-lr2e-4-card.json": {
        "command": "python benchmarks/adapt_scifact.py --data ../shared/datasets/scifact (settings in the card)"},
    "adapt_scifact-run2-lr5e-5-card.json": {
        "command": "python benchmarks/adapt_scifact.py --data ../shared/datasets/scifact --systems default,base"},
    "twin_cv_sweep.json": {"machine": "NVIDIA H200 GPU (the file's note)"},
}
ARCHITECTURES = {"x86_64", "aarch64", "arm64", "amd64", "i386", "i686", ""}


def command_of(name: str) -> str:
    data = load(name)
    command = data.get("command")
    if not isinstance(command, str) or command == "adapt":  # an adapt card's "command" is the CLI verb
        command = FALLBACK.get(name, {}).get("command", "not recorded")
    first, _, rest = command.partition(" ")
    if first.endswith("/retriever"):  # a venv's absolute path says nothing about the run
        command = "retriever " + rest
    return command


def date_of(name: str) -> str:
    data = load(name)
    date = data.get("date") or data.get("created_at") or FALLBACK.get(name, {}).get("date")
    return str(date)[:10] if date else "date not recorded"


def machine_of(name: str) -> str:
    """"CPU model, N cores, instruction-set class" from what the file recorded."""
    data = load(name)
    if "machine" in FALLBACK.get(name, {}):
        return FALLBACK[name]["machine"]
    machine = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    environment = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    cpu = machine.get("cpu") or environment.get("cpu")
    cpu = tidy_cpu(cpu) if cpu and cpu not in ARCHITECTURES else "CPU model not recorded"
    cores = machine.get("cores") or machine.get("cpus") or environment.get("cores") or environment.get("cpus")
    isa = machine.get("isa") or "instruction set not recorded"
    if machine.get("caps"):  # runtimes capped below the CPU (ONEDNN_MAX_CPU_ISA=AVX2, ...)
        caps = " ".join(f"{k}={v}" for k, v in machine["caps"].items())
        isa += f" run as {machine.get('runs_as', '?')} ({caps})"
    return ", ".join([cpu, *([f"{cores} cores"] if cores else []), isa])


def tidy_cpu(model: str) -> str:
    """'Intel(R) Xeon(R) Processor' -> 'Intel Xeon'."""
    model = re.sub(r"\((R|TM|tm)\)", "", model)
    model = re.sub(r"\b(Processor|CPU)\b", "", model)
    return " ".join(model.split())


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def provenance_line(name: str) -> str:
    return (f"`{RESULTS_LABEL}{name}`: `{command_of(name)}`, {date_of(name)}, {machine_of(name)}")


# tables ----------------------------------------------------------------------------------------------------
@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    sources: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        sources = list(dict.fromkeys(self.sources))
        if len(sources) == 1:
            lines += ["", "Rendered from " + provenance_line(sources[0]) + "."]
        else:
            lines += ["", "Rendered from:", ""] + [f"- {provenance_line(s)}" for s in sources]
        return "\n".join(lines)


def fmt(value: Any, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def encoding_table() -> Table:
    name = "encoding-scifact-test.json"
    rows = []
    for label, row in load(name)["encoding"]["rows"].items():
        quality = row.get("quality", {})
        rows.append([label, fmt(row["docs_per_second"], ".1f"), f"{row['docs_per_second_ratio']:.2f}x",
                     fmt(row["query_encode_p50_ms"], ".2f"), f"{row['query_encode_ratio']:.2f}x",
                     fmt(row.get("dense_search_p50_ms"), ".2f"), fmt(row.get("hybrid_search_p50_ms"), ".2f"),
                     fmt(quality.get("ndcg@10"), ".4f"), fmt(row.get("ndcg_delta_vs_torch"), "+.4f"),
                     fmt(quality.get("recall@100"), ".4f"), fmt(row.get("export_seconds"), ".0f")])
    return Table(["encoder", "docs/s", "vs reference", "query encode p50 (ms)", "vs reference",
                  "dense search p50 (ms)", "hybrid search p50 (ms)", "nDCG@10", "vs torch", "Recall@100",
                  "export (s)"], rows, [name])


def serve_load_table() -> Table:
    name = "serve_load.json"
    data = load(name)
    added = f"adding {data['config']['added_documents']:,} documents"
    rows = []
    for level in data["levels"]:
        for key, label in (("idle", "idle"), ("writing", added)):
            if key in level:
                run = level[key]
                lost = str(level.get("lost", "")) if key == "writing" else ""
                rows.append([str(level["clients"]), label, f"{run['throughput_rps']:.1f}", f"{run['p50_ms']:.0f}",
                             f"{run['p99_ms']:.0f}", str(run["failed"]), lost])
    return Table(["clients", "index", "searches/s", "p50 (ms)", "p99 (ms)", "failed", "documents lost"], rows,
                 [name])


def serve_writes_table() -> Table:
    name = "serve_load.json"
    rows = []
    for level in load(name)["levels"]:
        adding, writing = level["adding"], level["writing"]
        rows.append([str(level["clients"]), f"{adding['seconds']:.0f} s", f"{adding['documents_per_second']:.0f}",
                     f"{adding['batch_p50_ms'] / 1000:.2f} s", str(level["server"]["commits"]),
                     f"{level['documents']:,} of {level['expected_documents']:,}",
                     f"{writing['answered_while_writing']} of {writing['requests']}",
                     f"{level['in_process']['p50_ms']:.1f}", f"{level['server_peak_rss_mb'] / 1000:.1f} GB"])
    return Table(["clients", "adds took", "documents/s added", "batch p50", "commits", "documents at the end",
                  "searches answered during the adds", "in-process search p50 (ms)", "server peak RSS"], rows,
                 [name])


def serve_batching_table() -> Table:
    name = "serve_load_batching.json"
    rows = []
    for level in load(name)["levels"]:
        rows.append([str(level["clients"]), f"{level['idle_unbatched']['throughput_rps']:.1f}",
                     f"{level['idle']['throughput_rps']:.1f}", f"{level['idle_unbatched']['p50_ms']:.0f}",
                     f"{level['idle']['p50_ms']:.0f}"])
    return Table(["clients", "searches/s, --no-batch-searches", "searches/s, batched",
                  "p50 (ms), --no-batch-searches", "p50 (ms), batched"], rows, [name])


def scifact_table() -> Table:
    """The `retriever bench` systems table, as retriever/eval/bench.py's markdown_table writes it."""
    name = "scifact-test.json"
    systems = load(name)["systems"]
    metrics = [("nDCG@10", "quality", "ndcg@10", ".3f"), ("Recall@100", "quality", "recall@100", ".3f"),
               ("MRR@10", "quality", "mrr@10", ".3f"), ("MAP@100", "quality", "map@100", ".3f"),
               ("docs encoded/s", "speed", "encode_docs_per_second", ".1f"),
               ("build time (s)", "speed", "build_seconds", ".1f"), ("index size (MB)", "speed", "index_bytes", "mb"),
               ("bytes/doc", "speed", "bytes_per_document", ".0f"),
               ("latency p50 (ms)", "speed", "latency_p50_ms", ".1f"),
               ("latency p95 (ms)", "speed", "latency_p95_ms", ".1f"),
               ("latency p99 (ms)", "speed", "latency_p99_ms", ".1f"),
               ("batch queries/s", "speed", "batch_queries_per_second", ".0f"),
               ("peak RSS (MB)", "speed", "peak_rss_mb", ".0f"),
               ("ANN recall@10 vs exact", "speed", "ann_recall_at_10", ".3f")]
    rows = []
    for label, group, key, spec in metrics:
        cells = [label]
        for system, figures in systems.items():
            value = figures[group].get(key)
            if value is None:
                cells.append("–")
                continue
            text = f"{value / 1e6:.2f}" if spec == "mb" else format(value, spec)
            ratio = figures[group].get(f"{key}_ratio")
            if ratio is not None and system != "reference":
                text += f" ({ratio:.2f}x)"
            cells.append(text)
        rows.append(cells)
    return Table(["metric", *systems], rows, [name])


def core_speed_table() -> Table:
    name = "core_speed.json"
    data = load(name)
    through, latency, cli = data["throughput"], data["latency"], data["cli"]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    def p50_p95(key: str) -> str:
        return f"{latency[key]['p50']:.1f} / {latency[key]['p95']:.1f}"

    backend = f", {latency['backend']}" if latency.get("backend") else ""

    rows = [
        [f"indexing (`Retriever.build`), passages/s over {through['passages']} passages",
         f"{mean(through['index_passages_per_second']):.1f}"],
        ["plain `SentenceTransformer.encode`, same passages/s",
         f"{mean(through['plain_encode_passages_per_second']):.1f}"],
        ["indexing / plain encode", f"{through['ratio']:.2f}x"],
        [f"dense search p50 / p95 (ms), {latency['passages']:,} passages", p50_p95("search_dense_ms")],
        [f"of which query encoding p50 / p95 (ms){backend}", p50_p95("query_encoding_ms")],
        ["of which the dense lookup in the index p50 / p95 (ms)", p50_p95("ann_lookup_ms")],
        ["hybrid search p50 / p95 (ms)", p50_p95("search_hybrid_ms")],
        ["lexical search p50 / p95 (ms)", p50_p95("search_lexical_ms")],
        *[[f"{mode} search, every hit's snippet and highlights read, p50 / p95 (ms)", p50_p95(key)]
          for mode in ("dense", "hybrid") if (key := f"search_{mode}_with_snippets_ms") in latency],
        ["`retriever --help` (s)", f"{cli['help_seconds']:.2f}"],
        ["cold `retriever search` (s)", f"{cli['cold_search_seconds']:.1f}"],
    ]
    return Table(["measure", "value"], rows, [name])


def hybrid_sweep_table() -> Table:
    name = "hybrid_sweep.json"
    data = load(name)
    rows = [[f"**{setting}**" if setting == data["best_on_train"] else setting, f"{scores['train']:.4f}",
             f"{scores['test']:.4f}"] for setting, scores in data["ndcg@10"].items()]
    return Table(["fusion", "nDCG@10, train queries", "nDCG@10, test queries"], rows, [name])


# (label, options, file, system index, mark on the dense cell, bold)
TRAINING_ROWS: list[tuple[str, str, str, int, str, bool]] = [
    ("twin, InfoNCE (default, GradCache)", "", "train_scifact-20261128-221706.json", 0, "", True),
    ("twin, InfoNCE, one pass", "`--no-cached`", "train_scifact-20261128-205928.json", 0, "", False),
    ("half-twin, InfoNCE", "`--architecture half-twin`", "train_scifact-20261128-212140.json", 0, "", False),
    ("twin, InfoNCE", "`--lr 1e-4`", "train_scifact-20261128-203246.json", 0, "", False),
    ("twin, InfoNCE", "`--lr 5e-5` (the first default)", "train_scifact-20261128-183058.json", 0, "", False),
    ("half-twin, InfoNCE", "`--architecture half-twin --lr 5e-5`", "train_scifact-20261128-190937.json", 0, "",
     False),
    ("twin, triplet (m = 0.2)", "`--loss triplet`", "train_scifact-20261128-214716.json", 0, " †", False),
    ("twin, triplet (m = 0.2)", "`--loss triplet --lr 5e-5`", "train_scifact-20261128-201202.json", 1, "", False),
    ("twin, contrastive (m = 1.0)", "`--loss contrastive --lr 5e-5`", "train_scifact-20261128-201202.json", 0, " *",
     False),
]


def training_table() -> Table:
    base = load("scifact-test.json")["systems"]
    rows = [["all-MiniLM-L6-v2, untrained", "", f"{base['flat']['quality']['ndcg@10']:.3f}",
             f"{base['hybrid']['quality']['ndcg@10']:.3f}", f"{base['flat']['quality']['recall@100']:.3f}", "", ""]]
    sources = ["scifact-test.json"]
    for label, options, name, index, mark, bold in TRAINING_ROWS:
        run = load(name)["systems"][index]
        dense, hybrid = f"{run['ndcg@10']:.3f}", f"{run['hybrid_ndcg@10']:.3f}"
        if bold:
            label, dense, hybrid = f"**{label}**", f"**{dense}**", f"**{hybrid}**"
        rows.append([label, options, dense + mark, hybrid, f"{run['recall@100']:.3f}",
                     f"{run['training_minutes']:.1f} min", f"{run['peak_rss_mb'] / 1000:.1f} GB"])
        sources.append(name)
    return Table(["model", "options", "nDCG@10 dense", "nDCG@10 hybrid", "Recall@100", "training", "peak RSS"],
                 rows, sources)


def twin_cv_table() -> Table:
    name = "twin_cv_sweep.json"
    data = load(name)
    rows = []
    for result in data["results"]:
        changes = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                            for key, value in result["changes"].items()) or "none"
        rows.append([result["name"], changes, f"{result['cv_ndcg@10']:.3f}", str(result["steps"])])
    return Table(["setting", "change from the baseline", f"CV nDCG@10 ({data['folds']} folds)", "steps"], rows,
                 [name])


ADAPT_RUNS = [("1", "lr 2e-4, 256 tokens, GradCache (retriever train's settings)",
               "adapt_scifact-run1-lr2e-4-card.json"),
              ("2", "defaults: lr 5e-5, 128 tokens, no GradCache", "adapt_scifact-run2-lr5e-5-card.json")]


def adapt_table() -> Table:
    rows = []
    for run, options, name in ADAPT_RUNS:
        card = load(name)
        adaptation = card["adaptation"]
        pairs = ", ".join(f"{source} {count}" for source, count in adaptation["pairs_by_source"].items())
        history = card["dev_history"]
        verdict = "adapted model kept" if adaptation["kept_adapted_model"] else "base model kept"
        rows.append([run, options, f"{card['steps']} x {card['hyperparameters']['batch_size']} ({pairs})",
                     f"{adaptation['speed']['step_seconds']:.0f} s",
                     f"{history[0]['scores']['ndcg@10']:.3f} -> {history[-1]['scores']['ndcg@10']:.3f}", verdict,
                     f"{adaptation['seconds_total'] / 60:.1f} min", f"{card['peak_memory_mb'] / 1000:.1f} GB"])
    return Table(["run", "options", "steps x pairs", "probe step", "held-out pseudo-pair nDCG@10", "verdict",
                  "time", "peak RSS"], rows, [name for _, _, name in ADAPT_RUNS])


def scale_table() -> Table:
    sources = ["scale.json", "scale-1m-ivf-pq.json"]
    rows = []
    for name in sources:
        for r in load(name)["results"]:
            kinds = " + ".join(f"{count} {kind}" for kind, count in r["ann"].items())

            def ms(key: str, r: dict = r) -> str:
                return f"{r[key]['p50']:.1f} / {r[key]['p95']:.1f} ms"

            rows.append([f"{r['passages']:,}", f"{r['ann_requested']} ({kinds})", f"{r['build_seconds']:.0f} s",
                         f"{r['disk_bytes'] / 1e6:,.0f} MB", f"{r['open_seconds']:.2f} s",
                         f"{r['rss_search_mb']:,.0f} MB", f"{r['ram_bytes_per_passage']:,.0f}", ms("dense_ms"),
                         ms("lexical_ms"), ms("hybrid_ms"), f"{r['dense_recall_at_10']:.3f}",
                         f"{r['add_1_seconds'] * 1000:.0f} ms", f"{r['add_1000_seconds']:.2f} s",
                         f"{r['delete_1000_seconds']:.2f} s"])
    return Table(["passages", "vector index", "build", "on disk", "open", "RSS searching", "RAM B/passage",
                  "dense p50 / p95", "lexical p50 / p95", "hybrid p50 / p95", "dense recall@10", "add 1",
                  "add 1,000", "delete 1,000"], rows, sources)


def scale_classes_table() -> Table:
    """Dense and hybrid p50 at scale per flat scan (rows) and CPU class (columns): benchmarks/scale_classes.py."""
    name = "scale_classes.json"
    results = load(name)["results"]
    def column(r: dict) -> tuple[str, bool, str]:  # a run appended from another machine names its CPU
        return r["class"], r["capped"], r.get("machine", {}).get("cpu", "")

    classes = list(dict.fromkeys(column(r) for r in results))
    header = ["passages", "flat scan", "RAM B/passage", "open"]
    for isa, capped, cpu in classes:
        label = f"{isa}{' (emulated)' if capped else ''}{f' ({cpu})' if cpu else ''}"
        header += [f"{label}: dense p50 wall / CPU", "hybrid p50 wall / CPU", "dense recall@10"]
    rows = []
    for size in dict.fromkeys(r["passages"] for r in results):
        by_class = {column(r): r for r in results if r["passages"] == size}
        # a row per way of scanning: runs recorded after the 8-bit scan changed name it (``label``)
        scans: dict[str, dict] = {}
        for r in by_class.values():
            for scan, m in r["scans"].items():
                scans.setdefault(m.get("label", scan), m)
        for label, first in scans.items():
            row = [f"{size:,}", label, f"{first['ram_bytes_per_passage']:,.0f}", f"{first['open_seconds']:.2f} s"]
            for key in classes:
                measured = next((m for scan, m in by_class.get(key, {}).get("scans", {}).items()
                                 if m.get("label", scan) == label), None)
                row += ["–", "–", "–"] if measured is None else [
                    f"{measured['dense_ms']['p50']:.1f} / {measured['dense_cpu_ms']['p50']:.1f} ms",
                    f"{measured['hybrid_ms']['p50']:.1f} / {measured['hybrid_cpu_ms']['p50']:.1f} ms",
                    f"{measured['dense_recall_at_10']:.3f}"]
            rows.append(row)
        load_row = [f"{size:,}", "load average (1 min)", "", ""]
        for key in classes:
            run = by_class.get(key)
            load_row += ["–" if run is None else " to ".join(f"{x:.1f}" for x in run["load_average_1min"]), "", ""]
        rows.append(load_row)
    return Table(header, rows, [name])


def compressed_table() -> Table:
    name = "compressed_vectors.json"
    rows = []
    for kind, r in load(name)["scifact"]["kinds"].items():
        rows.append([kind, f"`{r['factory']}`" if r["factory"] else "exact", f"{r['ram_bytes_per_passage']:,.0f}",
                     f"{r['recall@10_before_rescoring']:.3f}", f"{r['recall@10_after_rescoring']:.3f}",
                     f"{r['search_ms']['p50']:.2f}"])
    return Table(["kind", "FAISS index", "RAM B/passage", "recall@10 before rescoring", "recall@10 after rescoring",
                  "search p50 (ms)"], rows, [name])


RELIABILITY_GROUPS = [("file", "files"), ("record", "records"), ("query", "queries"), ("filter", "filters"),
                      ("option", "options and paths"), ("index", "damaged indexes"), ("subprocess", "real processes")]


def reliability_table() -> Table:
    name = "reliability.json"
    groups = load(name)["by_group"]
    rows = []
    for key, label in RELIABILITY_GROUPS:
        g = groups[key]
        rows.append([label, str(sum(g.values())), str(g["ok"]), str(g["error"]), str(g["traceback"]),
                     str(g["multi-line"]), str(g["crash"]), str(g["hang"]), str(g["unexpected"]),
                     str(g["wrong"]) if key == "filter" else "–"])
    return Table(["group", "cases", "answered", "one-line errors", "tracebacks", "not one line", "crashes", "hangs",
                  "unexpected outcomes", "wrong filter results"], rows, [name])


def disk_trials_table() -> Table:
    name = "reliability.json"
    trials = load(name)["disk_trials"]
    kill, runs, readers = trials["kill9"], trials["concurrent_index_runs"], trials["readers_during_commits"]
    rows = [
        ["`kill -9` during index, add and remove (half at random moments, half at chosen points: after a segment "
         "is published, between the manifest and the `CURRENT` switch, while a deletion file is written)",
         str(kill["trials"]), f"{kill['corrupt']} corrupt indexes (each loads, agrees with itself, passes `check`, "
         f"takes the next write), {kill['lost_user_files']} user files lost"],
        ["two `retriever index` runs of different folders into one index, started together", str(runs["trials"]),
         f"both updates applied {runs['both_applied']} times, {runs['corrupt']} corrupt, "
         f"{runs['lost_user_files']} user files lost"],
        ["a process searching in a loop while another commits",
         f"{readers['commits']} commits, {readers['searches']:,} searches",
         f"{readers['false_errors']} false errors, {readers['tracebacks']} tracebacks"],
    ]
    return Table(["trial", "runs", "outcome"], rows, [name])


MILVUS_SYSTEMS = [("flat", "dense, flat"), ("hnsw", "dense, hnsw"), ("lexical", "lexical (BM25)"),
                  ("hybrid", "hybrid (convex, default)"), ("hybrid-rrf", "hybrid-rrf")]


def milvus_quality_table() -> Table:
    name = "scifact-test-milvus.json"
    systems = load(name)["systems"]
    rows = []
    for key, label in MILVUS_SYSTEMS:
        local, milvus = systems[key]["quality"], systems[f"milvus-{key}"]["quality"]
        rows.append([label, f"{local['ndcg@10']:.4f}", f"{milvus['ndcg@10']:.4f}",
                     f"{milvus['ndcg@10'] - local['ndcg@10']:+.4f}",
                     f"{local['recall@100']:.3f} / {milvus['recall@100']:.3f}",
                     f"{local['mrr@10']:.3f} / {milvus['mrr@10']:.3f}"])
    return Table(["system", "nDCG@10 local", "nDCG@10 Milvus", "difference", "Recall@100 local / Milvus",
                  "MRR@10 local / Milvus"], rows, [name])


def milvus_latency_table() -> Table:
    name = "milvus_latency.json"
    rows = []
    for mode, m in load(name)["modes"].items():
        rows.append([mode, f"{m['local']['p50_ms']:.1f} / {m['local']['p95_ms']:.1f}",
                     f"{m['milvus']['p50_ms']:.1f} / {m['milvus']['p95_ms']:.1f}", f"{m['p50_ratio']:.1f}x"])
    return Table(["mode", "local p50 / p95 (ms)", "Milvus Lite p50 / p95 (ms)", "p50 ratio"], rows, [name])


CAPACITY_KINDS = [("flat", "flat"), ("hnsw", "hnsw (M 32)"), ("ivf", "ivf"), ("sq8", "sq8"), ("ivf-pq", "ivf-pq"),
                  ("binary", "binary")]
NODE_RAM_GB = (64, 256)
INDEX_SHARE = 0.7  # of a node's RAM for the vector index; the rest for the process, the OS and queries


def capacity_memory_table() -> Table:
    name = "capacity.json"
    kinds = load(name)["kinds"]
    rows = [[label, f"{kinds[kind]['ram_bytes_per_passage']:,.0f}",
             f"{kinds[kind]['ram_bytes_per_passage'] * 1e6 / 1e9:.3g} GB",
             f"{kinds[kind]['disk_bytes_per_passage']:,.0f}"] for kind, label in CAPACITY_KINDS]
    return Table(["index kind", "RAM B/passage", "vector index in RAM per million passages",
                  "on disk B/passage (all files)"], rows, [name])


def capacity_nodes_table() -> Table:
    name = "capacity.json"
    kinds = load(name)["kinds"]

    def passages(ram_gb: int, kind: str) -> str:
        count = ram_gb * 1e9 * INDEX_SHARE / kinds[kind]["ram_bytes_per_passage"]
        return f"{count / 1e6:.0f} M" if count < 1e9 else f"{count / 1e9:.1f} B"

    rows = [[f"{ram} GB", passages(ram, "hnsw"), passages(ram, "sq8"), passages(ram, "ivf-pq")] for ram in NODE_RAM_GB]
    return Table(["node", "local store, hnsw", "local store, sq8", "local store, ivf-pq"], rows, [name])


def auto_backend_table() -> Table:
    """``--backend auto``'s measurements on each CPU class measured (benchmarks/auto_backend.py), exports cached."""
    names = sorted((p.name for p in RESULTS.glob("auto-backend-*.json")), reverse=True)  # widest class first
    runs = [load(name) for name in names]
    header = ["candidate"]
    for run in runs:
        header += [f"{run['cpu']['runs_as']}: docs/s", "min cosine"]
    labels = list(dict.fromkeys(label for run in runs for label in run["runs"]["exports_cached"]["candidates"]))
    rows = []
    for label in labels:
        row = [label]
        for run in runs:
            measured = run["runs"]["exports_cached"]["candidates"].get(label)
            row += [fmt(measured and measured["docs_per_second"], ".1f"), fmt(measured and measured["min_cosine"],
                                                                               ".4f")]
        rows.append(row)
    chosen, first, again, load_average = ["**chosen**"], ["cost, first use: CPU s / wall s"], \
        ["cost, exports cached: CPU s / wall s"], ["load average (1 min) during the run"]
    for run in runs:
        costs = run["costs"]
        chosen += [f"**{run['runs']['exports_cached']['chosen']}**", ""]
        first += [f"{costs['first_use']['cpu_seconds']:.1f} / {costs['first_use']['wall_seconds']:.1f}", ""]
        again += [f"{costs['exports_cached']['cpu_seconds']:.1f} / {costs['exports_cached']['wall_seconds']:.1f}", ""]
        load_average += [" to ".join(f"{x:.1f}" for x in run["load_average_1min"]), ""]
    return Table(header, [*rows, chosen, first, again, load_average], names)


def int8_export_table() -> Table:
    """OpenVINO int8 export per NNCF recipe (benchmarks/int8_export.py): cost, agreement with fp32, speed."""
    names = sorted(p.name for p in RESULTS.glob("int8_export-*.json"))
    rows = []
    for name in names:
        run = load(name)
        for label, row in run["recipes"].items():
            recipe = row["recipe"]
            shown = f"**{label}** (default)" if (recipe["tag"] or "current") == run["default_recipe"] else label
            rows.append([shown, run["cpu"]["runs_as"], str(row["calibration_texts"]), recipe["bias_correction"],
                         "on" if recipe["smooth_quant"] else "off", f"{row['export_cpu_seconds']:.1f}",
                         f"{row['min_cosine']:.4f}", f"{row['mean_cosine']:.4f}",
                         fmt(row.get("top10_agreement"), ".3f"), f"{row['speed_vs_current']:.2f}x"])
    return Table(["recipe", "CPU class", "calibration texts", "bias correction", "SmoothQuant", "export CPU s",
                  "min cosine", "mean cosine", "top-10 agreement", "docs/s vs current"], rows, names)


ISA_KERNEL_PREFIX = {"AVX2": "jit_avx2", "AVX-512": "jit_avx512", "AVX-512 VNNI": "jit_avx512"}


def cap_summary(run: dict[str, Any]) -> str:
    """Which runtimes ran at the class's cap, from their own reports (benchmarks/encoding_classes.py)."""
    evidence = run["cap_evidence"]
    onednn = str(evidence.get("onednn_verbose") or "").split("isa:")[-1].replace("Intel ", "")
    parts = [f"torch {evidence['torch_cpu_capability']}", f"oneDNN {onednn or '?'}"]
    kernels = evidence.get("openvino_kernels[openvino]") or {}
    prefix = ISA_KERNEL_PREFIX.get(run["class"])
    if prefix and kernels:
        capped = sum(n for k, n in kernels.items() if k.startswith(prefix))  # jit_avx512_* is not jit_avx2*
        parts.append(f"OpenVINO {capped}/{sum(kernels.values())} kernels {prefix}*")
    elif kernels:
        parts.append("OpenVINO " + ", ".join(sorted({k.rsplit("_", 1)[0] for k in kernels})))
    parts.append("ONNX Runtime not capped" if run["caps"] else "no cap")
    return "; ".join(parts)


def encoding_classes_table() -> Table:
    """The encoding table per emulated CPU class (benchmarks/encoding_classes.py): one column per class."""
    name = "encoding_classes.json"
    classes = load(name)["classes"]
    labels = list(dict.fromkeys(label for run in classes.values() for label in run["encoding"]["rows"]))
    rows = []
    for label in labels:
        row = [label]
        for run in classes.values():
            cell = run["encoding"]["rows"].get(label)
            if cell is None:
                row.append("–")
                continue
            text = f"{cell['docs_per_second_ratio']:.2f}x"
            if label != "sentence-transformers":
                text += (f" (nDCG {fmt(cell.get('ndcg_delta_vs_torch'), '+.3f')}, "
                         f"cos {fmt(cell.get('agreement_min_cosine'), '.3f')})")
            row.append(text)
        rows.append(row)
    reference = ["reference docs/s"] + [f"{run['encoding']['rows']['sentence-transformers']['docs_per_second']:.1f}"
                                        for run in classes.values()]
    caps = ["caps honoured"] + [cap_summary(run) for run in classes.values()]
    load_average = ["load average (1 min)"] + [" to ".join(f"{x:.1f}" for x in run["load_average_1min"])
                                               for run in classes.values()]
    return Table(["encoder"] + list(classes), [*rows, reference, caps, load_average], [name])


def rag_context_table() -> Table:
    name = "rag_context.json"
    reach = load(name)["reach"]
    rows = [[f"{int(budget):,} tokens", f"{shares['context_for']:.1%}", f"{shares['context_for_no_neighbours']:.1%}",
             f"{shares['plain_passages']:.1%}"] for budget, shares in reach.items()]
    return Table(["context budget", "context_for (1 neighbour)", "context_for (no neighbours)",
                  "plain top passages"], rows, [name])


def rag_mmr_table() -> Table:
    name = "rag_context.json"
    scores = load(name)["mmr_ndcg@10"]
    base = scores["relevance"]
    rows = [["relevance only (default)", f"{base:.4f}", "–"]]
    rows += [[f"`diversity={key.split('_')[1]}`", f"{value:.4f}", f"{(value - base) * 100:+.1f}"]
             for key, value in scores.items() if key != "relevance"]
    return Table(["ranking", "nDCG@10", "points vs default"], rows, [name])


def judgments_curve_table() -> Table:
    """``retriever tune`` on N judged SciFact train queries, scored once on SciFact test (judgments_curve.py)."""
    name = "judgments_curve.json"
    data = load(name)
    untuned = data["untuned"]
    rows = [["0 (untuned)", f"{untuned['dense']:.4f}", f"{untuned['hybrid']:.4f}", "–", "–", "–", "–", "–"]]
    for run in sorted(data["runs"], key=lambda r: r["judged"]):
        record, tune = run["record"], run["tune"]
        fine = record.get("fine_tune") or {}
        fusion = record.get("fusion", {})
        model = (f"kept, WiSE {fine['wise_weight']:.2f}" if fine.get("kept")
                 else "discarded by CV" if fine else "not run (--no-fine-tune)")
        setting = fusion.get("kept_setting", {})
        hybrid = "rrf" if setting.get("fusion") == "rrf" else f"alpha {setting.get('alpha', 0.5):.2f}"
        load_average = tune.get("load_average_before", [None])[0]
        rows.append([str(run["judged"]), f"{run['test_ndcg@10']['dense']:.4f}", f"{run['test_ndcg@10']['hybrid']:.4f}",
                     f"{run['delta_hybrid']:+.4f}", model, hybrid + (" (changed)" if fusion.get("kept") else ""),
                     f"{tune['seconds'] / 60:.1f} min", f"{tune['peak_memory_mb'] / 1000:.1f} GB"
                     + (f" (load {load_average:.0f})" if load_average is not None else "")])
    return Table(["judged queries", "test dense nDCG@10", "test hybrid nDCG@10", "hybrid vs untuned", "model",
                  "hybrid setting", "tune time", "tune peak RSS (load avg)"], rows, [name])


TABLES: dict[str, Callable[[], Table]] = {
    "encoding-scifact-test": encoding_table,
    "auto-backend": auto_backend_table,
    "int8-export": int8_export_table,
    "encoding-classes": encoding_classes_table,
    "serve-load": serve_load_table,
    "serve-load-writes": serve_writes_table,
    "serve-load-batching": serve_batching_table,
    "scifact-test": scifact_table,
    "core-speed": core_speed_table,
    "hybrid-sweep": hybrid_sweep_table,
    "training-scifact": training_table,
    "twin-cv-sweep": twin_cv_table,
    "adapt-scifact": adapt_table,
    "scale": scale_table,
    "scale-classes": scale_classes_table,
    "compressed-vectors": compressed_table,
    "reliability": reliability_table,
    "disk-trials": disk_trials_table,
    "milvus-quality": milvus_quality_table,
    "milvus-latency": milvus_latency_table,
    "capacity-memory": capacity_memory_table,
    "capacity-nodes": capacity_nodes_table,
    "rag-context": rag_context_table,
    "rag-mmr": rag_mmr_table,
    "judgments-curve": judgments_curve_table,
}


# figures in prose ------------------------------------------------------------------------------------------
def figure(spec: str) -> str:
    """The text of ``<!-- fig FILE PATH [xSCALE] FORMAT -->``; a key with spaces is written with %20 in PATH."""
    parts = spec.split()
    if len(parts) not in (3, 4):
        raise ValueError(f"figure marker needs FILE PATH [xSCALE] FORMAT: {spec!r}")
    value: Any = load(parts[0])
    for key in parts[1].replace("%20", " ").split("/"):
        value = value[int(key)] if isinstance(value, list) else value[key]
    if len(parts) == 4:
        value = value * float(parts[2].removeprefix("x"))
    return format(value, parts[-1])


# regions ---------------------------------------------------------------------------------------------------
TABLE_REGION = re.compile(r"(<!-- table: (?P<name>[\w.-]+) -->)(?P<body>.*?)(<!-- /table -->)", re.S)
FIGURE_REGION = re.compile(r"(<!-- fig (?P<spec>[^>]*?) -->)(?P<body>.*?)(<!-- /fig -->)")


FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)


def outside_code(text: str, change: Callable[[str], str]) -> str:
    """``text`` with ``change`` applied to everything but fenced code blocks (examples stay as written)."""
    parts, last = [], 0
    for block in FENCE.finditer(text):
        parts += [change(text[last:block.start()]), block.group(0)]
        last = block.end()
    return "".join(parts) + change(text[last:])


def render(text: str) -> str:
    """``text`` with every table and figure region rendered from the results files."""
    return outside_code(text, _render)


def _render(text: str) -> str:
    def table(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        return match.group(1) + "\n\n" + TABLES[name]().markdown() + "\n\n" + match.group(4)

    def fig(match: re.Match[str]) -> str:
        return match.group(1) + figure(match["spec"]) + match.group(4)

    return FIGURE_REGION.sub(fig, TABLE_REGION.sub(table, text))


def stale(paths: list[Path] | None = None) -> list[str]:
    """'FILE: region NAME' for each rendered region whose text differs from what the JSON renders."""
    problems = []
    for path in paths or documents():
        text = path.read_text()
        fresh = render(text)
        if fresh == text:
            continue
        text, fresh = without_code(text), without_code(fresh)
        old = {m["name"] + "#" + str(i): m["body"] for i, m in enumerate(TABLE_REGION.finditer(text))}
        new = {m["name"] + "#" + str(i): m["body"] for i, m in enumerate(TABLE_REGION.finditer(fresh))}
        names = [key.split("#")[0] for key in old if old[key] != new.get(key)]
        old_figs = [m.group(0) for m in FIGURE_REGION.finditer(text)]
        new_figs = [m.group(0) for m in FIGURE_REGION.finditer(fresh)]
        names += [f"figure {a}" for a, b in zip(old_figs, new_figs) if a != b]
        problems.append(f"{shown(path)}: " + ", ".join(names or ["text"]))
    return problems


def without_code(text: str) -> str:
    return FENCE.sub(lambda block: "\n" * block.group(0).count("\n"), text)


# figure tables outside regions -----------------------------------------------------------------------------
FIGURE_CELL = re.compile(r"^[-+±~≈<>]?\d[\d,]*(\.\d+)?")


def is_figure(cell: str) -> bool:
    text = re.sub(r"[*`_†‡\\]", "", cell).strip()
    match = FIGURE_CELL.match(text)
    if not match:
        return False
    return len(re.findall(r"[A-Za-z]+", text[match.end():])) <= 3


def tables_in(text: str) -> list[tuple[int, list[list[str]]]]:
    """(line number, body rows split into cells) of each Markdown table in ``text``."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$",
                                                                                   lines[i + 1]):
            start, i = i, i + 2
            body = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                row = re.split(r"(?<!\\)\|", lines[i].strip().strip("|"))
                body.append([cell.strip() for cell in row])
                i += 1
            found.append((start + 1, body))
        else:
            i += 1
    return found


def is_figure_table(body: list[list[str]]) -> bool:
    cells = [cell for row in body for cell in row[1:] if cell not in ("", "–", "-", "—")]
    return bool(cells) and sum(is_figure(cell) for cell in cells) * 2 >= len(cells)


def unrendered_figure_tables(paths: list[Path] | None = None) -> list[str]:
    """'FILE:LINE' of each figure table outside a rendered region."""
    problems = []
    for path in paths or documents():
        outside = TABLE_REGION.sub(lambda m: "\n" * m.group(0).count("\n"), without_code(path.read_text()))
        for line, body in tables_in(outside):
            if is_figure_table(body):
                problems.append(f"{shown(path)}:{line}")
    return problems


def figures_opening_a_line(paths: list[Path] | None = None) -> list[str]:
    """'FILE:LINE' of each figure marker that begins a line.

    An HTML comment at the start of a line opens an HTML block in CommonMark (GitHub), which would cut the
    sentence around the figure in two; a figure marker must follow a word on its line.
    """
    problems = []
    for path in paths or documents():
        for number, line in enumerate(without_code(path.read_text()).splitlines(), 1):
            if line.lstrip().startswith("<!-- fig "):
                problems.append(f"{shown(path)}:{number}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region is stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale() + [f"{where}: a figure table outside a rendered region"
                              for where in unrendered_figure_tables()]
        problems += [f"{where}: a figure marker opens the line" for where in figures_opening_a_line()]
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for path in documents():
        text = path.read_text()
        fresh = render(text)
        if fresh != text:
            path.write_text(fresh)
            print(f"rendered {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
