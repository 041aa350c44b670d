"""The test suite's tiny random BERT (tests/conftest.py), for benchmarks that run hundreds of cases in minutes.

Its own module so that ``reliability.py`` and ``disk_trials.py`` both use it without importing each other.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(folder: Path) -> str:
    """Save the tiny model in ``folder`` and return its path."""
    spec = importlib.util.spec_from_file_location("retriever_tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.make_tiny_model(folder))
