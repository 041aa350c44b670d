"""What ``--backend auto`` measures and chooses on this CPU class, what it costs, and proof of any ISA cap.

Run once as is, and once with the runtimes capped to an older instruction set, e.g.::

    python benchmarks/auto_backend.py
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 python benchmarks/auto_backend.py

Each run writes ``benchmarks/results/auto-backend-<class>.json`` (the class the runtimes ran at) with
provenance: every candidate's docs/s and agreement with PyTorch fp32 on the probe, the choice and why,
and three costs: first use (fresh export cache: exports made), measuring again with the exports cached
(``retriever doctor --measure``), and reading the cached choice. Wall seconds depend on what else runs
on the machine, so CPU seconds of this process and the load average are recorded beside them.

The caps are checked, not assumed: PyTorch's dispatch level (``torch.backends.cpu.get_cpu_capability``),
the ISA oneDNN reports (``ONEDNN_VERBOSE``) and MKL reports (``MKL_VERBOSE``) in a child process, and the
kernels OpenVINO's CPU plugin compiled (``primitiveType`` of its runtime graph). ONNX Runtime has no
cap: its MLAS kernels pick the instruction set from CPUID, whatever the environment says.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from retriever.encoding.auto import _variant, auto_choice, candidates, probe_texts
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder
from retriever.eval.machine import provenance
from retriever.machine import class_slug, cpu_facts

RESULTS = Path(__file__).parent / "results"
# a convolution big enough for PyTorch to run it with oneDNN (small ones take another path)
ONEDNN_PROBE = "import torch; torch.nn.functional.conv2d(torch.randn(1, 64, 32, 32), torch.randn(64, 64, 3, 3))"
MKL_PROBE = "import torch; torch.randn(64, 64) @ torch.randn(64, 64)"


def child_verbose(code: str, env_name: str, pattern: str) -> str | None:
    """Run ``code`` in a child with ``env_name=1`` (the caps inherited) and return the first line matching."""
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, env_name: "1"}, capture_output=True,
                          text=True, timeout=120)
    for line in (done.stdout + done.stderr).splitlines():
        if re.search(pattern, line):
            return line.strip()[:300]
    return None


def openvino_kernels(reference: Encoder, label: str, texts: list[str]) -> dict[str, int]:
    """Kernel names OpenVINO's CPU plugin compiled for ``label`` (``jit_avx2_*``, ``brgemm_avx512_amx*``, ...)."""
    encoder = _variant(reference, label)
    encoder.prepare()
    counts: Counter[str] = Counter()
    for compiled in encoder._runtime.compiled.values():
        for op in compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            value = info["primitiveType"] if "primitiveType" in info else ""
            kind = str(getattr(value, "value", value) or "")
            if any(isa in kind for isa in ("sse", "avx", "amx")):  # the kernels that name their instruction set
                counts[kind] += 1
    return dict(counts.most_common())


def cap_evidence(reference: Encoder, texts: list[str]) -> dict[str, Any]:
    import torch

    evidence: dict[str, Any] = {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_verbose": child_verbose(ONEDNN_PROBE, "ONEDNN_VERBOSE", r"isa:"),
        "mkl_verbose": child_verbose(MKL_PROBE, "MKL_VERBOSE", r"MKL_VERBOSE .*(Intel|enabled)"),
        "onnxruntime": "not capped: MLAS picks its kernels from CPUID; no environment variable or session option",
    }
    for label in ("openvino", "openvino-int8"):
        if label in candidates():
            evidence[f"openvino_kernels[{label}]"] = openvino_kernels(reference, label, texts)
    return evidence


def timed(call: Any) -> tuple[Any, dict[str, float]]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, {"wall_seconds": round(time.perf_counter() - wall, 2),
                    "cpu_seconds": round(time.process_time() - cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    facts = cpu_facts()
    print(f"CPU: {facts['cpu']}, class {facts['isa']}, runtimes run as {facts['runs_as']}, caps {facts['caps']}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="auto-backend-") as folder:
        exports = Path(folder)  # a fresh export cache: the first run pays every export, as on first use
        reference, load = timed(lambda: Encoder(args.model, device="cpu", exports=exports))
        load_before = os.getloadavg()[0]
        first, first_cost = timed(lambda: auto_choice(reference, remeasure=True, exports=exports))
        again, again_cost = timed(lambda: auto_choice(reference, remeasure=True, exports=exports))
        cached, cached_cost = timed(lambda: auto_choice(reference, exports=exports))
        assert not cached["measured_now"] and cached["chosen"] == again["chosen"]
        evidence = cap_evidence(reference, probe_texts())
    runs = {"first_use": first, "exports_cached": again}
    result = {
        **provenance(),
        "model": args.model,
        "cpu": facts,
        "cap_evidence": evidence,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "costs": {"model_load": load, "first_use": {**first_cost, "exports_made_seconds": round(sum(
            c["prepare_seconds"] for c in first["candidates"].values()), 2)}, "exports_cached": again_cost,
            "cached_choice": cached_cost},
        "runs": {name: {"chosen": r["chosen"], "reason": r["reason"], "candidates": r["candidates"],
                        "measured_seconds": r["seconds"]} for name, r in runs.items()},
        "rule": first["rule"],
        "runtimes": first["runtimes"],
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"auto-backend-{class_slug(str(facts['runs_as']))}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("costs", "cap_evidence")}, indent=1), file=sys.stderr)
    for name, run in result["runs"].items():
        speeds = ", ".join(f"{label} {m['docs_per_second']:.1f}" for label, m in run["candidates"].items())
        print(f"{name}: {speeds} docs/s -> {run['chosen']}", file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
