"""Thread pools that searches share, made on first use and made anew in a forked child.

A ``ThreadPoolExecutor``'s threads do not survive ``fork()``, but the pool object does and still counts them,
so a child process (``multiprocessing``'s default start method on Linux) that submits to a pool its parent
had used waits forever. Every pool here is forgotten in the child right after a fork, and the first search
there makes its own.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_ALL: weakref.WeakSet[SharedPool] = weakref.WeakSet()


class SharedPool:
    """One process-wide pool of ``workers()`` threads (``workers`` is read when the pool is made)."""

    def __init__(self, name: str, workers: Callable[[], int]) -> None:
        self.name = name
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        _ALL.add(self)

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=max(1, self.workers()), thread_name_prefix=self.name)
            return self._pool

    def _forget(self) -> None:
        """In a forked child: the parent's threads are gone, so is its lock's owner; start from nothing."""
        self._lock = threading.Lock()
        self._pool = None


def _forget_all() -> None:
    for pool in list(_ALL):
        pool._forget()


os.register_at_fork(after_in_child=_forget_all)
