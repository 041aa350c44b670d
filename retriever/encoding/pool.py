"""Encoding with a pool of worker processes, for machines with many cores.

One process running a transformer rarely keeps more than a handful of cores busy on small
batches; N processes, each with its own copy of the model (or its export) and an equal share of
the cores, do. Texts are sorted by length and dealt out in chunks, so each chunk pads little,
and the vectors come back in the original order. Workers are started with ``spawn`` (safe with
threaded runtimes) once, on first use, and reused until the encoder is closed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np

CHUNK = 128  # texts per task sent to a worker

_worker_encoder: Any = None


def _start_worker(make_encoder: Callable[..., Any], threads: int) -> None:
    global _worker_encoder
    import torch

    torch.set_num_threads(threads)
    _worker_encoder = make_encoder(workers=1, threads=threads)


def _encode_chunk(texts: list[str], task: str) -> np.ndarray:
    return _worker_encoder.encode_local(texts, task)


class EncoderPool:
    """``workers`` processes that each hold an encoder made by ``make_encoder(workers=1, threads=N)``.

    ``make_encoder`` is picklable (e.g. ``functools.partial(Encoder, ...)``), so this module needs no encoder.
    """

    def __init__(self, make_encoder: Callable[..., Any], workers: int) -> None:
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_start_worker,
            initargs=(make_encoder, threads),
        )

    def encode(self, texts: list[str], task: str, dimension: int, progress: bool = False) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        chunks = [order[i:i + CHUNK] for i in range(0, len(order), CHUNK)]
        futures = [self._executor.submit(_encode_chunk, [texts[j] for j in chunk], task) for chunk in chunks]
        out = np.empty((len(texts), dimension), dtype=np.float32)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="Encoding", unit="text")
        for chunk, future in zip(chunks, futures):
            out[chunk] = future.result()
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
