"""Each backend agrees with PyTorch on the real MiniLM (all-MiniLM-L6-v2, shipped offline), as test_encoding.py
checks on the tiny model, and each query finds the document PyTorch finds: what a user of the default model sees.

A file of its own because MiniLM's static int8 calibration (OpenVINO) is the longest single test of the suite;
``make test`` hands whole files to its xdist workers, so a separate file lets the other worker take the rest.
"""

from __future__ import annotations

import pytest
from test_encoding import BACKENDS, assert_agrees_with_torch

from retriever.encoding.encoder import Encoder

MINILM = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def minilm_torch() -> Encoder:
    """PyTorch's MiniLM, the reference, loaded once for the module."""
    return Encoder(MINILM)


@pytest.mark.parametrize("label", BACKENDS)
def test_backend_agrees_with_torch_on_minilm(label: str, minilm_torch: Encoder) -> None:
    # each query's top document leads the second by >= 0.18 with PyTorch, so the same top is a fair demand
    assert_agrees_with_torch(MINILM, label, minilm_torch, same_top=True)
