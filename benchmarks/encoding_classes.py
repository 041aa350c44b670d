"""The encoding table on each CPU class this machine can emulate: one fresh process per class, caps in its environment.

    python benchmarks/encoding_classes.py SCIFACT_DIR [--limit-docs 150 --limit-queries 30 --speed-docs 48]

Issue 18: the README's encoding table was measured on one CPU class (AVX-512 VNNI + AMX), and on an
AVX2-only CPU the int8 default was slower than plain sentence-transformers. Older classes are emulated
here by capping the runtimes' instruction sets in a child process's environment (``CLASSES``); a class
wider than this CPU is skipped. Each child runs ``retriever bench --backends``' code
(``retriever.eval.encoding_bench``): plain sentence-transformers fp32 (the reference) and every backend
on the same texts in the same process, so the ratios hold however busy the machine is. With ``--auto`` it
also runs ``--backend auto``'s measurement under the cap (exports cached) and records what auto chooses.

The caps are checked, not assumed, with each runtime's own report (``cap_evidence`` of
``benchmarks/auto_backend.py``): PyTorch's dispatch level, the ISA oneDNN and MKL print when verbose, and the
kernels OpenVINO's CPU plugin compiled. ONNX Runtime has no cap: its MLAS kernels follow CPUID, so its rows
run at the CPU's own class in every column.

Writes ``benchmarks/results/encoding_classes.json`` (provenance and load average per class); the table is
rendered by ``python -m benchmarks.render_tables`` (``<!-- table: encoding-classes -->``). On a busy machine
the classes can run as separate invocations at once (``--classes``, one output each), joined afterwards with
``--merge A.json B.json ...`` (each class keeps the command, date and machine it ran with).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from retriever.machine import ISA_CLASSES, capped_class, cpu_facts

RESULTS = Path(__file__).parent / "results"
OUTPUT = RESULTS / "encoding_classes.json"
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
# class -> the caps that emulate it: oneDNN (PyTorch and OpenVINO), PyTorch's own kernels, MKL. None: no cap.
CLASSES: dict[str, dict[str, str]] = {
    "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "AVX-512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512",
                "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "AVX-512 VNNI": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI", "ATEN_CPU_CAPABILITY": "avx512",
                     "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "AVX-512 VNNI + AMX": {},
}
CAP_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def emulable(hardware: str) -> list[str]:
    """The classes of ``CLASSES`` this CPU can run as: those no wider than its own."""
    if hardware not in ISA_CLASSES:
        return []
    return [name for name in CLASSES if ISA_CLASSES.index(name) <= ISA_CLASSES.index(hardware)]


def child_environment(caps: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CAP_ENV}
    return {**env, **caps}


# the child: one class ------------------------------------------------------------------------------
def measure_class(args: argparse.Namespace) -> dict[str, Any]:
    """The encoding table, auto's choice and the cap evidence, in this process (the caps are in its environment)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from auto_backend import cap_evidence

    from retriever.encoding.auto import auto_choice, probe_texts
    from retriever.encoding.cache import EmbeddingCache
    from retriever.encoding.encoder import Encoder
    from retriever.eval.beir import load_beir
    from retriever.eval.bench import BenchConfig, select
    from retriever.eval.encoding_bench import run_encoding_bench

    def log(line: str) -> None:
        print(f"[{args.child}] {line}", file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    dataset = load_beir(args.dataset, "test")
    config = BenchConfig(dataset=args.dataset, limit_queries=args.limit_queries, limit_docs=args.limit_docs,
                         seed=args.seed)
    queries, qrels, counts = select(dataset, config)
    reference = Encoder(args.model, device="cpu")
    evidence = cap_evidence(reference, probe_texts())
    log(f"caps checked: torch {evidence['torch_cpu_capability']}; {evidence['onednn_verbose']}")
    auto = auto_choice(reference, remeasure=True, progress=True) if args.auto else None
    with tempfile.TemporaryDirectory(prefix="encoding-classes-") as folder:
        # a fresh embedding cache: vectors from another class's run (same fingerprints) must not be reused
        table = run_encoding_bench(dataset, queries, qrels, args.model, tuple(args.backends.split(",")),
                                   EmbeddingCache(Path(folder) / "cache"), Path(folder) / "work", device="cpu",
                                   speed_docs=args.speed_docs, rounds=args.rounds, seed=args.seed, log=log)
    return {
        "class": args.child, "cpu": cpu_facts(), "cap_evidence": evidence, "counts": counts,
        "auto": auto and {key: auto[key] for key in ("chosen", "reason", "candidates", "seconds")},
        "encoding": table, "seconds": round(time.perf_counter() - started, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


# the parent: every class ---------------------------------------------------------------------------
def run_class(name: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, __file__, str(args.dataset), "--child", name, "--json", out.name,
                   "--limit-docs", str(args.limit_docs), "--limit-queries", str(args.limit_queries),
                   "--speed-docs", str(args.speed_docs), "--rounds", str(args.rounds), "--seed", str(args.seed),
                   "--model", args.model, "--backends", args.backends] + (["--auto"] if args.auto else [])
        subprocess.run(command, env=child_environment(CLASSES[name]), check=True)
        return json.loads(Path(out.name).read_text())


def merge(paths: list[Path]) -> dict[str, Any]:
    """Join the classes of several runs (e.g. one class per process, run at once) into one result."""
    classes, base = {}, {}
    for path in paths:
        run = json.loads(path.read_text())
        for name, measured in run["classes"].items():
            if not measured.get("skipped"):
                # a class run on a CPU of exactly that class is the real thing, not an emulation: its column
                # names the CPU, so that it sits beside the same class emulated on a wider one
                # (a class already merged keeps the provenance of the run that measured it)
                source = measured.get("provenance") or {key: run[key] for key in ("command", "date", "machine")}
                base_name = name.split(" (")[0]  # a merged file's column may already name its CPU
                label = f"{base_name} ({source['machine']['cpu']})" if source["machine"].get("isa") == base_name \
                    else base_name
                classes[label] = {**measured, "provenance": source}
                base[label] = base_name
            limits = run["limits"]
    order = list(CLASSES)
    return {"model": run["model"], "dataset": run["dataset"], "limits": limits,
            "classes": dict(sorted(classes.items(), key=lambda item: (order.index(base[item[0]]), item[0])))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a BEIR folder (SciFact: corpus.jsonl, queries.jsonl, qrels/)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--limit-docs", type=int, default=150)
    parser.add_argument("--limit-queries", type=int, default=30)
    parser.add_argument("--speed-docs", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--auto", action="store_true", help="also record --backend auto's choice per class")
    parser.add_argument("--classes", default="", help="comma-separated subset of the classes (default: all emulable)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--merge", type=Path, nargs="+", help="join these results files instead of measuring")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.json.write_text(json.dumps(measure_class(args), indent=2) + "\n")
        return

    from retriever.eval.machine import provenance

    if args.merge:
        args.output.write_text(json.dumps({**provenance(), **merge(args.merge)}, indent=2) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
        return
    facts = cpu_facts()
    classes = emulable(str(facts["isa"]))
    if args.classes:
        classes = [c for c in classes if c in args.classes.split(",")]
    print(f"CPU: {facts['cpu']} ({facts['isa']}); classes: {', '.join(classes)}", file=sys.stderr)
    runs = {}
    for name in classes:
        run = run_class(name, args)
        runs[name] = {**run, "caps": CLASSES[name],
                      "runs_as": capped_class(str(facts["isa"]), CLASSES[name])}
    result = {**provenance(), "model": args.model, "dataset": str(args.dataset),
              "limits": {"docs": args.limit_docs, "queries": args.limit_queries, "speed_docs": args.speed_docs,
                         "rounds": args.rounds, "seed": args.seed}, "classes": runs}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, run in runs.items():
        rows = run["encoding"]["rows"]
        cells = ", ".join(f"{label} {row['docs_per_second_ratio']:.2f}x" for label, row in rows.items())
        print(f"{name}: {cells}" + (f"; auto -> {run['auto']['chosen']}" if run["auto"] else ""), file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
