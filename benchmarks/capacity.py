"""Memory and disk per passage of each vector index kind, for the capacity estimate in docs/scale-out.md.

    python benchmarks/capacity.py                 # 20,000 synthetic passages, every kind
    python benchmarks/capacity.py --passages 50000 --kinds flat,hnsw

Builds the same synthetic corpus (``benchmarks/scale.py``'s generator, vectors from ``SyntheticEncoder``, 384
dimensions as all-MiniLM-L6-v2) once per ANN kind and records what ``Retriever.info()`` reports: bytes the vector
index keeps in RAM per passage (memory-mapped float16 vectors not counted) and bytes on disk per passage (store,
vectors, BM25 postings). Sizes, not speeds: nothing here is timed. Writes ``benchmarks/results/capacity.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from retriever.eval.machine import provenance

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=20_000)
    parser.add_argument("--kinds", default="flat,hnsw,ivf,sq8,ivf-pq,binary")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/capacity.json"))
    args = parser.parse_args()

    from scale import passages

    from retriever import Retriever
    from retriever.encoding.synthetic import SyntheticEncoder

    records = passages(args.passages)
    out: dict = {**provenance(), "passages": args.passages, "dimension": 384, "kinds": {}}
    workdir = Path(tempfile.mkdtemp(prefix="capacity-"))
    try:
        for kind in args.kinds.split(","):
            retriever = Retriever.build(records, index_dir=workdir / kind, encoder=SyntheticEncoder(), ann=kind)
            info = retriever.info()
            count = info["counts"]["passages"]
            out["kinds"][kind] = {"segment_kinds": info["ann"]["segments_by_kind"],
                                  "ram_bytes_per_passage": info["ann"]["ram_bytes_per_passage"],
                                  "disk_bytes_per_passage": info["size_bytes"] / count}
            retriever.close()
            print(kind, out["kinds"][kind], flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
