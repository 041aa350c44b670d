"""Where a document batch's time goes in ONNX Runtime, fp32 against dynamic int8, by kind of operator.

    python benchmarks/encoder_ops.py ../shared/datasets/scifact [--runs 6]

Issue 18 asks indexing on an AVX2-only CPU for 2x plain sentence-transformers. Int8 can only speed up the
matrix products whose weights it quantizes; the attention core (softmax of query-key products, times the
values) stays in fp32 inside ``QAttention``, and so do the layer norms and GELU. This script runs one batch
(the 32 longest passages of 400 SciFact abstracts, near the model's maximum tokens) through the default
model's fp32 and int8 ONNX exports, with ONNX Runtime's profiler, threads as the engine sets them, and sums
each operator's kernel time into three kinds:

- ``weights``: products with a weight matrix (``MatMul``, ``DynamicQuantizeMatMul``, ``Gemm``), plus the
  query/key/value projection inside ``Attention``/``QAttention``, estimated as 3/9 of the other weight
  products (3 of 12 d x d multiply-adds per token per layer, against 9 for the output projection and the
  feed-forward);
- ``attention core``: the rest of ``Attention``/``QAttention``;
- ``other``: everything else (layer norms, GELU, embeddings, pooling, quantizing activations).

The same batch through plain sentence-transformers (PyTorch fp32, ``encode``) gives the baseline of the
issue's ratio on a batch with nothing to gain from sorting (``int8_vs_sentence_transformers``). ``threads`` 0
is ONNX Runtime's default, one per core. Writes ``benchmarks/results/encoder_ops.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.eval.beir import load_beir
from retriever.eval.machine import provenance
from retriever.ingest.chunking import Chunker, encoding_text
from retriever.ingest.documents import document_from_record

WEIGHT_OPS = {"MatMul", "DynamicQuantizeMatMul", "MatMulInteger", "Gemm", "FusedMatMul"}
ATTENTION_OPS = {"Attention", "QAttention"}
BATCH = 32


def longest_passages(dataset_dir: Path, encoder: Encoder, count: int, documents: int = 400) -> list[str]:
    """The ``count`` passages with the most tokens among the first ``documents`` SciFact abstracts (the chunker
    fills most passages to the model's maximum), so that the batch is close to unpadded."""
    dataset = load_beir(dataset_dir, "test")
    docs = [document_from_record({"_id": d.doc_id, "title": d.title, "text": d.text}, "bench")
            for d in list(dataset.corpus.values())[:documents]]
    chunker = Chunker(encoder.tokenizer, encoder.max_seq_length, 32)
    texts = [encoding_text(d.title, p.text) for d, ps in zip(docs, chunker.split_many(docs)) for p in ps]
    tokens = [len(ids) for ids in encoder.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return [texts[i] for i in np.argsort(tokens, kind="stable")[::-1][:count]]


def profile(encoder: Encoder, texts: list[str], runs: int) -> dict[str, Any]:
    """Median run time and kernel milliseconds per run by operator, from ONNX Runtime's profiler."""
    import onnxruntime as ort

    encoder.prepare()
    runtime = encoder._runtime  # the engine's own session settings (threads, optimisation level)
    graph = "document" if "document" in runtime.sessions else "model"
    session = runtime.sessions[graph]
    seen: list[dict[str, Any]] = []
    embed = runtime.embed
    runtime.embed = lambda features, task: seen.append(features) or embed(features, task)
    encoder.encode_documents(texts)  # the features the engine feeds, tokenized its way
    runtime.embed = embed
    feed = {name: np.asarray(seen[0][name], dtype=np.int64) for name in runtime.inputs[graph]}
    options = session.get_session_options()
    with tempfile.TemporaryDirectory() as folder:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "ops")
        profiled = ort.InferenceSession(session._model_path, options, providers=["CPUExecutionProvider"])
        profiled.run(None, feed)  # warm-up, left out below
        profiled.end_profiling()
        profiled = ort.InferenceSession(session._model_path, options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            profiled.run(None, feed)
        events = json.loads(Path(profiled.end_profiling()).read_text())
    by_op: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / 1000 / runs
    run_ms = float(np.median([e["dur"] / 1000 for e in events if e.get("name") == "model_run"]))
    return {"run_ms": run_ms, "passages_per_second": len(texts) / run_ms * 1000,
            "threads": options.intra_op_num_threads, "ops_ms": dict(by_op.most_common())}


def kinds(ops_ms: dict[str, float]) -> dict[str, float]:
    """Kernel ms by kind (module docstring): weights, attention core, other."""
    products = sum(ms for op, ms in ops_ms.items() if op in WEIGHT_OPS)
    attention = sum(ms for op, ms in ops_ms.items() if op in ATTENTION_OPS)
    projections = min(attention, products * 3 / 9)
    other = sum(ms for op, ms in ops_ms.items() if op not in WEIGHT_OPS | ATTENTION_OPS)
    return {"weights": products + projections, "attention core": attention - projections, "other": other}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="BEIR folder, e.g. ../shared/datasets/scifact")
    parser.add_argument("--runs", type=int, default=6, help="profiled runs of the batch per precision")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/encoder_ops.json"))
    args = parser.parse_args()
    encoders = {precision: Encoder(DEFAULT_MODEL, backend="onnx", quantize=precision)
                for precision in ("none", "int8")}
    texts = longest_passages(args.dataset, encoders["none"], BATCH)
    tokens = [min(len(ids), encoders["none"].max_seq_length)
              for ids in encoders["none"].tokenizer(texts, add_special_tokens=False)["input_ids"]]
    result: dict[str, Any] = {**provenance(), "model": DEFAULT_MODEL, "batch": len(texts),
                              "tokens_min_max": [min(tokens), max(tokens)], "precisions": {}}
    for precision, encoder in encoders.items():
        measured = profile(encoder, texts, args.runs)
        measured["kinds_ms"] = kinds(measured["ops_ms"])
        result["precisions"][precision] = measured
        print(precision, json.dumps({k: v for k, v in measured.items() if k != "ops_ms"}), flush=True)
    model = encoders["none"].model  # plain sentence-transformers (PyTorch fp32) on the same batch, the baseline
    model.encode(texts, batch_size=BATCH)
    plain = []
    for _ in range(args.runs):
        started = time.perf_counter()
        model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
        plain.append((time.perf_counter() - started) * 1000)
    result["sentence_transformers_run_ms"] = float(np.median(plain))
    int8_ms = result["precisions"]["int8"]["run_ms"]
    result["int8_vs_sentence_transformers"] = result["sentence_transformers_run_ms"] / int8_ms
    fp32, int8 = (result["precisions"][p]["kinds_ms"] for p in ("none", "int8"))
    total = sum(int8.values())
    result["int8_speedup"] = {kind: fp32[kind] / int8[kind] for kind in fp32}
    result["int8_speedup"]["run"] = result["precisions"]["none"]["run_ms"] / result["precisions"]["int8"]["run_ms"]
    result["int8_share"] = {kind: ms / total for kind, ms in int8.items()}
    # If int8 made every weight product free, the batch would still take the rest: the ceiling on the speedup.
    result["int8_ceiling_if_weights_were_free"] = sum(fp32.values()) / (total - int8["weights"])
    # How much faster than fp32 the weight products would have to be for int8 to reach 2x sentence-transformers
    # on this batch, the rest of the int8 run unchanged.
    budget = result["sentence_transformers_run_ms"] / 2 * total / int8_ms - (total - int8["weights"])
    result["weights_speedup_needed_for_2x"] = fp32["weights"] / budget if budget > 0 else None
    print(json.dumps({k: result[k] for k in ("int8_speedup", "int8_share", "int8_ceiling_if_weights_were_free",
                                              "int8_vs_sentence_transformers", "weights_speedup_needed_for_2x")}))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
