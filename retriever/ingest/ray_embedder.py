"""Chunking and encoding on a Ray cluster: the ``Embedder`` of ``retriever.ingest.pipeline``, distributed.

``RayEmbedder`` takes the same stream of ``(document, file)`` as ``LocalEmbedder`` (folder sync and upserts plan
what changed in this process), cuts it into blocks of ``BLOCK_DOCUMENTS`` documents, and sends each block, in
batches of ``BATCH_DOCUMENTS``, to a pool of ``EncodeActor``s: each actor loads the model once, chunks its batch
with the index's chunker and encodes it (on a GPU when the cluster has them). Only passage offsets and vectors
come back; the driver yields ``(document, file, passages, vectors)`` in the order the documents came, so the writer
(local segments or Milvus) sees exactly what a single-process build gives it. The actors load the encoder the
index records (backend, quantization and, for static int8, its calibration): the export the driver made, or
found cached.

The pool outlives a build: the next build, update or ``add`` of this process with the same encoder and number of
workers reuses its actors, which have imported their runtime and loaded the model already (seconds per actor, and
most of a small update's time). Another encoder or number of workers replaces it; ``release_actors()`` (or the
end of the process, or ``ray.shutdown()``) frees its CPUs or GPUs.

``address``: ``"local"`` (or None) starts Ray on this machine, ``"auto"`` joins the cluster this machine belongs
to, ``"ray://host:10001"`` connects a client to a remote one. Every node needs this package installed (the
actors import ``retriever``) and the model at the same path, or a name every node can load offline (and, for
an ONNX or OpenVINO index, its export at the same path: ``$RETRIEVER_EXPORTS`` on shared storage).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from retriever.errors import ModelMismatchError, RetrieverError
from retriever.ingest.chunking import Passage, encoding_text
from retriever.ingest.documents import Document
from retriever.ingest.pipeline import Embedded

RAY_INSTALL = "pip install 'retriever[ray]'"
BLOCK_DOCUMENTS = 8_192  # documents the driver holds at once: enough to keep every actor busy, few enough to stream
BATCH_DOCUMENTS = 128  # documents per call of one actor


ADDRESS = re.compile(r"^(local|auto|ray://\S+|[\w.-]+:\d+)$")


def check_ray(workers: int | None = None, address: str | None = None) -> None:
    """A one-line error, before any work, if Ray is not installed or an argument is not usable."""
    if address is not None and not ADDRESS.match(address):
        raise RetrieverError(f"--ray takes local, auto, ray://HOST:10001 or HOST:PORT, not {address!r} "
                             "(write the corpus PATH before --ray)")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise RetrieverError(f"--ray needs Ray: {RAY_INSTALL}") from None
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise RetrieverError(f"workers must be a whole number of at least 1, not {workers!r}")


def connect(address: str | None) -> None:
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


def default_workers() -> int:
    """One actor per GPU of the cluster; without GPUs, one per CPU."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    return gpus if gpus else max(1, int(resources.get("CPU", 1)))


class EncodeActor:
    """A Ray actor holding one copy of the model: chunks and encodes batches of documents.

    Input columns: ``i`` (position in the block), ``doc_id``, ``title``, ``text``. Output columns, a row per passage:
    ``i``, ``ordinal``, ``start``, ``end``, ``title`` (as the chunker shortened it) and ``vector``.
    """

    def __init__(self, recorded: dict[str, Any], max_tokens: int, overlap: int, threads: int = 1) -> None:
        from retriever.encoding.encoder import Encoder
        from retriever.ingest.chunking import Chunker

        if recorded.get("backend", "torch") == "torch":  # ONNX and OpenVINO take ``threads``: no torch to import
            import torch

            torch.set_num_threads(max(1, threads))
        self.encoder = Encoder.from_description(recorded, exports=recorded.get("exports"), threads=threads)
        if self.encoder.fingerprint != recorded["fingerprint"]:  # another copy of the model would mix vectors
            raise ModelMismatchError(f"model {recorded['name']!r} on this Ray node has fingerprint "
                                     f"{self.encoder.fingerprint}, the index was built with {recorded['fingerprint']}")
        self.chunker = Chunker(self.encoder.tokenizer, max_tokens, overlap)

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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


@dataclass
class _Pool:
    """The encoding actors of this process, and what they were made for."""

    key: tuple[Any, ...]
    actors: list[Any]


