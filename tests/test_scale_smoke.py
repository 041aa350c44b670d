"""The scale benchmark runs end to end at smoke size (the full 10k/100k/1M run belongs in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_scale_benchmark_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--smoke", "--workdir",
                             str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["passages"] == 2_000
    for key in ("build_seconds", "disk_bytes", "open_seconds", "rss_search_mb", "add_1_seconds",
                "add_1000_seconds", "delete_1000_seconds"):
        assert figures[key] > 0, key
    for mode in ("dense", "lexical", "hybrid"):
        assert figures[f"{mode}_ms"]["p50"] > 0
    assert figures["deleted"] == 1_000
    assert figures["dense_recall_at_10"] == 1.0  # 2,000 passages: every segment is searched exactly
