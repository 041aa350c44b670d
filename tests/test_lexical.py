"""BM25 over immutable segments: scores equal a fresh bm25s build over the live texts, whatever the history."""

from __future__ import annotations

import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from retriever.errors import CorruptIndexError
from retriever.index.lexical import K1, B, LexicalIndex, LexicalSearcher, LexicalSegment

WORDS = """cat cats dog dogs running runs runner the a of and is are bone bones density vitamin protein
cell cells cellular gene genes expression mouse mice human study studies Risk risky trial""".split()
QUERIES = ["cat dog", "vitamin D bone density", "cells cells gene", "running runner studies",
           "the of and", "zebra unicorn", "", "Human mice TRIAL risk, expression!"]


def random_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) + rng.choice(["", ".", "!", " 42"])


class ToyIndex:
    """What the index writer does to the lexical side: a list of segments plus live masks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.segments: list[tuple[LexicalSegment, np.ndarray, list[str]]] = []

    def add(self, texts: list[str]) -> None:
        folder = self.root / f"seg{len(self.segments)}-{random.random()}"
        LexicalSegment.write(folder, texts)
        self.segments.append((LexicalSegment.open(folder), np.ones(len(texts), bool), list(texts)))

    def delete(self, rng: random.Random, n: int) -> None:
        live = [(s, r) for s, (_, mask, _) in enumerate(self.segments) for r in np.flatnonzero(mask)]
        for s, r in rng.sample(live, min(n, len(live))):
            self.segments[s][1][r] = False

    def merge(self, first: int, last: int) -> None:
        parts = self.segments[first:last]
        folder = self.root / f"merged{first}-{random.random()}"
        LexicalSegment.merge(folder, [(segment, live) for segment, live, _ in parts])
        texts = [t for _, live, ts in parts for t, alive in zip(ts, live) if alive]
        merged = (LexicalSegment.open(folder), np.ones(len(texts), bool), texts)
        self.segments[first:last] = [merged]

    def searcher(self) -> LexicalSearcher:
        return LexicalSearcher([(segment, live) for segment, live, _ in self.segments])

    def live_texts(self) -> tuple[list[str], list[tuple[int, int]]]:
        texts, where = [], []
        for s, (_, live, ts) in enumerate(self.segments):
            for r in np.flatnonzero(live):
                texts.append(ts[r])
                where.append((s, int(r)))
        return texts, where


def fresh_scores(texts: list[str], query: str) -> np.ndarray:
    """Every text's score from a fresh bm25s index, as the single-index LexicalIndex computes them."""
    index = LexicalIndex().index(list(range(len(texts))), texts)
    scores = np.zeros(len(texts))
    for i, score in index.retrieve([query], k=len(texts), keep_zero=True)[0]:
        scores[i] = score
    return scores


