"""An index as immutable segments: writes cost the change, merges change no result, builds stream and resume.

Searches over many segments must equal a fresh single-segment build of the same live passages (dense scores,
BM25 scores with global statistics, hybrid rankings), through any sequence of adds, updates and deletes.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from retriever import Retriever
from retriever.encoding.synthetic import SyntheticEncoder
from retriever.index import merge

WORDS = ("cat dog fish bird car train music song coffee tea water sleep memory brain password login email "
         "invoice payment card refund backup restore garden tomato sun plant delivery parcel order").split()
QUERIES = ["cat and dog", "coffee tea water", "password login email", "garden tomato sun", "refund card payment",
           "train music"]


def records(n: int, seed: int, prefix: str = "d") -> list[dict]:
    rng = random.Random(seed)
    return [{"_id": f"{prefix}{i}", "title": rng.choice(WORDS),
             "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))), "n": i} for i in range(n)]


@pytest.fixture
def encoder() -> SyntheticEncoder:
    return SyntheticEncoder(dimension=32, max_seq_length=64)


def results(r: Retriever, mode: str, passages: bool = False) -> list[list[tuple[str, float]]]:
    return [[(h.doc_id if not passages else f"{h.doc_id}#{h.start}", round(h.score, 5))
             for h in r.search(q, k=8, mode=mode, passages=passages)] for q in QUERIES]


def assert_same_results(a: Retriever, b: Retriever) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        for passages in (False, True):
            got, want = results(a, mode, passages), results(b, mode, passages)
            for g, w in zip(got, want):
                assert [s for _, s in g] == pytest.approx([s for _, s in w], abs=1e-5), (mode, passages)
                assert {d for d, s in g if s > min(x for _, x in w) + 1e-5} <= {d for d, _ in w}, (mode, passages)


def test_many_small_writes_search_exactly_like_one_fresh_build(tmp_path: Path, encoder: SyntheticEncoder,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge, "MERGE_FACTOR", 3)
    live: dict[str, dict] = {}
    r = None
    rng = random.Random(1)
    for step in range(9):
        batch = records(15, seed=step, prefix=f"s{step}-")
        if r is None:
            r = Retriever.build(batch, index_dir=tmp_path / "segmented", encoder=encoder)
        else:
            r.add(batch)
        live.update({b["_id"]: b for b in batch})
        doomed = rng.sample(sorted(live), 4)
        assert r.remove(doomed) == 4
        for doc_id in doomed:
            del live[doc_id]
        changed = dict(live[rng.choice(sorted(live))], text="coffee tea water garden")
        r.add([changed])
        live[changed["_id"]] = changed
    assert len(r.manifest.segments) > 1, "the writes left several segments"
    assert len(r) == len(live)
    fresh = Retriever.build(list(live.values()), index_dir=tmp_path / "fresh", encoder=encoder)
    assert_same_results(r, fresh)
    before = results(r, "hybrid")
    r.optimize()
    assert len(r.manifest.segments) == 1 and r.manifest.segments[0].deleted_rows == 0
    assert results(r, "hybrid") == before, "a merge changes no result"
    assert_same_results(Retriever.load(tmp_path / "segmented", encoder=encoder), fresh)


def test_the_tiered_policy_bounds_the_number_of_segments(tmp_path: Path, encoder: SyntheticEncoder,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge, "MERGE_FACTOR", 4)
    r = Retriever.build(records(3, seed=0), index_dir=tmp_path / "index", encoder=encoder)
    counts = []
    for i in range(30):
        r.add([{"_id": f"x{i}", "text": f"tea number {i}"}])
        counts.append(len(r.manifest.segments))
    assert max(counts) < 2 * 4, counts
    assert len(r) == 33


def test_a_write_adds_one_segment_and_copies_nothing(tmp_path: Path, encoder: SyntheticEncoder) -> None:
    r = Retriever.build(records(40, seed=0), index_dir=tmp_path / "index", encoder=encoder)
    first = r.manifest.segments[0]
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "index" / "segments" / first.name).rglob("*")}
    r.add([{"_id": "new", "text": "tea"}])
    r.remove(["d3"])
    assert [s.name for s in r.manifest.segments][0] == first.name
    assert {p: p.stat().st_mtime_ns for p in files} == files, "the first segment is never rewritten"
    assert r.manifest.segments[0].deleted_rows == 1


def test_a_build_streams_in_segments_and_resumes_after_a_crash(tmp_path: Path, encoder: SyntheticEncoder,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.index import writer as writer_module

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    data = records(60, seed=3)
    (corpus / "a.jsonl").write_text("\n".join(__import__("json").dumps(d) for d in data) + "\n")
    monkeypatch.setattr(writer_module, "SEGMENT_ROWS", 10)
    commits = {"n": 0}
    original = writer_module.IndexWriter.commit

    def crash_after_three(self, *args, **kwargs):  # noqa: ANN001, ANN202
        if commits["n"] == 3:
            raise KeyboardInterrupt
        commits["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(writer_module.IndexWriter, "commit", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        Retriever.build(corpus, index_dir=tmp_path / "index", encoder=encoder)
    monkeypatch.setattr(writer_module.IndexWriter, "commit", original)
    partial = Retriever.load(tmp_path / "index", encoder=encoder)
    assert 20 <= len(partial) < 60, "three batches were committed and are searchable"
    done = len(partial)
    resumed = Retriever.build(corpus, index_dir=tmp_path / "index", encoder=encoder)
    report = resumed.last_report
    assert len(resumed) == 60
    assert report.unchanged == done and report.added == 60 - done, "nothing committed is encoded again"
    again = Retriever.build(corpus, index_dir=tmp_path / "index", encoder=encoder)
    assert again.last_report.passages_encoded == 0 and again.last_report.unchanged == 60


def test_lexical_scores_equal_a_fresh_bm25s_build_after_updates(tmp_path: Path, encoder: SyntheticEncoder) -> None:
    import bm25s

    from retriever.index.lexical import tokenize
    from retriever.ingest.chunking import encoding_text

    r = Retriever.build(records(30, seed=5), index_dir=tmp_path / "index", encoder=encoder)
    r.add(records(20, seed=6, prefix="e"))
    r.remove(["d1", "d2", "e4"])
    r.add([{"_id": "d7", "title": "tea", "text": "coffee coffee coffee"}])
    live = {d["_id"]: d for d in records(30, seed=5) + records(20, seed=6, prefix="e")}
    for gone in ("d1", "d2", "e4"):
        del live[gone]
    live["d7"] = {"_id": "d7", "title": "tea", "text": "coffee coffee coffee"}
    ids = list(live)
    fresh = bm25s.BM25()
    fresh.index(tokenize([encoding_text(d["title"], d["text"]) for d in live.values()]), show_progress=False)
    for query in QUERIES:
        got = {h.doc_id: h.score for h in r.search(query, k=len(ids), mode="lexical")}
        rows, scores = fresh.retrieve(tokenize([query]), k=len(ids), show_progress=False)
        want = {ids[i]: float(s) for i, s in zip(rows[0], scores[0]) if s > 0}
        assert got.keys() == want.keys()
        assert np.allclose([got[d] for d in want], list(want.values()), atol=1e-5)


def test_segments_scanned_in_8_bits_pool_their_candidates_and_still_find_the_exact_top_k(
        tmp_path: Path, encoder: SyntheticEncoder) -> None:
    """Three segments of 1,200 passages (each scanned in 8 bits) propose candidates, the best of all of them are
    rescored together: the top k equals exact search's, with deletes and a filter mask too, and passages of
    equal score (copies in a small float32 segment) rank in segment order as in exact search."""
    rng = random.Random(5)

    def batch(prefix: str) -> list[dict]:
        return [{"_id": f"{prefix}{i}", "text": " ".join(f"w{rng.randint(0, 4000)}" for _ in range(rng.randint(5, 12)))}
                for i in range(1_200)]

    r = Retriever.build(batch("a"), index_dir=tmp_path / "idx", encoder=encoder)
    r.add(batch("b"))
    r.add(batch("c"))
    r.remove([f"b{i}" for i in range(0, 1_200, 3)])
    r.add([{"_id": f"copy{i}", "text": r.snapshot.hydrate({(0, i)})[(0, i)].text} for i in range(20)])
    snapshot = r.snapshot
    assert [s.vectors.scan for s in snapshot.segments] == ["sq8"] * 3 + ["fp32"]  # 20 rows: the float32 copy
    copied = [snapshot.hydrate({(0, i)})[(0, i)].text for i in range(6)]  # equal scores in segments 0 and 3
    queries = encoder.encode_queries([" ".join(f"w{rng.randint(0, 4000)}" for _ in range(4)) for _ in range(6)]
                                     + copied)
    live = snapshot.allowed([])
    filtered = [np.random.default_rng(i).random(s.rows) < 0.3 for i, s in enumerate(snapshot.segments)]
    filtered = [f if m is None else f & m for f, m in zip(filtered, live)]
    for allowed in (None, live, filtered):
        for k in (10, 125):
            pooled = snapshot.dense(queries, k, allowed)
            exact = snapshot.dense(queries, k, allowed, exact=True)
            assert pooled == exact
            single = [snapshot.dense(queries[q : q + 1], k, allowed)[0] for q in range(3)]
            assert single == exact[:3]
    r.close()
