"""Where and how a benchmark ran: the ``command``, ``date`` and ``machine`` every results JSON carries.

One helper for every benchmark, so that the rendered results tables (``benchmarks/render_tables.py``)
can say under each table which command produced it, when, and on which CPU. The instruction-set class
matters as much as the model: the int8 runtimes pick other kernels on AVX2, AVX-512 VNNI or AMX, so
two machines with the same marketing name can give different speeds.
"""

from __future__ import annotations

import platform
import shlex
import sys
from datetime import datetime, timezone
from typing import Any

from retriever.machine import capped_class, cores, cpu_flags, cpu_model, cpuinfo, isa_caps, isa_class

__all__ = ["cpu_flags", "cpu_model", "isa_class", "machine", "provenance"]


def machine() -> dict[str, Any]:
    """CPU model, instruction-set class (and any cap on it), cores and platform of this machine.

    The CPU facts come from ``retriever.machine``, which the encoder's backend choice reads too.
    """
    text = cpuinfo()
    caps = isa_caps()
    hardware = isa_class(cpu_flags(text))
    record: dict[str, Any] = {
        "cpu": cpu_model(text),
        "isa": hardware,
        "cores": cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if caps:  # runtimes capped below the CPU (ONEDNN_MAX_CPU_ISA=AVX2, ...): the class they ran at
        record.update(caps=caps, runs_as=capped_class(hardware, caps))
    return record


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
