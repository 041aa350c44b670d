"""The OpenVINO backend: the traced graph converted to OpenVINO IR, optionally static int8 by NNCF.

sentence-transformers' OpenVINO backend goes through optimum-intel, which pulls torchvision (a
build that breaks beside the CPU torch, "operator torchvision::nms does not exist") and a CUDA
torch; OpenVINO and NNCF used directly need neither. ``int8`` is NNCF's post-training static
quantization: activation ranges are measured on the calibration set shipped with the package
(``retriever/encoding/calibration/``, 64 texts spread over it: ``RECIPE``; never downloaded, never the corpus,
so one export serves every index of a model), weights and activations of the matrix multiplications become int8,
which the CPU runs with VNNI instructions where it has them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever.encoding.export import export_raw, export_record, graph_tasks
from retriever.errors import MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sentence_transformers import SentenceTransformer

INSTALL_HINT = "pip install 'retriever[openvino]'"
# fp32 means fp32: on CPUs with bf16 instructions OpenVINO would otherwise run the float parts in bf16.
PRECISION = "f32"
# Inputs are padded (masked) to a multiple of this many tokens: each new input shape costs the compiled
# model a reshape, about 1.5 ms, which dominated single-query latency (SciFact queries: p50 3.4 ms
# unpadded, 2.6 ms at 32; 8, 16 and 64 did less well).
PAD_MULTIPLE = 32


@dataclass(frozen=True)
class Int8Recipe:
    """How NNCF quantizes an export statically: part of the export's name (``calibration_digest``).

    ``samples``: calibration texts used, spread over the shipped set (None: all of it); ``bias_correction``:
    NNCF's ``fast`` bias correction or ``off``; ``smooth_quant``: NNCF's SmoothQuant for transformers (alpha
    0.95 on matrix multiplications) or not; ``preset``: None for NNCF's default for transformers (mixed).
    """

    samples: int | None = None
    bias_correction: str = "fast"
    smooth_quant: bool = True
    preset: str | None = None

    def tag(self) -> str:
        """A short stable name, e.g. ``s64-bcfast-sq``; the recipe before issue 18's item 1 is ``""``."""
        if self == Int8Recipe():
            return ""
        return "-".join([f"s{self.samples or 'all'}", f"bc{self.bias_correction}", "sq" if self.smooth_quant else
                         "nosq"] + ([self.preset] if self.preset else []))

    def arguments(self, nncf: Any) -> dict[str, Any]:
        """``nncf.quantize``'s keyword arguments for this recipe (besides the model and the data)."""
        from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

        advanced = nncf.AdvancedQuantizationParameters(disable_bias_correction=self.bias_correction == "off")
        if not self.smooth_quant:
            advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=-1)
        preset = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
        return {"model_type": nncf.ModelType.TRANSFORMER, "fast_bias_correction": True,
                "preset": preset[self.preset] if self.preset else None, "advanced_parameters": advanced}


# 64 of the 301 shipped texts (issue 18: auto's first use). NNCF's cost grows with the texts (statistics and bias
# correction run the model on each): MiniLM's export took 10.4-11.1 CPU s instead of 22.0-27.1 with all 301 (two
# runs), with the same agreement with fp32 (worst cosine 0.9890 vs 0.9889, mean 0.9950 vs 0.9953, on AVX2) and the
# same speed within noise; 32 texts or no SmoothQuant lost about 0.003 of worst cosine, 16 fell to 0.970
# (benchmarks/int8_export.py, results/int8_export-*.json).
RECIPE = Int8Recipe(samples=64)


def require_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise MissingExtraError(f"the openvino backend needs OpenVINO: {INSTALL_HINT}") from None
    return openvino


def require_nncf() -> Any:
    try:
        import nncf
    except ImportError:
        raise MissingExtraError(f"int8 with the openvino backend needs NNCF: {INSTALL_HINT}") from None
    return nncf


def check_nncf() -> None:
    """``require_nncf``'s one-line error, without the import: NNCF imports torch (~4 s of CPU), which only a
    calibration needs, not a process that loads a cached int8 export (on the light path, torch-free)."""
    try:
        found = importlib.util.find_spec("nncf") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules
        found = False
    if not found:
        raise MissingExtraError(f"int8 with the openvino backend needs NNCF: {INSTALL_HINT}")