_POOL: _Pool | None = None


def actor_pool(recorded: dict[str, Any], max_tokens: int, overlap: int, workers: int) -> list[Any]:
    """The actors that encode with ``recorded``'s encoder: this process's pool if it was made for the same
    encoder, chunking and number of workers on the same Ray job, else a new one (the old one is released)."""
    import ray

    global _POOL
    gpus = int(ray.cluster_resources().get("GPU", 0))
    key = (ray.get_runtime_context().get_job_id(), json.dumps(recorded, sort_keys=True, default=str), max_tokens,
           overlap, workers, gpus)
    if _POOL is not None and _POOL.key == key:
        return _POOL.actors
    release_actors()
    # GPUs shared evenly by the actors (fractional when there are more actors than GPUs), else one CPU each
    resources = {"num_gpus": min(1.0, gpus / workers)} if gpus else {"num_cpus": 1}
    remote = ray.remote(**resources)(EncodeActor)
    _POOL = _Pool(key, [remote.remote(recorded, max_tokens, overlap) for _ in range(workers)])
    return _POOL.actors


def release_actors() -> None:
    """Stop this process's encoding actors, freeing their CPUs or GPUs (the next Ray build starts new ones)."""
    global _POOL
    if _POOL is None:
        return
    import ray

    if ray.is_initialized():
        for actor in _POOL.actors:
            ray.kill(actor)
    _POOL = None


def batches(block: list[tuple[Document, str | None]], size: int) -> Iterator[dict[str, np.ndarray]]:
    """The block's documents as column batches of ``size`` (``EncodeActor.encode``'s input)."""
    for first in range(0, len(block), size):
        docs = [doc for doc, _ in block[first:first + size]]
        yield {"i": np.arange(first, first + len(docs), dtype=np.int64),
               "doc_id": np.asarray([d.doc_id for d in docs], dtype=object),
               "title": np.asarray([d.title for d in docs], dtype=object),
               "text": np.asarray([d.text for d in docs], dtype=object)}


class RayEmbedder:
    """Chunk and encode with an actor pool on Ray, yielding what ``LocalEmbedder`` yields, in the same order."""

    def __init__(self, describe: Callable[[], dict[str, Any]], chunking: dict[str, Any],
                 address: str | None = None, workers: int | None = None, block_documents: int = BLOCK_DOCUMENTS,
                 batch_documents: int = BATCH_DOCUMENTS) -> None:
        """``describe()``: the encoder's manifest entry (``Encoder.describe()`` plus ``exports``), its export made;
        called on the first block, so a run with nothing to encode loads no model."""
        check_ray(workers)
        self.describe = describe
        self.recorded: dict[str, Any] | None = None
        self.max_tokens, self.overlap = int(chunking["max_tokens"]), int(chunking["overlap_tokens"])
        self.address, self.workers = address, workers
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
        from ray.util import ActorPool

        if self.recorded is None:
            self.recorded = self.describe()
        connect(self.address)
        actors = actor_pool(self.recorded, self.max_tokens, self.overlap, self.workers or default_workers())
        passages: list[list[tuple[int, int, int, str]]] = [[] for _ in block]
        vectors: list[list[np.ndarray]] = [[] for _ in block]
        work = ActorPool(actors).map_unordered(lambda actor, batch: actor.encode.remote(batch),
                                               batches(block, self.batch_documents))
        try:
            for batch in work:
                for i, ordinal, start, end, title, vector in zip(batch["i"], batch["ordinal"], batch["start"],
                                                                 batch["end"], batch["title"], batch["vector"]):
                    passages[int(i)].append((int(ordinal), int(start), int(end), str(title)))
                    vectors[int(i)].append(vector)
        except ray.exceptions.RayError as exc:
            release_actors()  # a failed actor (a model it cannot load, a node lost) is not kept for the next build
            cause = next((line for line in str(exc).splitlines() if "Error:" in line), str(exc).splitlines()[0])
            raise RetrieverError(f"encoding on Ray failed: {cause.strip()[:300]}") from None
        for (doc, file), found, found_vectors in zip(block, passages, vectors):
            order = sorted(range(len(found)), key=lambda j: found[j][0])
            yield doc, file, [Passage(doc.doc_id, o, doc.text[s:e], s, e, t) for o, s, e, t in
                              (found[j] for j in order)], np.stack([found_vectors[j] for j in order]).astype(np.float32)
