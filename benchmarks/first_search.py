"""How long a fresh process takes to answer its first search, with and without the light query path.

    python benchmarks/first_search.py                      # the sample corpus, all-MiniLM-L6-v2, onnx int8
    python benchmarks/first_search.py --backend openvino --quantize int8 --rounds 5

What a user waits for after typing ``retriever search``: a new Python process imports the engine, opens the index,
loads the query encoder and answers. Builds the sample corpus once into a temporary index (its own export cache),
then alternates two kinds of fresh processes: one whose export has its light query path (``light.json``: queries
tokenized by ``tokenizers`` alone) and one whose ``light.json`` was removed just before, so that it loads the
model through sentence-transformers as every search did before. Each figure is the process's whole wall and CPU
time (``retriever.encoding.light``). Writes ``benchmarks/results/first_search.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from retriever.eval.machine import provenance

SEARCH = ("import sys; from retriever import Retriever; r = Retriever.load(sys.argv[1]); "
          "r.search(sys.argv[2], k=3); print(int('sentence_transformers' in sys.modules))")
QUERY = "how long until my parcel arrives"


def timed_search(index: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds of one fresh search process, and whether it imported sentence-transformers."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", SEARCH, str(index), QUERY], capture_output=True, text=True,
                            env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "imported_sentence_transformers": int(result.stdout.strip())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="examples/sample-corpus")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--quantize", default="int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/first_search.json")
    args = parser.parse_args()

    from retriever import Retriever

    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "RETRIEVER_EXPORTS": f"{work}/exports"}
        os.environ["RETRIEVER_EXPORTS"] = env["RETRIEVER_EXPORTS"]
        built = Retriever.build(args.corpus, index_dir=f"{work}/index", backend=args.backend, quantize=args.quantize)
        light_file = built.encoder.export_dir / "light.json"
        assert light_file.is_file(), "the build wrote no light query path for this model"
        saved = light_file.read_bytes()
        built.close()
        runs: dict[str, list[dict[str, float]]] = {"light": [], "model": []}
        for _ in range(args.rounds):
            for kind in ("model", "light"):
                if kind == "model":
                    light_file.unlink()
                else:
                    light_file.write_bytes(saved)
                runs[kind].append(timed_search(Path(f"{work}/index"), env))
    summary = {kind: {key: statistics.median(r[key] for r in found) for key in ("wall_s", "cpu_s")}
               for kind, found in runs.items()}
    result = {
        **provenance(),
        "config": {"corpus": args.corpus, "backend": args.backend, "quantize": args.quantize, "rounds": args.rounds,
                   "query": QUERY},
        "runs": runs,
        "median": summary,
        "speedup_wall": summary["model"]["wall_s"] / summary["light"]["wall_s"],
    }
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['machine']['cpu']} ({result['machine']['isa']}): first search, fresh process, median of "
          f"{args.rounds}: model {summary['model']['wall_s']:.2f} s wall / {summary['model']['cpu_s']:.2f} s CPU, "
          f"light {summary['light']['wall_s']:.2f} s / {summary['light']['cpu_s']:.2f} s "
          f"({result['speedup_wall']:.1f}x)")


if __name__ == "__main__":
    main()
