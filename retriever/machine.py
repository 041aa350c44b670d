"""Facts about this CPU that decide which kernels the encoder runtimes use: model, flags, instruction-set class.

A low-level module (no retriever imports) so that both the encoder's backend choice
(``encoding/auto.py``) and the benchmarks' provenance (``eval/machine.py``) read the CPU one way.
The instruction-set class matters as much as the model: ONNX Runtime, OpenVINO, PyTorch and FAISS
pick other kernels on AVX2, AVX-512 VNNI or AMX, and the runtimes can be capped below what the CPU
has (``ISA_CAP_ENV``), which changes their speed as much as another CPU would.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# Environment variables that cap the instruction sets a runtime uses: oneDNN (PyTorch and OpenVINO's CPU
# plugin), PyTorch's own kernels, and MKL. ONNX Runtime has no such switch (its MLAS kernels read CPUID).
ISA_CAP_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
# The flags that decide kernels (vector width, int8 dot products, bf16/fp16 arithmetic, matrix tiles).
_ISA_FLAG_PREFIXES = ("sse4", "ssse3", "avx", "fma", "f16c", "amx", "asimd", "sve", "bf16", "i8mm", "dotprod")
# Classes from narrowest to widest, and the class each oneDNN ``ONEDNN_MAX_CPU_ISA`` value caps to.
ISA_CLASSES = ("SSE4.1", "AVX", "AVX2", "AVX2 VNNI", "AVX-512", "AVX-512 VNNI", "AVX-512 VNNI + AMX")
_ONEDNN_CAPS = {
    "SSE41": "SSE4.1", "AVX": "AVX", "AVX2": "AVX2", "AVX2_VNNI": "AVX2 VNNI", "AVX2_VNNI_2": "AVX2 VNNI",
    "AVX512_CORE": "AVX-512", "AVX512_CORE_VNNI": "AVX-512 VNNI", "AVX512_CORE_BF16": "AVX-512 VNNI",
    "AVX512_CORE_FP16": "AVX-512 VNNI", "AVX10_1_512": "AVX-512 VNNI",
}


def _cpuinfo_field(name: str, text: str) -> str | None:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpuinfo() -> str:
    """The text of ``/proc/cpuinfo``, or "" where there is none."""
    try:
        return CPUINFO.read_text()
    except OSError:
        return ""


def cpu_model(text: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows, else "unknown"."""
    text = cpuinfo() if text is None else text
    return _cpuinfo_field("model name", text) or platform.processor() or "unknown"


def cpu_flags(text: str | None = None) -> set[str]:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``); empty where unknown."""
    text = cpuinfo() if text is None else text
    return set((_cpuinfo_field("flags", text) or _cpuinfo_field("Features", text) or "").split())


def isa_flags(flags: set[str]) -> list[str]:
    """The flags among ``flags`` that decide which vector kernels run, sorted (what a choice is keyed on)."""
    return sorted(f for f in flags if f.startswith(_ISA_FLAG_PREFIXES))


def isa_class(flags: set[str], arch: str | None = None) -> str:
    """The widest vector instruction set the CPU offers, e.g. "AVX-512 VNNI + AMX" or "AVX2".

    These are the classes between which ONNX Runtime, OpenVINO and FAISS switch kernels.
    """
    arch = arch or platform.machine()
    if {"asimd", "neon", "sve"} & flags or arch in ("aarch64", "arm64"):
        return "SVE" if "sve" in flags else "NEON"
    if "avx512f" in flags:
        name = "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-512"
        if "amx_int8" in flags or "amx_tile" in flags:
            name += " + AMX"
        return name
    if "avx2" in flags:
        return "AVX2 VNNI" if "avx_vnni" in flags else "AVX2"
    if "avx" in flags:
        return "AVX"
    return arch or "unknown"


def isa_caps(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The instruction-set caps set in the environment (``ISA_CAP_ENV``), e.g. ``{"ONEDNN_MAX_CPU_ISA": "AVX2"}``."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in ISA_CAP_ENV if env.get(name)}


def capped_class(hardware: str, caps: dict[str, str]) -> str:
    """The class the runtimes run at: the CPU's, lowered to the oneDNN cap when that names a narrower one.

    ``ONEDNN_MAX_CPU_ISA=AVX2`` on an AMX machine gives "AVX2": PyTorch's and OpenVINO's kernels then
    run as on an AVX2-only CPU. An unknown cap, or one wider than the CPU, leaves the class alone.
    """
    cap = _ONEDNN_CAPS.get((caps.get("ONEDNN_MAX_CPU_ISA") or caps.get("DNNL_MAX_CPU_ISA") or "").upper())
    if cap is None or hardware not in ISA_CLASSES:
        return hardware
    return min(hardware, cap, key=ISA_CLASSES.index)


def cores() -> int:
    """The cores this process may run on (its affinity), which is what the runtimes' thread pools use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_facts() -> dict[str, object]:
    """Model, hardware class, the class the runtimes are capped to, caps, ISA flags and cores of this CPU."""
    text = cpuinfo()
    flags = cpu_flags(text)
    caps = isa_caps()
    hardware = isa_class(flags)
    return {"cpu": cpu_model(text), "isa": hardware, "runs_as": capped_class(hardware, caps), "caps": caps,
            "flags": isa_flags(flags), "cores": cores()}


def class_slug(name: str) -> str:
    """A file-name form of a class: "AVX-512 VNNI + AMX" -> "avx512-vnni-amx"."""
    return "-".join(name.lower().replace("-512", "512").replace("+", " ").replace(".", "").split())
