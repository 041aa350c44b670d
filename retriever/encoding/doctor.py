"""What ``retriever doctor`` prints: what this machine supports for encoding, and what it measured.

The CPU (model, instruction-set class, flags, any cap on them in the environment), the installed
runtimes and backends, and the cached ``--backend auto`` choices, each marked as valid here or made
under other conditions (another CPU, cap, runtime version or probe). ``--measure`` measures again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retriever.encoding.auto import (
    Measurement,
    cached_choices,
    candidates,
    choice_key,
    probe_texts,
    runtime_versions,
)
from retriever.machine import cpu_facts


def machine_report(exports: Path | None = None) -> dict[str, Any]:
    """This CPU's facts, the runtime versions, the installed candidates and the cached choices (newest first)."""
    facts, runtimes, probe = cpu_facts(), runtime_versions(), probe_texts()
    cached = [{"model": r["model"], "chosen": r["chosen"], "measured_at": r["measured_at"],
               "runs_as": r["cpu"].get("runs_as"), "reason": r["reason"], "key": r["key"],
               "valid_here": choice_key(r["weights_fingerprint"], facts, runtimes, probe) == r["key"]}
              for r in cached_choices(exports)]
    return {"machine": facts, "runtimes": runtimes, "candidates": candidates(), "cached": cached}


def machine_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) rows of a ``machine_report``, for people."""
    facts = report["machine"]
    runs_as = facts["isa"] if facts["runs_as"] == facts["isa"] else \
        f"{facts['isa']}, runtimes capped to {facts['runs_as']}"
    rows = [
        ("cpu", str(facts["cpu"])),
        ("class", runs_as),
        ("isa caps", ", ".join(f"{k}={v}" for k, v in facts["caps"].items()) or "none set"),
        ("isa flags", " ".join(facts["flags"]) or "unknown"),
        ("cores", str(facts["cores"])),
        ("runtimes", ", ".join(f"{name} {version}" for name, version in report["runtimes"].items())),
        ("candidates", ", ".join(report["candidates"])),
    ]
    if not report["cached"]:
        rows.append(("cached", "no backend choice cached yet (the first index built with --backend auto measures)"))
    for c in report["cached"]:
        rows.append(("cached", f"{c['model']}: {c['chosen']} (measured {c['measured_at']} as {c['runs_as']}; "
                               f"{'valid on this machine' if c['valid_here'] else 'made under other conditions'})"))
    return rows


def measurement_lines(record: dict[str, Any]) -> list[str]:
    """A table of the candidates a choice measured, then the choice and why."""
    lines = [f"{'candidate':<14} {'docs/s':>8} {'min cosine':>10} {'prepare s':>9}  agrees"]
    for label, m in record["candidates"].items():
        if m.get("error"):
            lines.append(f"{label:<14} {'-':>8} {'-':>10} {'-':>9}  failed: {m['error']}")
            continue
        agrees = "yes" if Measurement(**m).agrees(label) else "no"
        lines.append(f"{label:<14} {m['docs_per_second']:>8.1f} {m['min_cosine']:>10.4f} "
                     f"{m['prepare_seconds']:>9.1f}  {agrees}")
    lines.append(f"chosen: {record['chosen']} ({record['reason']})")
    lines.append(f"measured in {record['seconds']:.1f} s on {record['probe_texts']} probe passages; "
                 f"cached as {record['key']}")
    return lines
