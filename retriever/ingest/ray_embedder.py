"""Chunking and encoding on a Ray cluster: the ``Embedder`` of ``retriever.ingest.pipeline``, distributed.

``RayEmbedder`` takes the same stream of ``(document, file)`` as ``LocalEmbedder`` (folder sync and upserts plan
what changed in this process), cuts it into blocks of ``BLOCK_DOCUMENTS`` documents, and runs each block as a Ray
Data ``map_batches`` over a pool of ``EncodeActor``s: each actor loads the model once, chunks its batch with the
index's chunker and encodes it (on a GPU when the cluster has them). Only passage offsets and vectors come back;
the driver yields ``(document, file, passages, vectors)`` in the order the documents came, so the writer (local
segments or Milvus) sees exactly what a single-process build gives it. The actors load the encoder the index
records (backend, quantization and, for static int8, its calibration): the export the driver made, or found cached.

``address``: ``"local"`` (or None) starts Ray on this machine, ``"auto"`` joins the cluster this machine belongs
to, ``"ray://host:10001"`` connects a client to a remote one. Every node needs this package installed (the
actors import ``retriever``) and the model at the same path, or a name every node can load offline (and, for
an ONNX or OpenVINO index, its export at the same path: ``$RETRIEVER_EXPORTS`` on shared storage).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from retriever.errors import ModelMismatchError, RetrieverError
from retriever.ingest.chunking import Passage, encoding_text
from retriever.ingest.documents import Document
from retriever.ingest.pipeline import Embedded

RAY_INSTALL = "pip install 'retriever[ray]'"
BLOCK_DOCUMENTS = 8_192  # documents per Ray Data job: big enough to keep every actor busy, small enough to stream
BATCH_DOCUMENTS = 128  # documents per map_batches call of one actor


ADDRESS = re.compile(r"^(local|auto|ray://\S+|[\w.-]+:\d+)$")


def check_ray(workers: int | None = None, address: str | None = None) -> None:
    """A one-line error, before any work, if Ray Data is not installed or an argument is not usable."""
    if address is not None and not ADDRESS.match(address):
        raise RetrieverError(f"--ray takes local, auto, ray://HOST:10001 or HOST:PORT, not {address!r} "
                             "(write the corpus PATH before --ray)")
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise RetrieverError(f"--ray needs Ray Data: {RAY_INSTALL}") from None
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise RetrieverError(f"workers must be a whole number of at least 1, not {workers!r}")


def connect(address: str | None, progress: bool = False) -> None:
    """Start or join Ray (once per process)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        if address in (None, "local"):
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RetrieverError(f"cannot start or join Ray at {address or 'local'}: {str(exc).splitlines()[0]}") from None
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = progress
    context.execution_options.verbose_progress = False


