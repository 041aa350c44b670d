"""Building this engine's index of a benchmark corpus as a user would, and the peak memory it takes.

Shared by ``bench.py`` (the systems table) and ``encoding_bench.py`` (the encoding table), which both
sit above it: imports run one way.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from retriever.encoding.cache import CachedEncoder
from retriever.eval.beir import BeirDataset


class PeakMemory:
    """Peak resident memory of this process while a block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakMemory:
        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)



def build_engine(name: str, dataset: BeirDataset, encoder: CachedEncoder, ann: str, workdir: Path,
                 progress: bool, store: str | None = None) -> tuple[Any, dict[str, Any]]:
    """This engine's index of the corpus, built as a user would, with its build figures."""
    from retriever.retriever import Retriever

    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    with PeakMemory() as memory:
        started = time.perf_counter()
        retriever = Retriever.build(records, index_dir=workdir / name, encoder=encoder, ann=ann, progress=progress,
                                    store=store)
        build = time.perf_counter() - started
    encode = encoder.last_encode
    if encode.get("cached"):  # count the encoding as it took when it was computed
        build += encode["seconds"]
    return retriever, {
        "build_seconds": build,
        "encode_docs_per_second": len(records) / encode["seconds"],
        "encode_passages_per_second": encode["texts"] / encode["seconds"],
        "encode_cached": bool(encode.get("cached")),
        "index_bytes": retriever.snapshot.size_bytes(),
        "ram_bytes_per_passage": retriever.snapshot.ram_bytes() / max(1, retriever.snapshot.passages),
        "build_peak_rss_mb": memory.peak / 1e6,
    }
