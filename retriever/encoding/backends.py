"""Which backend and quantization encode: names, checks, the engine's default and the agreement bound.

``torch`` runs the sentence-transformers model itself; ``onnx`` (ONNX Runtime) and ``openvino``
run a cached export of it (``export.py``). ``int8`` is dynamic for ONNX Runtime and static,
calibrated on a shipped set, for OpenVINO. A backend whose extra is missing is refused in one line
that says what to install. The default, ``auto``, is decided by measurement on this machine (``auto.py``).
"""

from __future__ import annotations

import os

from retriever.errors import RetrieverError

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZATIONS = ("none", "int8")
BACKEND_ENV = "RETRIEVER_BACKEND"  # e.g. "torch" or "onnx-int8": overrides the default for new indexes
AUTO = "auto"  # measure the backends on this machine and keep the fastest within MIN_COSINE (encoding/auto.py)

# How far each kind of backend may drift from PyTorch fp32, per vector (cosine), on any CPU; shared by the tests
# and by ``--backend auto``, which keeps no backend that drifts further on its probe sample. fp32 exports differ
# only in the order of float additions: 1.00000 on every path measured. int8 kernels differ by CPU: MiniLM's
# worst vector was 0.9916 (ONNX dynamic) and 0.9936 (OpenVINO static) on AVX-512 VNNI/AMX, with 1 and 2
# threads alike, and 0.9892 for ONNX on an AVX2-only CPU (no VNNI: u8*s8 products saturate in int16). The bound
# leaves about four times the spread between those paths below the worst one.
MIN_COSINE = {"none": 0.9999, "int8": 0.98}


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


def default_backend() -> tuple[str, str | None]:
    """``$RETRIEVER_BACKEND`` if set (a label such as ``onnx-int8``, or ``auto``), else ``auto``.

    ``auto`` comes with quantization None: chosen by measurement on this machine (``encoding/auto.py``).
    """
    configured = os.environ.get(BACKEND_ENV, "").strip()
    if configured and configured != AUTO:
        return parse_backend_label(configured)
    return AUTO, None


def resolve_backend(backend: str | None, quantize: str | None) -> tuple[str, str | None]:
    """The backend and quantization asked for, with the default filled in where not given (``None``).

    The backend may come back as ``auto``, with the quantization None (any) or the one given, which
    limits the choice to it (``--quantize int8`` alone: the faster int8 backend on this machine).
    """
    if backend is None:
        backend, default_quantize = default_backend()
        if backend == AUTO:
            return AUTO, quantize
        return backend, quantize or default_quantize
    if backend == AUTO:
        return AUTO, quantize
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
        from retriever.encoding.openvino import check_nncf, require_openvino

        require_openvino()
        if quantize == "int8":
            check_nncf()  # imported when an export is calibrated
