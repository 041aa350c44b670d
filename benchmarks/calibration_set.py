"""Static int8 calibrated on the shipped set against fp32 and against calibration on the corpus itself (SciFact).

    python benchmarks/calibration_set.py ../shared/datasets/scifact

Builds a flat index of the corpus three times with all-MiniLM-L6-v2 and scores dense nDCG@10 and Recall@100 on
the test queries: PyTorch fp32; OpenVINO int8 calibrated on the set shipped in ``retriever/encoding/calibration/``
(what every index now uses); and OpenVINO int8 calibrated on 300 of the corpus's own documents (title and text,
a seeded sample, as versions before issue 18 calibrated each index). Document vectors go through the embedding
cache (``~/.cache/retriever/embeddings``), so a rerun encodes nothing. Writes
``benchmarks/results/calibration_set.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from retriever.eval.machine import provenance

CORPUS_SAMPLE = 300  # what the per-corpus calibration used (NNCF's default subset size)


def corpus_sample(texts: list[str], size: int = CORPUS_SAMPLE, seed: int = 0) -> list[str]:
    """The seeded sample of distinct texts the per-corpus calibration drew (independent of their order)."""
    unique = sorted({t for t in texts if t.strip()})
    return unique if len(unique) <= size else sorted(random.Random(seed).sample(unique, size))


def corpus_calibrated(model: str, texts: list[str]) -> Any:
    """An int8 OpenVINO encoder calibrated on ``texts``, its export made as an older version made it."""
    from retriever.encoding.calibration import texts_digest
    from retriever.encoding.encoder import Encoder
    from retriever.encoding.export import cached_export
    from retriever.encoding.openvino import build_export

    encoder = Encoder(model, backend="openvino", quantize="int8", calibration=texts_digest(texts))
    cached_export(encoder.export_dir, lambda staging: build_export(
        encoder.model, "int8", staging, texts, lambda batch, task: encoder.model.preprocess(batch, task=task)))
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/calibration_set.json"))
    args = parser.parse_args()

    from retriever.encoding.cache import CachedEncoder, EmbeddingCache
    from retriever.encoding.calibration import calibration_digest, calibration_texts
    from retriever.encoding.encoder import Encoder
    from retriever.eval.beir import load_beir
    from retriever.eval.metrics import evaluate
    from retriever.ingest.chunking import encoding_text
    from retriever.retriever import Retriever

    dataset = load_beir(args.dataset, args.split)
    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    query_ids = [q for q in sorted(dataset.qrels) if q in dataset.queries]
    sample = corpus_sample([encoding_text(r["title"], r["text"]) for r in records])
    variants = {
        "torch": lambda: Encoder(args.model),  # fp32
        "int8-shipped-set": lambda: Encoder(args.model, backend="openvino", quantize="int8"),
        "int8-corpus-sample": lambda: corpus_calibrated(args.model, sample),
    }
    rows: dict[str, dict[str, Any]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="calibration-set-"))
    try:
        for name, make in variants.items():
            started = time.perf_counter()
            encoder = CachedEncoder.wrap(make(), EmbeddingCache())
            index = Retriever.build(records, index_dir=workdir / name, encoder=encoder, ann="flat")
            hits = index.search_many([dataset.queries[q] for q in query_ids], k=100, mode="dense")
            run = {q: {h.doc_id: h.score for h in found} for q, found in zip(query_ids, hits)}
            scores = evaluate(run, dataset.qrels, ("ndcg@10", "recall@100")).scores
            rows[name] = {"fingerprint": encoder.fingerprint, "ndcg@10": scores["ndcg@10"],
                          "recall@100": scores["recall@100"],
                          "build_seconds": round(time.perf_counter() - started, 1),
                          "encoding_cached": bool(encoder.last_encode.get("cached"))}
            print(name, json.dumps(rows[name]), flush=True)
            index.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    reference = rows["torch"]["ndcg@10"]
    for row in rows.values():
        row["ndcg@10_vs_torch"] = row["ndcg@10"] - reference
    report = {
        "dataset": str(args.dataset), "split": args.split, "model": args.model, "documents": len(records),
        "queries": len(query_ids), "mode": "dense", "ann": "flat",
        "shipped_set": {"texts": len(calibration_texts()), "digest": calibration_digest()},
        "corpus_sample": {"texts": len(sample), "seed": 0},
        "rows": rows, "rows_described": {
            "torch": "PyTorch fp32", "int8-shipped-set": "OpenVINO int8, calibrated on the shipped set",
            "int8-corpus-sample": f"OpenVINO int8, calibrated on {len(sample)} corpus documents (seed 0)"},
        **provenance(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
