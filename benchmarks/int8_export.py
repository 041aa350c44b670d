"""OpenVINO static int8 export (NNCF) per quantization recipe: export time, agreement with fp32, encoding speed.

    python benchmarks/int8_export.py [SCIFACT_DIR] [--docs 400 --queries 50]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/int8_export.py ...   # as on an AVX2-only CPU

Issue 18, item 1: ``--backend auto``'s first use is mostly the OpenVINO int8 export, NNCF's post-training
quantization over the shipped calibration set. Each recipe (``Int8Recipe``: how many calibration texts,
bias correction fast or off, SmoothQuant on or off, preset) quantizes the same fp32 export (made once, as
auto makes it) in this process, and is scored against sentence-transformers' PyTorch fp32 vectors:

- export wall and CPU seconds (``nncf.quantize`` and saving; the fp32 export it starts from is cached);
- min and mean cosine per vector on the probe (``probe.txt``, what auto measures), the calibration set and,
  with SCIFACT_DIR, SciFact documents and test queries; the project's bound is ``MIN_COSINE["int8"]``;
- with SCIFACT_DIR, top-10 agreement: for each query, the share of PyTorch's 10 nearest documents (among
  ``--docs``: the queries' relevant documents and a seeded sample) that the recipe's vectors also rank
  in their 10 nearest, and whether the nearest one is the same;
- docs/s on the probe, best of ``--rounds`` passes interleaved over the recipes, and its ratio to the
  recipe that was the default before (``current``), so the ratio holds however busy the machine is.

The cap is checked with OpenVINO's own report: the kernels its CPU plugin compiled (``jit_avx2_*``,
``brgemm_avx512_amx*``...) and oneDNN's verbose ISA line. Writes
``benchmarks/results/int8_export-<class>.json`` (the class the runtimes ran at).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from retriever.encoding.auto import probe_texts
from retriever.encoding.backends import MIN_COSINE
from retriever.encoding.calibration import calibration_texts, spread
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.encoding.openvino import RECIPE, Int8Recipe, OpenVinoRuntime, build_export
from retriever.eval.machine import provenance
from retriever.machine import class_slug, cpu_facts

RESULTS = Path(__file__).parent / "results"
# name -> recipe; "current" is the recipe before issue 18's item 1 (all 301 texts, fast bias correction, SmoothQuant)
RECIPES: dict[str, Int8Recipe] = {
    "current": Int8Recipe(),
    "s64": Int8Recipe(samples=64),
    "s32": Int8Recipe(samples=32),
    "s16": Int8Recipe(samples=16),
    "all-bcoff": Int8Recipe(bias_correction="off"),
    "s64-bcoff": Int8Recipe(samples=64, bias_correction="off"),
    "s32-bcoff": Int8Recipe(samples=32, bias_correction="off"),
    "s16-bcoff": Int8Recipe(samples=16, bias_correction="off"),
    "s64-nosq": Int8Recipe(samples=64, smooth_quant=False),
    "s32-bcoff-nosq": Int8Recipe(samples=32, bias_correction="off", smooth_quant=False),
    "s64-performance": Int8Recipe(samples=64, preset="performance"),
}
ONEDNN_PROBE = "import torch; torch.nn.functional.conv2d(torch.randn(1, 64, 32, 32), torch.randn(64, 64, 3, 3))"


def kernels(runtime: OpenVinoRuntime) -> dict[str, int]:
    """Kernel names OpenVINO's CPU plugin compiled (they name their instruction set)."""
    counts: Counter[str] = Counter()
    for compiled in runtime.compiled.values():
        for op in compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            value = info["primitiveType"] if "primitiveType" in info else ""
            kind = str(getattr(value, "value", value) or "")
            if any(isa in kind for isa in ("sse", "avx", "amx")):
                counts[kind] += 1
    return dict(counts.most_common())


def scifact_sample(root: Path, docs: int, queries: int) -> tuple[list[str], list[str]]:
    """The first ``queries`` test queries and ``docs`` documents: their relevant ones, then a seeded sample."""
    from retriever.eval.beir import load_beir

    data = load_beir(root, "test")
    chosen = sorted(data.qrels)[:queries]
    relevant = sorted({doc for q in chosen for doc in data.qrels[q]})
    rest = sorted(set(data.corpus) - set(relevant))
    ids = relevant + random.Random(0).sample(rest, max(0, docs - len(relevant)))
    texts = [f"{data.corpus[i].title} {data.corpus[i].text}".strip() for i in ids]
    return texts, [data.queries[q] for q in chosen]


