"""Exports of a sentence-transformers model for the ONNX Runtime and OpenVINO backends.

An export is made once, from the local model directory, and cached under
``~/.cache/retriever/exports/<fingerprint>-<backend>-<quantize>[-<calibration>]/`` (or
``$RETRIEVER_EXPORTS``). The cache sits beside the models rather than inside each index: one
export serves every index and every search process that uses the model, the index format stays
the index's own, and fp32 and dynamically quantized exports are pure functions of the weights,
so a lost one is simply made again. The model is traced once per cache (``<fingerprint>-trace/``, the
raw fp32 ONNX graphs), and every export is derived from that trace: ONNX Runtime fuses it, OpenVINO
converts it, and each int8 export quantizes its backend's fp32 export (made first if missing), so that
``--backend auto``'s first use, which makes all four, traces once rather than four times and fuses and
converts once rather than twice (issue 18). A statically quantized export also depends on its
calibration texts, the set shipped in ``retriever/encoding/calibration/``: their digest is part of its
folder name and of the encoder's fingerprint, so each model is calibrated once per export cache.

The whole sentence-transformers pipeline (transformer, pooling, dense layers, normalisation)
is traced as one graph per task, so a fine-tuned model with a metric head or separate query
and document towers (one graph each) exports the same way as the base model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EXPORTS_ENV = "RETRIEVER_EXPORTS"
COMPLETE = "export.json"  # written last: an export folder without it is not used
GRAPH_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


def exports_root() -> Path:
    """Where exports are cached: ``$RETRIEVER_EXPORTS`` or ``~/.cache/retriever/exports``."""
    configured = os.environ.get(EXPORTS_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "retriever" / "exports"


def export_directory(root: Path, fingerprint: str, backend: str, quantize: str, calibration: str | None) -> Path:
    suffix = f"-{calibration}" if calibration else ""
    return Path(root) / f"{fingerprint}-{backend}-{quantize}{suffix}"


def is_complete(directory: Path) -> bool:
    return (directory / COMPLETE).is_file()


def cached_export(directory: Path, make: Callable[[Path], dict[str, Any]]) -> bool:
    """Make the export in ``directory`` unless it exists; True if it was made now.

    It is written into a private folder and renamed into place, so an interrupted export leaves
    nothing behind and two processes exporting at once both end up using one complete copy.
    """
    if is_complete(directory):
        return False
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        started = time.perf_counter()
        with preserved_logging():
            details = make(staging)
        details["seconds"] = round(time.perf_counter() - started, 2)
        (staging / COMPLETE).write_text(json.dumps(details, indent=2) + "\n")
        if directory.exists() and not is_complete(directory):
            shutil.rmtree(directory, ignore_errors=True)  # debris of an older, killed export
        try:
            os.replace(staging, directory)
        except OSError:
            if not is_complete(directory):
                raise
            return False  # another process finished the same export first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Keep the exporters' logging configuration to themselves.

    Importing ``onnxruntime.quantization`` calls ``logging.basicConfig(level=INFO)``, and its
    optimizer reconfigures the root logger, after which every library's INFO and DEBUG records
    would be printed; they also warn about pre-processing that does not apply to text models.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


# tracing the model -------------------------------------------------------------------------------
def graph_tasks(model: SentenceTransformer) -> dict[str, str | None]:
    """Graph file stem -> the task it encodes: one shared graph, or one per tower of a half-twin."""
    from sentence_transformers.sentence_transformer.modules import Router

    if any(isinstance(m, Router) for m in model.modules()):
        return {"query": "query", "document": "document"}
    return {"model": None}


def graph_of(task: str | None) -> str:
    return "model" if task is None else task


def graph_inputs(model: SentenceTransformer, task: str | None) -> list[str]:
    """The tokenizer outputs the traced graph takes, in order."""
    features = model.preprocess(["an example"], task=task)
    return [name for name in GRAPH_INPUTS if name in features]


def example_features(model: SentenceTransformer, task: str | None) -> dict[str, Any]:
    return model.preprocess(["a short example", "a somewhat longer example sentence to trace with"], task=task)


def export_onnx_graph(model: SentenceTransformer, task: str | None, path: Path) -> list[str]:
    """Trace the sentence-embedding pipeline for ``task`` into an fp32 ONNX file; returns its input names.

    The TorchScript-based exporter is used: it needs no extra package (the dynamo exporter
    needs onnxscript) and traces MiniLM in about two seconds.
    """
    import warnings

    import torch

    names = graph_inputs(model, task)
    features = example_features(model, task)

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors)), task=task)["sentence_embedding"]

    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["sentence_embedding"] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python booleans that are constant here
        torch.onnx.export(
            SentenceGraph().eval(), tuple(features[n] for n in names), str(path), dynamo=False,
            input_names=names, output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=OPSET,
        )
    return names


@contextmanager
def eager_attention(model: SentenceTransformer) -> Iterator[None]:
    """Trace attention as plain matmul/softmax, the pattern ONNX Runtime's optimizer fuses (SDPA is not)."""
    changed = []
    for module in model.modules():
        setter = getattr(module, "set_attn_implementation", None)
        config = getattr(module, "config", None)
        if setter is None or config is None or getattr(config, "_attn_implementation", None) in (None, "eager"):
            continue
        changed.append((setter, config._attn_implementation))
        setter("eager")
    try:
        yield
    finally:
        for setter, previous in changed:
            setter(previous)


def export_raw(model: SentenceTransformer, directory: Path) -> dict[str, list[str]]:
    """fp32 traced graphs (``<graph>.raw.onnx``), one per task; returns each graph's input names."""
    inputs = {}
    with eager_attention(model):
        for graph, task in graph_tasks(model).items():
            inputs[graph] = export_onnx_graph(model, task, directory / f"{graph}.raw.onnx")
    return inputs


def trace_directory(root: Path, fingerprint: str) -> Path:
    return Path(root) / f"{fingerprint}-trace"


def cached_trace(model: SentenceTransformer, root: Path, fingerprint: str) -> Path:
    """The folder of the model's raw fp32 graphs (``<graph>.raw.onnx``), traced now unless cached.

    Shared by the ONNX Runtime and OpenVINO exports: tracing is the slow common step of both.
    """
    directory = trace_directory(root, fingerprint)
    cached_export(directory, lambda staging: {"graphs": export_raw(model, staging), "fingerprint": fingerprint})
    return directory


def export_record(directory: Path) -> dict[str, Any]:
    """What a complete export (or trace) folder records: its graphs' input names and how it was made."""
    return json.loads((directory / COMPLETE).read_text())
