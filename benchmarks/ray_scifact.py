"""Does a Ray build equal a single-process build on SciFact? Same passages, vectors, top 10; and how fast.

    python benchmarks/ray_scifact.py ../shared/datasets/scifact                 # local Ray, 2 actors
    python benchmarks/ray_scifact.py ../shared/datasets/scifact --address auto --workers 8
    python benchmarks/ray_scifact.py ../shared/datasets/scifact --backend torch     # another encoder backend

Builds SciFact's 5,183 abstracts twice with all-MiniLM-L6-v2 and the engine's default backend (static int8 is
calibrated on the shipped set, so both builds load one export): in this process (through the embedding cache, so a
prior ``retriever bench`` pays that encoding) and with ``--ray`` (always encoded). Compares every passage (id,
offsets, text), every vector (cosine to the single-process one), and the top 10 of the 300 test queries in dense
and hybrid mode. Writes ``benchmarks/results/ray_scifact.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from retriever.eval.machine import provenance


def passages_and_vectors(retriever):  # noqa: ANN001, ANN201
    snapshot = retriever.snapshot
    out = {}
    for doc in snapshot.all_live_documents():
        keys = snapshot.passage_keys(doc.doc_id)
        stored = snapshot.hydrate(keys)
        out[doc.doc_id] = ([(stored[k].ordinal, stored[k].start, stored[k].end, stored[k].text) for k in keys],
                           snapshot.vectors_of(keys))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--address", default="local", help="local, auto or ray://host:10001")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default=None, help="backend label, e.g. torch or openvino-int8 (default: the "
                        "engine's default)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/ray_scifact.json"))
    args = parser.parse_args()

    import ray

    from retriever.encoding.auto import make_encoder
    from retriever.encoding.cache import CachedEncoder, EmbeddingCache
    from retriever.encoding.encoder import DEFAULT_MODEL
    from retriever.eval.beir import load_beir
    from retriever.retriever import Retriever

    dataset = load_beir(args.dataset, "test")
    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    queries = [dataset.queries[q] for q in sorted(dataset.qrels) if q in dataset.queries]
    workdir = Path(tempfile.mkdtemp(prefix="ray-scifact-"))
    try:
        # --backend auto (the default) measures this machine's backends once and keeps the fastest that agrees
        encoder = CachedEncoder.wrap(make_encoder(DEFAULT_MODEL, args.backend), EmbeddingCache())
        started = time.perf_counter()
        local = Retriever.build(records, index_dir=workdir / "local", encoder=encoder, ann="flat")
        local_seconds = time.perf_counter() - started
        if args.address == "local":
            ray.init(num_cpus=max(args.workers, 1), include_dashboard=False, log_to_driver=False)
        started = time.perf_counter()
        distributed = Retriever.build(records, index_dir=workdir / "ray", ann="flat", ray=args.address,
                                      workers=args.workers, encoder=encoder)
        ray_seconds = time.perf_counter() - started
        ours, theirs = passages_and_vectors(local), passages_and_vectors(distributed)
        same_passages = ours.keys() == theirs.keys() and all(theirs[d][0] == p for d, (p, _) in ours.items())
        cosines = np.concatenate([
            np.sum(v * theirs[d][1], axis=1) / np.linalg.norm(v, axis=1) / np.linalg.norm(theirs[d][1], axis=1)
            for d, (_, v) in ours.items()])
        top10 = {}
        for mode in ("dense", "hybrid"):
            a = [[h.doc_id for h in hits] for hits in local.search_many(queries, k=10, mode=mode)]
            b = [[h.doc_id for h in hits] for hits in distributed.search_many(queries, k=10, mode=mode)]
            top10[mode] = sum(x == y for x, y in zip(a, b))
        passages = distributed.manifest.counts["passages"]
        report = {
            "dataset": str(args.dataset), "documents": len(records), "passages": passages,
            "queries": len(queries), "address": args.address, "workers": args.workers,
            "backend": encoder.label, "fingerprint": distributed.manifest.model["fingerprint"],
            "same_fingerprint": distributed.manifest.model["fingerprint"] == local.manifest.model["fingerprint"],
            "same_passages": same_passages,
            "min_cosine": float(cosines.min()), "vectors_below_1e-5": int((cosines < 1 - 1e-5).sum()),
            "same_top10_queries": top10,
            "local_build_seconds": local_seconds, "local_encode_cached": bool(encoder.last_encode.get("cached")),
            "ray_build_seconds": ray_seconds, "ray_passages_per_second": passages / ray_seconds,
            "cluster": {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")},
            **provenance(),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
