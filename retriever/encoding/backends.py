"""Which backend and quantization encode: names, checks, and the engine's default.

``torch`` runs the sentence-transformers model itself; ``onnx`` (ONNX Runtime) and ``openvino``
run a cached export of it (``export.py``). ``int8`` is dynamic for ONNX Runtime and static,
calibrated on a shipped set, for OpenVINO. A backend whose extra is missing is refused in one line
that says what to install.
"""

from __future__ import annotations

import os

from retriever.errors import RetrieverError

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZATIONS = ("none", "int8")
# The engine's default: the fastest backend within 0.5 point SciFact nDCG@10 of PyTorch fp32
# (benchmarks/results/encoding-scifact-test.md: 5.3x the documents/s of sentence-transformers,
# -0.1 point), used when its extra is installed; otherwise torch fp32, as if none qualified.
DEFAULT_BACKEND = "openvino"
DEFAULT_QUANTIZE = "int8"
BACKEND_ENV = "RETRIEVER_BACKEND"  # e.g. "torch" or "onnx-int8": overrides the default for new indexes


def backend_label(backend: str, quantize: str) -> str:
    """``torch``, ``onnx-int8``, ...: how benchmarks and messages name a backend and quantization."""
    return backend if quantize == "none" else f"{backend}-{quantize}"


def parse_backend_label(label: str) -> tuple[str, str]:
    backend, _, quantize = label.partition("-")
    quantize = quantize or "none"
    check_backend(backend, quantize)
    return backend, quantize


def backend_installed(backend: str, quantize: str) -> bool:
    """Whether the backend's extra is installed (found without importing it)."""
    import importlib.util

    needed = {"torch": [], "onnx": ["onnxruntime"], "openvino": ["openvino"] + (["nncf"] if quantize == "int8" else [])}
    return all(importlib.util.find_spec(name) is not None for name in needed[backend])


def default_backend() -> tuple[str, str]:
    """``$RETRIEVER_BACKEND`` if set, else DEFAULT_BACKEND when its extra is installed, else torch fp32."""
    configured = os.environ.get(BACKEND_ENV)
    if configured:
        return parse_backend_label(configured)
    if backend_installed(DEFAULT_BACKEND, DEFAULT_QUANTIZE):
        return DEFAULT_BACKEND, DEFAULT_QUANTIZE
    return "torch", "none"


def resolve_backend(backend: str | None, quantize: str | None) -> tuple[str, str]:
    """The backend and quantization to build with when some are not given (``None``)."""
    if backend is None:
        default, default_quantize = default_backend()
        return default, quantize or default_quantize
    return backend, quantize or "none"


def check_backend(backend: str, quantize: str) -> None:
    if backend not in BACKENDS:
        raise RetrieverError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if quantize not in QUANTIZATIONS:
        raise RetrieverError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if backend == "torch" and quantize != "none":
        raise RetrieverError("int8 quantization needs the onnx or openvino backend (--backend onnx|openvino)")


def require_backend(backend: str, quantize: str) -> None:
    """Fail at construction, in one line, when the backend's extra is not installed."""
    if backend == "onnx":
        from retriever.encoding.onnx import require_onnxruntime

        require_onnxruntime()
    elif backend == "openvino":
        from retriever.encoding.openvino import require_nncf, require_openvino

        require_openvino()
        if quantize == "int8":
            require_nncf()
