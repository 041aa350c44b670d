"""Which device an encoder runs on: ``auto`` picks an accelerator when one is present.

Each backend sees devices its own way (torch: CUDA or Apple MPS; ONNX Runtime: its CUDA
execution provider; OpenVINO: an Intel GPU plugin), so the choice is resolved per backend and
a device the backend cannot use is refused in one line instead of silently running on the CPU.
OpenVINO's GPU plugin drives Intel GPUs, not CUDA ones, so it is reached through ``auto`` only.
"""

from __future__ import annotations

from retriever.errors import RetrieverError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str, backend: str) -> str:
    """The concrete device (``cpu``, ``cuda``, ``mps``; ``gpu`` for OpenVINO) for ``backend``."""
    if device not in DEVICES:
        raise RetrieverError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    available = available_devices(backend)
    if device == "auto":
        return next((d for d in available if d != "cpu"), "cpu")
    if device not in available:
        raise RetrieverError(
            f"device {device!r} is not available to the {backend} backend here (available: {', '.join(available)})"
        )
    return device


def available_devices(backend: str) -> list[str]:
    """Devices this machine offers to ``backend``, accelerators first, ``cpu`` always last."""
    found: list[str] = []
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            found.append("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            found.append("mps")
    elif backend == "onnx":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            found.append("cuda")
    elif backend == "openvino":
        import openvino

        if any(name.startswith("GPU") for name in openvino.Core().available_devices):
            found.append("gpu")
    return [*found, "cpu"]