def build_export(model: SentenceTransformer, quantize: str, directory: Path, calibration: Sequence[str] = (),
                 features: Callable[[list[str], str | None], dict[str, Any]] | None = None,
                 traced: Path | None = None, fp32: Path | None = None,
                 recipe: Int8Recipe = RECIPE) -> dict[str, Any]:
    """Write ``<graph>.xml``/``.bin`` for each task; ``int8`` calibrates on ``calibration`` texts.

    ``features(texts, task)`` tokenizes calibration texts exactly as documents are tokenized.
    ``traced``: a folder of the model's raw graphs to convert (``cached_trace``; None: trace into ``directory``).
    ``fp32``: for int8, this backend's complete fp32 export, read instead of converting the graphs again.
    ``recipe``: how NNCF quantizes; ``calibration`` is already the texts it names (``recipe.samples`` of them).
    """
    ov = require_openvino()
    nncf = require_nncf() if quantize == "int8" else None
    if fp32 is not None:
        inputs = export_record(fp32)["graphs"]
    else:
        inputs = export_record(traced)["graphs"] if traced else export_raw(model, directory)
    tasks = graph_tasks(model)
    for graph, names in inputs.items():
        if fp32 is not None:
            converted = shared_core().read_model(str(fp32 / f"{graph}.xml"))
        else:
            raw = (traced or directory) / f"{graph}.raw.onnx"
            converted = ov.convert_model(str(raw))
            if traced is None:
                raw.unlink()
        if nncf is not None:
            samples = []
            for text in calibration:
                batch = features([text], tasks[graph])
                samples.append({name: np.asarray(batch[name], dtype=np.int64) for name in names})
            with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars are not ours to show
                converted = nncf.quantize(converted, nncf.Dataset(samples), subset_size=len(samples),
                                          **recipe.arguments(nncf))
        ov.save_model(converted, str(directory / f"{graph}.xml"), compress_to_fp16=False)
    versions = {"openvino": ov.__version__, **({"nncf": nncf.__version__} if nncf is not None else {})}
    details = {"backend": "openvino", "quantize": quantize, "graphs": inputs, "calibration_texts": len(calibration),
               "runtime": versions}
    if nncf is not None:
        details["recipe"] = asdict(recipe)
    if fp32 is not None:
        details["quantized_from"] = fp32.name
    return details


@lru_cache(maxsize=1)
def shared_core() -> Any:
    """One OpenVINO Core per process, shared by every compiled model.

    With a Core per model, a process that had compiled two models and later received SIGINT
    crashed (segmentation fault; found by the test suite's Ctrl-C training test).
    """
    return require_openvino().Core()


class OpenVinoRuntime:
    """One compiled model per graph, made once; one infer request per graph and thread, made on first use.

    An infer request runs one inference at a time ("Infer Request is busy" otherwise), and a ``Retriever`` is
    searched from several threads at once (a server's workers, a user's thread pool): each thread gets its own.
    """

    def __init__(self, directory: Path, graphs: dict[str, list[str]], device: str, threads: int | None,
                 max_length: int | None = None) -> None:
        self.max_length = max_length
        core = shared_core()
        # CACHE_DIR: compiled blobs kept beside the export; a new process compiles MiniLM in 0.2 s, not 0.65 s.
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": PRECISION,
                                  "CACHE_DIR": str(directory / "compiled")}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        target = "GPU" if device == "gpu" else "CPU"
        self.inputs = graphs
        self.compiled = {graph: core.compile_model(str(directory / f"{graph}.xml"), target, config) for graph in graphs}
        self._local = threading.local()

    def _request(self, graph: str) -> Any:
        requests = self._local.__dict__.setdefault("requests", {})
        if graph not in requests:
            requests[graph] = self.compiled[graph].create_infer_request()
        return requests[graph]

    def embed(self, features: dict[str, Any], task: str) -> np.ndarray:
        graph = task if task in self.compiled else "model"
        request = self._request(graph)
        request.infer({name: self._padded(np.asarray(features[name], dtype=np.int64)) for name in self.inputs[graph]})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def _padded(self, array: np.ndarray) -> np.ndarray:
        """``array`` with its token axis padded with zeros (masked out, token type 0) to a multiple of PAD_MULTIPLE."""
        length = array.shape[1]
        target = -(-length // PAD_MULTIPLE) * PAD_MULTIPLE
        if self.max_length:
            target = min(target, max(length, self.max_length))
        if target == length:
            return array
        padded = np.zeros((array.shape[0], target), dtype=array.dtype)
        padded[:, :length] = array
        return padded
