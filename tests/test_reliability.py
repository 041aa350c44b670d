"""The fast subset of the reliability fuzz (``benchmarks/reliability.py``, issue 9).

Malformed files, records, queries, filters and options through the CLI: no traceback, no
crash, every failure in one ``error:`` line, and the cases with a fixed outcome end that way.
The whole set (hundreds of cases) runs with ``python benchmarks/reliability.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_reliability():
    spec = importlib.util.spec_from_file_location("reliability", ROOT / "benchmarks" / "reliability.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reliability"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


reliability = _load_reliability()
CASES = {case.name: case for case in reliability.all_cases()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model: str):
    return reliability.Workspace(tmp_path_factory.mktemp("reliability"), tiny_model)


def test_the_full_set_is_large_and_covers_every_kind_of_input() -> None:
    groups = {case.group for case in CASES.values()}
    assert len(CASES) >= 400 and groups == {"file", "record", "query", "filter", "option", "index"}
    assert 40 <= len(reliability.FAST_CASES) <= 70


@pytest.mark.parametrize("name", reliability.FAST_CASES)
def test_malformed_input_is_answered_in_one_line(name: str, workspace, tmp_path: Path) -> None:
    outcome = reliability.run_in_process(CASES[name], workspace, tmp_path / "case", timeout=120)
    assert outcome.verdict in ("ok", "error"), f"{outcome.verdict}: {outcome.detail}"


def test_a_real_shell_with_bytes_that_are_not_utf8_gets_one_line(workspace, tmp_path: Path) -> None:
    case = reliability.Case("query/invalid-utf8-argv", "query", lambda ws, folder: [], "error")
    argv = [b"search", b"caf\xe9 \xff", b"--index", str(workspace.index).encode()]
    outcome = reliability.run_subprocess(case, workspace, tmp_path / "case", 120, argv_bytes=argv)
    assert outcome.verdict == "error", outcome.detail


@pytest.mark.parametrize(("code", "stderr", "verdict"), [
    (0, "", "ok"),
    (1, "warning: skipped 1 file: a\nerror: bad input\n", "error"),
    (1, "Traceback (most recent call last):\n  ...\nValueError: x\n", "traceback"),
    (1, "error: first line\nsecond line\n", "multi-line"),
    (1, "", "multi-line"),
    (-9, "", "crash"),
    (137, "", "crash"),
])
def test_the_classifier_catches_what_the_suite_counts(code: int, stderr: str, verdict: str) -> None:
    case = reliability.Case("x", "option", lambda ws, folder: [])
    assert reliability.classify(case, code, "", stderr, None) == verdict
    assert reliability.classify(case, 0, "", "", ValueError("escaped")) == "traceback"
    assert reliability.classify(reliability.Case("x", "option", case.prepare, "ok"), 1, "", "error: e", None) \
        == "unexpected"
