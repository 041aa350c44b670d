"""Concurrent searches answered together: one ``search_many`` call encodes their queries as one batch.

Encoding the query is most of a search's time, and a transformer encodes eight short queries in
much less than eight times the time of one. Searches that arrive while a batch is being answered
wait in a queue; the next batch takes all of them (up to ``max_batch``), grouped by identical
options. Nothing waits on a timer, so a lone search is answered as soon as it arrives.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from retriever.errors import RetrieverError
from retriever.retriever import Retriever


@dataclass
class _Search:
    query: str
    options: dict[str, Any]
    key: str
    answer: Future = field(default_factory=Future)


class SearchBatcher:
    def __init__(self, reading: Callable[[], AbstractContextManager[Retriever]], max_batch: int = 32,
                 workers: int = 2) -> None:
        self._reading = reading
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Search | None] = queue.SimpleQueue()
        self._count_lock = threading.Lock()
        self.batches = 0
        self.searches = 0
        # two workers, so that two clients are answered side by side rather than one batch after the other
        self._threads = [threading.Thread(target=self._serve, name=f"retriever-search-{n}", daemon=True)
                         for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, query: str, options: dict[str, Any]) -> Future:
        """A future of the hits of ``Retriever.search(query, **options)``."""
        search = _Search(query, options, repr(sorted(options.items())))
        self._queue.put(search)
        return search.answer

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # for this worker's next turn: stop after this batch
                    break
                batch.append(more)
            groups: dict[str, list[_Search]] = {}
            for search in batch:
                groups.setdefault(search.key, []).append(search)
            for group in groups.values():
                self._answer(group)

    def _answer(self, group: list[_Search]) -> None:
        try:
            with self._reading() as reader:
                results = reader.search_many([s.query for s in group], **group[0].options)
        except RetrieverError as exc:
            if len(group) == 1:
                group[0].answer.set_exception(exc)
            else:  # one bad query must not fail the others: answer each on its own
                for search in group:
                    self._answer([search])
            return
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests, whose handler reports it
            for search in group:
                search.answer.set_exception(exc)
            return
        with self._count_lock:
            self.batches += 1
            self.searches += len(group)
        for search, hits in zip(group, results):
            search.answer.set_result(hits)