def assert_equals_fresh_build(index: ToyIndex) -> None:
    texts, where = index.live_texts()
    searcher = index.searcher()
    assert len(searcher) == len(texts)
    for query, hits in zip(QUERIES, searcher.search(QUERIES, k=len(texts) + 5)):
        expected = fresh_scores(texts, query)
        got = np.zeros(len(texts))
        position = {w: i for i, w in enumerate(where)}
        for segment, row, score in hits:
            got[position[(segment, row)]] = score  # a deleted row would raise KeyError here
        assert np.allclose(got, expected, atol=1e-5), query
        assert len(hits) == np.count_nonzero(expected)  # every matching row, nothing else
        assert [h[2] for h in hits] == sorted((h[2] for h in hits), reverse=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_equal_a_fresh_bm25s_build_after_adds_changes_deletes_and_merges(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    index = ToyIndex(tmp_path)
    for step in range(12):
        index.add([random_text(rng) for _ in range(rng.randint(1, 15))])
        if step % 3 == 1:
            index.delete(rng, rng.randint(1, 6))
        if step % 4 == 2:  # a change: the old row is deleted, the new text lands in a new segment
            index.delete(rng, 2)
            index.add([random_text(rng) for _ in range(2)])
        if step == 7:
            index.merge(1, 4)
        assert_equals_fresh_build(index)


def test_a_segment_with_every_row_deleted_counts_for_nothing(tmp_path: Path) -> None:
    index = ToyIndex(tmp_path)
    index.add(["cat cat cat dog", "cat bone"])
    index.add(["dog bone density", "vitamin cat", "gene"])
    index.segments[0][1][:] = False
    assert_equals_fresh_build(index)
    assert all(segment == 1 for hits in index.searcher().search(["cat dog"], k=10) for segment, _, _ in hits)


def test_defaults_are_bm25s_defaults() -> None:
    model = bm25s.BM25()
    assert (model.k1, model.b, model.method, model.idf_method or model.method) == (K1, B, "lucene", "lucene")


def test_allowed_masks_restrict_the_search_itself(tmp_path: Path) -> None:
    texts = [f"cat {'dog ' * i}" for i in range(30)]  # every text matches "cat"; more dogs, lower cat score
    LexicalSegment.write(tmp_path / "a", texts[:20])
    LexicalSegment.write(tmp_path / "b", texts[20:])
    a, b = LexicalSegment.open(tmp_path / "a"), LexicalSegment.open(tmp_path / "b")
    live_b = np.ones(10, bool)
    live_b[[7, 8]] = False
    searcher = LexicalSearcher([(a, None), (b, live_b)])
    allowed_a = np.zeros(20, bool)
    allowed_a[[3, 15]] = True
    allowed_b = np.ones(10, bool)
    hits = searcher.search(["cat"], k=5, allowed=[allowed_a, allowed_b])[0]
    assert [(s, r) for s, r, _ in hits] == [(0, 3), (0, 15), (1, 0), (1, 1), (1, 2)]
    # the worst-scoring rows are still found when they are the only ones allowed, and deleted rows never are
    only_last = [np.zeros(20, bool), np.arange(10) >= 7]
    assert [(s, r) for s, r, _ in searcher.search(["cat"], k=5, allowed=only_last)[0]] == [(1, 9)]
    # the mask restricts results, not statistics: scores equal the unrestricted ones
    everything = dict(((s, r), v) for s, r, v in searcher.search(["cat"], k=30)[0])
    assert all(everything[(s, r)] == pytest.approx(v) for s, r, v in hits)
    assert searcher.search(["cat"], k=5, allowed=[np.zeros(20, bool), np.zeros(10, bool)]) == [[]]


def test_results_are_best_first_limited_to_k_and_ties_in_row_order(tmp_path: Path) -> None:
    LexicalSegment.write(tmp_path / "a", ["gene cell", "gene", "gene", "protein", "gene gene gene"])
    LexicalSegment.write(tmp_path / "b", ["gene", "cell cell"])
    searcher = LexicalSearcher([(LexicalSegment.open(tmp_path / name), None) for name in ("a", "b")])
    hits = searcher.search(["gene"], k=3)[0]
    assert [(s, r) for s, r, _ in hits] == [(0, 4), (0, 1), (0, 2)]
    assert [len(h) for h in searcher.search(["gene", "cell", "protein", "absent"], k=10)] == [5, 2, 1, 0]
    assert searcher.search(["gene"], k=0) == [[]]


def test_a_term_in_every_row_keeps_ties_in_row_order(tmp_path: Path) -> None:
    """A query whose postings outnumber the rows picks its best k among the rows: rows tied at the k-th place
    come back lowest first, as when it picks among the postings, with deleted rows left out."""
    LexicalSegment.write(tmp_path / "a", ["gene cell"] * 3 + ["gene"] * 5)
    segment = LexicalSegment.open(tmp_path / "a")
    hits = LexicalSearcher([(segment, None)]).search(["gene"], k=2)[0]
    assert [r for _, r, _ in hits] == [3, 4]  # the five shorter rows tie at the top
    live = np.ones(8, dtype=bool)
    live[3] = False
    hits = LexicalSearcher([(segment, live)]).search(["gene cell"], k=4)[0]
    assert [r for _, r, _ in hits] == [0, 1, 2, 4]


def test_merge_writes_the_same_segment_as_writing_the_live_texts(tmp_path: Path) -> None:
    rng = random.Random(5)
    first, second = [random_text(rng) for _ in range(40)], [random_text(rng) for _ in range(25)]
    first[3] = "unicorn only here"  # its only row is deleted: the term must leave the vocabulary
    LexicalSegment.write(tmp_path / "a", first)
    LexicalSegment.write(tmp_path / "b", second)
    live_a = np.array([rng.random() > 0.3 for _ in first])
    live_a[3] = False
    merged = LexicalSegment.merge(tmp_path / "m", [(LexicalSegment.open(tmp_path / "a"), live_a),
                                                   (LexicalSegment.open(tmp_path / "b"), None)])
    written = LexicalSegment.write(tmp_path / "w", [t for t, alive in zip(first, live_a) if alive] + second)
    assert merged == written
    m, w = LexicalSegment.open(tmp_path / "m"), LexicalSegment.open(tmp_path / "w")
    assert m.vocabulary == w.vocabulary and "unicorn" not in m.vocabulary
    for name in ("indptr", "rows", "tf", "lengths"):
        assert np.array_equal(getattr(m, name), getattr(w, name)), name


def test_open_memory_maps_the_postings(tmp_path: Path) -> None:
    meta = LexicalSegment.write(tmp_path / "s", ["vitamin d and bone density", "bone cells", ""])
    assert meta["rows"] == 3 and meta["total_length"] == 5 and meta["terms"] == 4
    segment = LexicalSegment.open(tmp_path / "s")
    assert len(segment) == 3
    assert all(isinstance(a.base, np.memmap) for a in (segment.indptr, segment.rows, segment.tf, segment.lengths))
    rows, tf = segment.postings("bone")
    assert rows.tolist() == [0, 1] and tf.tolist() == [1, 1]


def test_empty_segments_and_indexes(tmp_path: Path) -> None:
    LexicalSegment.write(tmp_path / "empty", [])
    LexicalSegment.write(tmp_path / "blank", ["", "the of", "!"])
    empty, blank = LexicalSegment.open(tmp_path / "empty"), LexicalSegment.open(tmp_path / "blank")
    assert len(empty) == 0 and len(blank) == 3
    assert LexicalSearcher([]).search(["cat"], k=3) == [[]]
    assert LexicalSearcher([(empty, None), (blank, None)]).search(["cat", ""], k=3) == [[], []]


def test_damaged_segments_and_wrong_masks_are_clear_errors(tmp_path: Path) -> None:
    LexicalSegment.write(tmp_path / "s", ["cat dog", "bone"])
    segment = LexicalSegment.open(tmp_path / "s")
    with pytest.raises(ValueError, match="live mask"):
        LexicalSearcher([(segment, np.ones(3, bool))])
    with pytest.raises(ValueError, match="allowed"):
        LexicalSearcher([(segment, None)]).search(["cat"], k=1, allowed=[np.ones(5, bool)])
    (tmp_path / "s" / "rows.npy").write_bytes(b"not numpy")
    with pytest.raises(CorruptIndexError, match="rebuild"):
        LexicalSegment.open(tmp_path / "s")
    with pytest.raises(CorruptIndexError, match="rebuild"):
        LexicalSegment.open(tmp_path / "missing")
