"""The server keeps the contract its OpenAPI schema states (issue 24): schemathesis with every check.

A real ``retriever serve`` over a tiny index, with an API key, and schemathesis' own command line over
``/openapi.json`` (its pytest plugin does not load under pytest 9): requests that the schema allows are
answered (never refused as malformed), requests it forbids are refused with a 4xx, no 5xx, every answer
as declared (status, headers, body), ``Allow`` lists the methods of the path, the key is required.
Deterministic and bounded, so that a failure reproduces: schemathesis prints the request that failed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs the 'serve' extra: pip install 'retriever[serve]'")
pytest.importorskip("schemathesis", reason="the schema check needs the 'dev' extra: pip install 'retriever[dev]'")

from conftest import PROCESS_BACKEND  # noqa: E402

from retriever import Retriever  # noqa: E402

KEY = "schema-key-123"
RECORDS = [
    {"_id": "cats", "title": "Cats", "text": "cats sleep in the sun all day", "year": 2021},
    {"_id": "guides/trains.md", "text": "the train to the coast leaves at nine", "year": 2020, "tags": ["travel"]},
]
EXAMPLES = 15  # per operation and phase: about 550 requests, 20-40 s on 2 cores


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    folder = tmp_path_factory.mktemp("schema") / "idx"
    Retriever.build(RECORDS, index_dir=folder, model=tiny_model, backend=PROCESS_BACKEND).close()  # served by a process

    return folder


def test_schemathesis_finds_no_failure(index_dir: Path, serve_command: Callable, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    with serve_command(index_dir, api_key=KEY) as url:
        result = subprocess.run(
            [str(st), "run", f"{url}/openapi.json", "--checks", "all", "--header", f"Authorization: Bearer {KEY}",
             "--max-examples", str(EXAMPLES), "--generation-deterministic",
             "--workers", "1", "--no-color", "--request-timeout", "30"],
            cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=300,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts and counts[1] == counts[2] and int(counts[1]) >= 250, output  # every operation was exercised
