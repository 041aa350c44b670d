"""Shared search thread pools in a forked child: a pool the parent used must not leave the child waiting forever."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from retriever.pools import SharedPool

CHILD_SECONDS = 120  # a bound on a hang, not a timing: the child normally finishes in well under a second


def _in_child(target, *args) -> int:
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    process.join(CHILD_SECONDS)
    if process.is_alive():
        process.kill()
        pytest.fail("the forked child hung on a pool its parent had used")
    return process.exitcode


def _submit_twice(pool: SharedPool) -> None:
    assert pool.get().submit(lambda: 2).result() == 2


def test_a_forked_child_gets_its_own_pool() -> None:
    pool = SharedPool("test-pool", lambda: 2)
    assert pool.get().submit(lambda: 1).result() == 1  # the parent's threads exist now
    assert _in_child(_submit_twice, pool) == 0
    assert pool.get().submit(lambda: 3).result() == 3  # the parent's pool is untouched


def _search_one(segment, queries, expected) -> None:
    _, rows = segment.search(queries[:1], 10)
    np.testing.assert_array_equal(rows, expected)


def sharded_segment(folder, monkeypatch, shards: int):
    """A flat segment of 3,000 random unit vectors whose 8-bit scan is forced into ``shards`` shards."""
    from retriever.index import scan
    from retriever.index.vectors import SegmentVectors

    vectors = np.random.default_rng(0).standard_normal((3_000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    monkeypatch.setenv(scan.SCAN_ENV, "sq8")
    monkeypatch.setattr(scan, "shards_for", lambda rows: shards)
    segment = SegmentVectors.open(folder, SegmentVectors.write(folder, vectors, "flat"))
    assert segment.scan_shards == shards
    return segment, vectors


def test_a_forked_child_scans_a_sharded_segment(tmp_path, monkeypatch) -> None:
    """The 8-bit scan's shard threads (retriever.index.scan) after fork: the child's search completes, same rows."""
    segment, vectors = sharded_segment(tmp_path, monkeypatch, 2)
    _, expected = segment.search(vectors[:1], 10)  # the parent's shard threads exist now
    assert _in_child(_search_one, segment, vectors, expected) == 0


def test_one_caller_at_a_time_gets_the_pool_the_others_work_inline() -> None:
    pool = SharedPool("test-claim", lambda: 2)
    with pool.unless_busy() as first:
        assert first is pool.get()
        with pool.unless_busy() as second:
            assert second is None
    with pool.unless_busy() as again:
        assert again is pool.get()


def test_concurrent_searches_of_a_sharded_segment_all_get_the_exact_rows(tmp_path, monkeypatch) -> None:
    """Searches side by side (a server's workers): one fans out over the shard threads, the rest scan inline."""
    from concurrent.futures import ThreadPoolExecutor

    segment, vectors = sharded_segment(tmp_path, monkeypatch, 3)
    expected = segment.search(vectors[:40], 10, exact=True)[1]
    with ThreadPoolExecutor(8) as clients:
        found = list(clients.map(lambda q: segment.search(vectors[q : q + 1], 10)[1][0], range(40)))
    np.testing.assert_array_equal(np.stack(found), expected)
