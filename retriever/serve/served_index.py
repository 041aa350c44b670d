"""The index behind the server: reads never wait for writes, writes are serialized and none is lost.

- Searches use the *reader*, a ``Retriever`` of the last committed version (``ReaderSlot``).
- Writes go, one at a time in submission order, to a separate *writer* ``Retriever`` on a single
  worker thread, so the event loop and the searches keep running while documents are encoded.
- After a commit the new version is loaded (sharing the reader's model, so a swap costs no model
  load) and swapped in for new requests. A failed write commits nothing, so the served version
  stays as it was; a write already queued is carried out even if its client disconnects.
- A version committed by another process (``retriever index``, ``retriever tune`` re-encoding with a
  tuned model) is noticed within ``WATCH_SECONDS`` and swapped in the same way, on the writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from retriever.errors import RetrieverError
from retriever.ingest.sync import IndexReport
from retriever.retriever import Retriever
from retriever.search.results import Hit
from retriever.serve.batching import SearchBatcher
from retriever.serve.limits import RequestRejected
from retriever.serve.snapshot import ReaderSlot

T = TypeVar("T")
log = logging.getLogger("retriever.serve")
WATCH_SECONDS = 2.0  # how often the server reads which version is current on disk (one small file)


class ServedIndex:
    def __init__(self, index_dir: str | Path, model: str | None = None, max_pending_writes: int = 32,
                 batch_searches: bool = True) -> None:
        self.index_dir = Path(index_dir)
        reader = Retriever.load(self.index_dir, model=model)
        self._encoder = reader.encoder  # loaded now, so that the first search does not wait for it
        self._encoder.encode_queries(["warm up"])  # first call sets the tokenizer up, before threads share it
        _warm(reader)
        self._readers = ReaderSlot(reader)
        self._writer: Retriever | None = None
        self._write_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retriever-writer")
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.max_pending_writes = max_pending_writes
        self.commits = 0
        self.batcher = SearchBatcher(self.reading) if batch_searches else None
        self._stop_watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="retriever-watch", daemon=True)
        self._watcher.start()

    # reading ---------------------------------------------------------------------------------
    def reading(self) -> AbstractContextManager[Retriever]:
        """The reader of the last committed version, held for the duration of the block."""
        return self._readers.use()

    async def search(self, query: str, options: dict[str, Any]) -> list[Hit]:
        """One search, answered in a batch with the searches that arrive meanwhile (unless batching is off)."""
        if self.batcher is not None:
            return await asyncio.wrap_future(self.batcher.submit(query, options))

        def search_now() -> list[Hit]:
            with self.reading() as reader:
                return reader.search(query, **options)

        return await run_in_threadpool(search_now)  # the pool FastAPI runs plain endpoints on

    @property
    def encoder_path(self) -> Path:
        """Where the model lives on the server's disk (kept out of every response)."""
        return Path(self._encoder.path)

    @property
    def pending_writes(self) -> int:
        return self._pending

    # writing ---------------------------------------------------------------------------------
    async def add(self, records: list[dict[str, Any]]) -> IndexReport:
        return await self._submit(lambda writer: writer.add(records))

    async def remove(self, ids: list[str]) -> int:
        return await self._submit(lambda writer: writer.remove(ids))

    async def _submit(self, operation: Callable[[Retriever], T]) -> T:
        with self._pending_lock:
            if self._pending >= self.max_pending_writes:
                raise RequestRejected(429, f"{self._pending} writes already queued; retry later")
            self._pending += 1
        try:
            future = self._executor.submit(self._run, operation)
        except BaseException:
            self._finished()
            raise
        # shield: a client that disconnects must not cancel a write that is queued or running
        return await asyncio.shield(asyncio.wrap_future(future))

    def _run(self, operation: Callable[[Retriever], T]) -> T:
        try:
            return self.write(operation)
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    def write(self, operation: Callable[[Retriever], T]) -> T:
        """Apply ``operation`` to the writer, then serve the version it committed (blocking)."""
        with self._write_lock:
            writer = self._open_writer()
            moved = writer.refresh()  # another process may have committed since the last write
            try:
                result = operation(writer)
            except RetrieverError:
                if moved:
                    self._publish()
                raise  # nothing was committed: the Retriever leaves itself as it was
            except BaseException:
                self._drop_writer()  # reopened from disk by the next write, whatever state it was left in
                raise
            if moved or _changed(result):
                self._publish()
            return result

    def _open_writer(self) -> Retriever:
        if self._writer is None:
            # its own Retriever and model: encoding documents never shares a tokenizer with searches
            self._writer = Retriever.load(self.index_dir)
        return self._writer

    def _drop_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _publish(self) -> None:
        reader = Retriever.load(self.index_dir)
        if reader.manifest.model["fingerprint"] == self._encoder.fingerprint:
            reader._use_encoder(self._encoder)
        else:  # re-encoded with another model (retriever tune): serve with that one from now on
            self._encoder = reader.encoder
        _warm(reader)
        self._readers.swap(reader)
        self.commits += 1

    # versions committed elsewhere ---------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop_watching.wait(WATCH_SECONDS):
            try:
                if self._on_disk_moved():
                    self._executor.submit(self._adopt)  # after the writes queued before it, never beside one
            except RuntimeError:  # the executor shut down: the server is closing
                return
            except Exception:  # noqa: BLE001 - a watcher that died would stop noticing; report and go on
                log.exception("could not check %s for a newer version", self.index_dir)

    def _on_disk_moved(self) -> bool:
        reader = self._readers.current
        if not reader.layout.exists():  # removed under the server: its searches say so, not the watcher
            return False
        return reader.layout.current() != (reader.snapshot.generation if reader.snapshot is not None else None)

    def _adopt(self) -> None:
        """Serve the version another process committed (checked again: a write may have served it already)."""
        with self._write_lock:
            try:
                if self._on_disk_moved():
                    if self._writer is not None:
                        self._writer.refresh()
                    self._publish()
            except Exception:  # noqa: BLE001 - nobody awaits this: report it; the served version stays as it was
                log.exception("could not serve the newer version of %s", self.index_dir)

    # lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Finish the queued writes, then release the index."""
        self._stop_watching.set()
        self._watcher.join(timeout=30)
        if self.batcher is not None:
            self.batcher.close()
        self._executor.shutdown(wait=True)
        self._drop_writer()
        self._readers.close()


def _changed(result: object) -> bool:
    if isinstance(result, IndexReport):
        return result.changed
    return bool(result)  # remove() returns how many documents it removed


def _warm(reader: Retriever) -> None:
    """Load what a reader loads lazily (the BM25 index) now, from the version it opened.

    Done before the reader is served, so that no search pays for it and no later commit can
    slip a newer version's files under it.
    """
    try:
        reader.search("index", k=1, mode="lexical")
    except RetrieverError as exc:  # an index without BM25: lexical and hybrid searches will say so
        log.warning("lexical search unavailable: %s", exc)
