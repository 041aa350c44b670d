"""Where and how a benchmark ran: the ``command``, ``date`` and ``machine`` every results JSON carries.

One helper for every benchmark, so that the rendered results tables (``benchmarks/render_tables.py``)
can say under each table which command produced it, when, and on which CPU. The instruction-set class
matters as much as the model: the int8 runtimes pick other kernels on AVX2, AVX-512 VNNI or AMX, so
two machines with the same marketing name can give different speeds.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str, text: str) -> str | None:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows, else "unknown"."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    return _cpuinfo_field("model name", text) or platform.processor() or "unknown"


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


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``); empty where unknown."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    return set((_cpuinfo_field("flags", text) or _cpuinfo_field("Features", text) or "").split())


def machine() -> dict[str, Any]:
    """CPU model, instruction-set class, cores and platform of this machine."""
    text = _cpuinfo()
    return {
        "cpu": cpu_model(text),
        "isa": isa_class(cpu_flags(text)),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """``command``, ``date`` (UTC, ISO 8601) and ``machine`` for a results JSON.

    ``argv`` defaults to this process's: the script path as typed, then its arguments, shell-quoted.
    """
    args = sys.argv if argv is None else argv
    return {
        "command": " ".join(shlex.quote(a) for a in args),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
