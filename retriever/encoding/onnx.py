"""The ONNX Runtime backend: a traced, fused graph, optionally with dynamic int8 weights.

sentence-transformers' own ONNX backend goes through optimum-onnx, which pins transformers
below 4.58 and conflicts with this package's pins; ONNX Runtime used directly has no such
conflict. The export is the TorchScript-traced pipeline (``export.py``) with eager attention,
whose pattern ONNX Runtime's transformer optimizer fuses (attention, embedding and skip layer
norms, bias GELU); ``int8`` then quantizes the weights of the fused graph dynamically
(activations are quantized per batch at run time), so no calibration data is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever.encoding.export import export_raw, export_record
from retriever.errors import MissingExtraError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

INSTALL_HINT = "pip install 'retriever[onnx]'"


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(f"the onnx backend needs ONNX Runtime: {INSTALL_HINT}") from None
    return onnxruntime


def build_export(model: SentenceTransformer, quantize: str, directory: Path, traced: Path | None = None,
                 fp32: Path | None = None) -> dict[str, Any]:
    """Write ``<graph>.onnx`` for each task into ``directory``: fused, and int8 when asked.

    ``traced``: a folder of the model's raw graphs to fuse (``cached_trace``; None: trace into ``directory``).
    ``fp32``: for int8, this backend's complete fp32 export, whose fused graphs are quantized as they are.
    """
    require_onnxruntime()
    if quantize == "int8" and fp32 is not None:
        made = export_record(fp32)
        for graph in made["graphs"]:
            quantize_weights(fp32 / f"{graph}.onnx", directory / f"{graph}.onnx")
        return {"backend": "onnx", "quantize": quantize, "graphs": made["graphs"], "fused": made["fused"],
                "quantized_from": fp32.name}
    from onnxruntime.transformers.optimizer import optimize_model

    source = traced or directory
    inputs = export_record(traced)["graphs"] if traced else export_raw(model, directory)
    fused: dict[str, dict[str, int]] = {}
    for graph in inputs:
        raw, final = source / f"{graph}.raw.onnx", directory / f"{graph}.onnx"
        optimized = optimize_model(str(raw), model_type="bert", opt_level=1, **attention_shape(model))
        fused[graph] = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
        if quantize == "int8":
            unquantized = directory / f"{graph}.fp32.onnx"
            optimized.save_model_to_file(str(unquantized))
            quantize_weights(unquantized, final)
            unquantized.unlink()
        else:
            optimized.save_model_to_file(str(final))
        if traced is None:
            raw.unlink()
    return {"backend": "onnx", "quantize": quantize, "graphs": inputs, "fused": fused}


def quantize_weights(fp32: Path, final: Path) -> None:
    """Dynamic int8 of a fused fp32 graph: int8 weights, activations quantized per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weight scales: per-tensor ones lose too much (MiniLM on 100 SciFact abstracts: mean
    # cosine to fp32 0.934 per tensor, 0.995 per channel). The fused contrib ops (Attention,
    # SkipLayerNormalization) have no ONNX type inference, hence the default tensor type.
    quantize_dynamic(str(fp32), str(final), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": 1})  # onnx.TensorProto.FLOAT


def attention_shape(model: SentenceTransformer) -> dict[str, int]:
    """Heads and width of the transformer, which the optimizer needs to fuse attention (0: detect from the graph)."""
    for module in model.modules():
        config = getattr(module, "config", None)
        heads, width = getattr(config, "num_attention_heads", None), getattr(config, "hidden_size", None)
        if isinstance(heads, int) and isinstance(width, int):
            return {"num_heads": heads, "hidden_size": width}
    return {"num_heads": 0, "hidden_size": 0}


class OnnxRuntime:
    """One ONNX Runtime session per graph, created once and reused by every call."""

    def __init__(self, directory: Path, graphs: dict[str, list[str]], device: str, threads: int | None) -> None:
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.inputs = graphs
        self.sessions = {
            graph: ort.InferenceSession(str(directory / f"{graph}.onnx"), options, providers=providers)
            for graph in graphs
        }

    def embed(self, features: dict[str, Any], task: str) -> np.ndarray:
        graph = task if task in self.sessions else "model"
        feed = {name: np.asarray(features[name], dtype=np.int64) for name in self.inputs[graph]}
        return self.sessions[graph].run(None, feed)[0]