def default_workers() -> int:
    """One actor per GPU of the cluster; without GPUs, one per CPU."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    return gpus if gpus else max(1, int(resources.get("CPU", 1)))


class EncodeActor:
    """A Ray actor holding one copy of the model: chunks and encodes batches of documents.

    Input rows: ``i`` (position in the block), ``doc_id``, ``title``, ``text``. Output rows, one per passage:
    ``i``, ``ordinal``, ``start``, ``end``, ``title`` (as the chunker shortened it) and ``vector``.
    """

    def __init__(self, recorded: dict[str, Any], max_tokens: int, overlap: int, threads: int = 1) -> None:
        import torch

        from retriever.encoding.encoder import Encoder
        from retriever.ingest.chunking import Chunker

        torch.set_num_threads(max(1, threads))
        self.encoder = Encoder.from_description(recorded, exports=recorded.get("exports"), threads=threads)
        if self.encoder.fingerprint != recorded["fingerprint"]:  # another copy of the model would mix vectors
            raise ModelMismatchError(f"model {recorded['name']!r} on this Ray node has fingerprint "
                                     f"{self.encoder.fingerprint}, the index was built with {recorded['fingerprint']}")
        self.chunker = Chunker(self.encoder.tokenizer, max_tokens, overlap)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        docs = [Document(str(d), str(t), str(title)) for d, t, title in zip(batch["doc_id"], batch["text"],
                                                                             batch["title"])]
        split = self.chunker.split_many(docs)
        passages = [p for doc_passages in split for p in doc_passages]
        vectors = self.encoder.encode_documents([encoding_text(p.title, p.text) for p in passages])
        owner = np.repeat(np.asarray(batch["i"], dtype=np.int64), [len(s) for s in split])
        return {
            "i": owner,
            "ordinal": np.asarray([p.ordinal for p in passages], dtype=np.int64),
            "start": np.asarray([p.start for p in passages], dtype=np.int64),
            "end": np.asarray([p.end for p in passages], dtype=np.int64),
            "title": np.asarray([p.title for p in passages], dtype=object),
            "vector": vectors,
        }


class RayEmbedder:
    """Chunk and encode with an actor pool on Ray, yielding what ``LocalEmbedder`` yields, in the same order."""

    def __init__(self, describe: Callable[[], dict[str, Any]], chunking: dict[str, Any],
                 address: str | None = None, workers: int | None = None, block_documents: int = BLOCK_DOCUMENTS,
                 batch_documents: int = BATCH_DOCUMENTS, progress: bool = False) -> None:
        """``describe()``: the encoder's manifest entry (``Encoder.describe()`` plus ``exports``), its export made;
        called on the first block, so a run with nothing to encode loads no model."""
        check_ray(workers)
        self.describe = describe
        self.recorded: dict[str, Any] | None = None
        self.max_tokens, self.overlap = int(chunking["max_tokens"]), int(chunking["overlap_tokens"])
        self.address, self.workers, self.progress = address, workers, progress
        self.block_documents, self.batch_documents = block_documents, batch_documents

    def __call__(self, documents: Iterable[tuple[Document, str | None]]) -> Iterator[Embedded]:
        block: list[tuple[Document, str | None]] = []
        for item in documents:
            block.append(item)
            if len(block) >= self.block_documents:
                yield from self._embed(block)
                block = []
        if block:
            yield from self._embed(block)

    def _embed(self, block: list[tuple[Document, str | None]]) -> Iterator[Embedded]:
        import ray
        import ray.data
        from ray.data import ActorPoolStrategy

        if self.recorded is None:
            self.recorded = self.describe()
        connect(self.address, self.progress)
        workers = self.workers or default_workers()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        rows = [{"i": i, "doc_id": doc.doc_id, "title": doc.title, "text": doc.text}
                for i, (doc, _) in enumerate(block)]
        dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), workers * 4))
        # GPUs shared evenly by the actors (fractional when there are more actors than GPUs), else one CPU each
        resources = {"num_gpus": min(1.0, gpus / workers)} if gpus else {"num_cpus": 1}
        encoded = dataset.map_batches(
            EncodeActor,
            fn_constructor_kwargs={"recorded": self.recorded, "max_tokens": self.max_tokens, "overlap": self.overlap},
            batch_size=self.batch_documents, batch_format="numpy", compute=ActorPoolStrategy(size=workers),
            **resources,
        )
        passages: list[list[tuple[int, int, int, str]]] = [[] for _ in block]
        vectors: list[list[np.ndarray]] = [[] for _ in block]
        try:
            for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
                for i, ordinal, start, end, title, vector in zip(batch["i"], batch["ordinal"], batch["start"],
                                                                 batch["end"], batch["title"], batch["vector"]):
                    passages[int(i)].append((int(ordinal), int(start), int(end), str(title)))
                    vectors[int(i)].append(vector)
        except ray.exceptions.RayError as exc:
            cause = next((line for line in str(exc).splitlines() if "Error:" in line), str(exc).splitlines()[0])
            raise RetrieverError(f"encoding on Ray failed: {cause.strip()[:300]}") from None
        for (doc, file), found, found_vectors in zip(block, passages, vectors):
            order = sorted(range(len(found)), key=lambda j: found[j][0])
            yield doc, file, [Passage(doc.doc_id, o, doc.text[s:e], s, e, t) for o, s, e, t in
                              (found[j] for j in order)], np.stack([found_vectors[j] for j in order]).astype(np.float32)