def agreement(vectors: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """Cosine per vector to PyTorch fp32 (min, mean) per text set, and top-10 / top-1 agreement of the queries."""
    out: dict[str, Any] = {}
    for name in vectors:
        cos = (vectors[name] * truth[name]).sum(axis=1)
        out[f"{name}_min_cosine"], out[f"{name}_mean_cosine"] = round(float(cos.min()), 5), round(float(cos.mean()), 5)
    everything = np.concatenate([(vectors[n] * truth[n]).sum(axis=1) for n in vectors])
    out["min_cosine"], out["mean_cosine"] = round(float(everything.min()), 5), round(float(everything.mean()), 5)
    if "queries" in vectors:
        ours = np.argsort(-(vectors["queries"] @ vectors["documents"].T), axis=1)[:, :10]
        theirs = np.argsort(-(truth["queries"] @ truth["documents"].T), axis=1)[:, :10]
        overlap = [len(set(a) & set(b)) / 10 for a, b in zip(ours, theirs)]
        out["top10_agreement"] = round(float(np.mean(overlap)), 4)
        out["top10_agreement_min"] = round(float(np.min(overlap)), 2)
        out["top1_same"] = round(float((ours[:, 0] == theirs[:, 0]).mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scifact", type=Path, nargs="?", help="a BEIR SciFact folder, for top-10 agreement")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = ["current"] + [n for n in args.recipes if n != "current"]
    facts = cpu_facts()
    print(f"CPU: {facts['cpu']}, class {facts['isa']}, runtimes run as {facts['runs_as']}, caps {facts['caps']}",
          file=sys.stderr)
    probe, calibration = probe_texts(), list(calibration_texts())
    texts = {"probe": probe, "calibration": calibration}
    if args.scifact:
        texts["documents"], texts["queries"] = scifact_sample(args.scifact, args.docs, args.queries)
    with tempfile.TemporaryDirectory(prefix="int8-export-") as folder:
        exports = Path(folder)
        reference = Encoder(args.model, device="cpu", exports=exports)
        truth = {name: (reference.encode_queries(t) if name == "queries" else reference.encode_documents(t))
                 for name, t in texts.items()}
        fp32 = Encoder(args.model, backend="openvino", device="cpu", exports=exports)
        fp32.prepare()  # the trace and fp32 export every recipe starts from, as auto makes them
        load_before = os.getloadavg()[0]
        rows: dict[str, dict[str, Any]] = {}
        encoders: dict[str, Encoder] = {}
        for name in names:
            recipe = RECIPES[name]
            directory = exports / f"recipe-{name}"
            directory.mkdir()
            sample = list(spread(tuple(calibration), recipe.samples))
            wall, cpu = time.perf_counter(), time.process_time()
            details = build_export(fp32.model, "int8", directory, sample, lambda b, task: fp32._features(b, task),
                                   fp32=fp32.export_dir, recipe=recipe)
            cost = {"export_wall_seconds": round(time.perf_counter() - wall, 2),
                    "export_cpu_seconds": round(time.process_time() - cpu, 2)}
            encoder = copy.copy(fp32)
            encoder.quantize = "int8"
            encoder._runtime = OpenVinoRuntime(directory, details["graphs"], "cpu", None, fp32.max_seq_length)
            vectors = {n: (encoder.encode_queries(t) if n == "queries" else encoder.encode_documents(t))
                       for n, t in texts.items()}
            quality = agreement(vectors, truth)
            rows[name] = {"recipe": {**details["recipe"], "tag": recipe.tag()}, "calibration_texts": len(sample),
                          **cost, **quality, "within_bound": quality["min_cosine"] >= MIN_COSINE["int8"]}
            encoders[name] = encoder
            print(f"{name}: {json.dumps(rows[name])}", file=sys.stderr, flush=True)
        best = dict.fromkeys(names, float("inf"))
        for _ in range(args.rounds):  # interleaved, so a busy moment does not fall on one recipe only
            for name in names:
                started = time.perf_counter()
                encoders[name].encode_documents(probe)
                best[name] = min(best[name], time.perf_counter() - started)
        for name in names:
            rows[name]["probe_docs_per_second"] = round(len(probe) / best[name], 2)
            rows[name]["speed_vs_current"] = round(best["current"] / best[name], 3)
        evidence = {"openvino_kernels[current]": kernels(encoders["current"]._runtime)}
    sys.path.insert(0, str(Path(__file__).parent))
    from auto_backend import child_verbose

    evidence["onednn_verbose"] = child_verbose(ONEDNN_PROBE, "ONEDNN_VERBOSE", r"isa:")
    result = {
        **provenance(), "model": args.model, "cpu": facts, "cap_evidence": evidence,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "bound": {"min_cosine": MIN_COSINE["int8"]}, "default_recipe": RECIPE.tag() or "current",
        "texts": {name: len(t) for name, t in texts.items()}, "rounds": args.rounds, "recipes": rows,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"int8_export-{class_slug(str(facts['runs_as']))}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:16s} export {row['export_wall_seconds']:6.1f} s wall {row['export_cpu_seconds']:6.1f} s cpu  "
              f"min cos {row['min_cosine']:.4f} mean {row['mean_cosine']:.4f}  top10 {row.get('top10_agreement')}  "
              f"{row['speed_vs_current']:.2f}x current", file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
