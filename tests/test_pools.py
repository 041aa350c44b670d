"""Shared search thread pools in a forked child: a pool the parent used must not leave the child waiting forever."""

from __future__ import annotations

import multiprocessing

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


def _rank_hybrid(snapshot, queries, vectors, expected) -> None:
    from retriever.search.ranking import SearchOptions, rank

    assert rank(queries, vectors, SearchOptions(k=5, mode="hybrid"), snapshot) == expected


def test_a_forked_child_runs_a_hybrid_search_after_its_parent(tmp_path) -> None:
    """Hybrid search runs its lexical side on a shared pool (retriever.search.ranking): a multiprocessing child
    forked after the parent searched gets its own pool and the same ranking, instead of waiting forever."""
    from retriever import Retriever
    from retriever.encoding.synthetic import SyntheticEncoder
    from retriever.search.ranking import SearchOptions, rank

    encoder = SyntheticEncoder(dimension=32, max_seq_length=64)
    texts = ["tea and coffee", "a cat sleeps", "train music", "garden tomato sun", "refund to my card"]
    r = Retriever.build([{"_id": str(i), "text": t} for i, t in enumerate(texts)], index_dir=tmp_path / "idx",
                        encoder=encoder)
    queries = ["cat sleeps", "coffee"]
    vectors = encoder.encode_queries(queries)
    expected = rank(queries, vectors, SearchOptions(k=5, mode="hybrid"), r.snapshot)  # the pool's threads exist
    assert _in_child(_rank_hybrid, r.snapshot, queries, vectors, expected) == 0
    r.close()
