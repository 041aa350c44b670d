"""One served version of the index at a time, swapped under running searches.

A search takes the current reader for its whole duration; a commit swaps in the reader of the
new version for the requests that start afterwards. The old reader is closed by whichever
request lets go of it last, never under a search that still uses it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from retriever.retriever import Retriever


class _Version:
    def __init__(self, reader: Retriever) -> None:
        self.reader = reader
        self.users = 0
        self.retired = False


class ReaderSlot:
    """The reader of the last committed version, with a count of the requests using each reader."""

    def __init__(self, reader: Retriever) -> None:
        self._lock = threading.Lock()
        self._current = _Version(reader)

    @property
    def current(self) -> Retriever:
        return self._current.reader

    @contextmanager
    def use(self) -> Iterator[Retriever]:
        """The current reader, kept open until the block ends even if a newer version is swapped in."""
        with self._lock:
            version = self._current
            version.users += 1
        try:
            yield version.reader
        finally:
            with self._lock:
                version.users -= 1
                last = version.retired and version.users == 0
            if last:
                version.reader.close()

    def swap(self, reader: Retriever) -> None:
        """Serve ``reader`` to new requests; close the previous one once no request uses it."""
        with self._lock:
            old, self._current = self._current, _Version(reader)
            old.retired = True
            idle = old.users == 0
        if idle:
            old.reader.close()

    def close(self) -> None:
        with self._lock:
            version = self._current
            version.retired = True
            idle = version.users == 0
        if idle:
            version.reader.close()
