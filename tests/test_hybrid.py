"""Hybrid search: fusion on hand-made lists, BM25 kept in step with the dense index, filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from retriever.cli import main
from retriever.errors import RetrieverError
from retriever.retriever import Retriever
from retriever.search.fusion import convex_combination, min_max, reciprocal_rank_fusion


def test_reciprocal_rank_fusion_by_hand() -> None:
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("c", 12.0), ("a", 3.0)]
    fused = dict(reciprocal_rank_fusion([dense, lexical], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert [item for item, _ in reciprocal_rank_fusion([dense, lexical])] == ["a", "c", "b"]


def test_convex_combination_of_min_max_normalised_scores_by_hand() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    lexical = [("c", 10.0), ("d", 4.0), ("a", 2.0)]
    assert min_max(lexical) == {"c": 1.0, "d": 0.25, "a": 0.0}
    fused = dict(convex_combination(dense, lexical, alpha=0.6))
    assert fused["a"] == pytest.approx(0.6 * 1.0 + 0.4 * 0.0)
    assert fused["b"] == pytest.approx(0.6 * 0.5)
    assert fused["c"] == pytest.approx(0.6 * 0.0 + 0.4 * 1.0)
    assert fused["d"] == pytest.approx(0.4 * 0.25)  # found by one side only: 0 from the other
    assert convex_combination(dense, lexical, alpha=1.0)[0][0] == "a"
    assert convex_combination(dense, lexical, alpha=0.0)[0][0] == "c"


RECORDS = [
    {"_id": "zebra", "title": "Zebra", "text": "the zebra xylophone quartz", "year": 2018},
    {"_id": "cats", "title": "Cats", "text": "cats sleep in the sun", "year": 2021},
    {"_id": "dogs", "title": "Dogs", "text": "dogs love a walk in the garden", "year": 2022},
]


def test_lexical_mode_finds_the_rare_word(tmp_path: Path, tiny_model: str) -> None:
    r = Retriever.build(RECORDS, index_dir=tmp_path / "i", model=tiny_model)
    assert r.search("quartz", k=1, mode="lexical")[0].doc_id == "zebra"
    assert r.search("quartz", k=1, mode="hybrid", fusion="rrf")[0].doc_id == "zebra"


def test_bm25_is_kept_in_step_with_add_change_and_delete(tmp_path: Path, tiny_model: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the zebra eats quartz")
    (corpus / "b.txt").write_text("cats sleep in the sun")
    index = tmp_path / "index"
    Retriever.build(corpus, index_dir=index, model=tiny_model)
    (corpus / "c.txt").write_text("a xylophone concert tonight")
    (corpus / "a.txt").write_text("the zebra eats grass")
    (corpus / "b.txt").unlink()
    r = Retriever.build(corpus, index_dir=index, model=tiny_model)
    assert [h.doc_id for h in r.search("xylophone", mode="lexical")] == ["c.txt"]
    assert r.search("quartz", mode="lexical") == []
    assert r.search("cats sleep", mode="lexical") == []
    assert [h.doc_id for h in r.search("grass", mode="lexical")] == ["a.txt"]
    r.add([{"_id": "rec", "text": "quartz returns"}])
    assert [h.doc_id for h in Retriever.load(index).search("quartz", mode="lexical")] == ["rec"]
    r.remove(["rec"])
    assert Retriever.load(index).search("quartz", mode="lexical") == []


def test_a_selective_filter_still_returns_k_results(tmp_path: Path, tiny_model: str) -> None:
    records = [{"_id": f"d{i}", "text": f"cats and dogs number {i}", "year": 2000 + i} for i in range(60)]
    r = Retriever.build(records, index_dir=tmp_path / "i", model=tiny_model)
    for mode in ("dense", "lexical", "hybrid"):
        hits = r.search("cats and dogs", k=5, mode=mode, where="year>=2055")
        assert sorted(h.doc_id for h in hits) == [f"d{i}" for i in range(55, 60)], mode
    both = r.search("cats", k=10, mode="dense", where=["year>=2010", "year<2013"])
    assert sorted(h.doc_id for h in both) == ["d10", "d11", "d12"]
    assert r.search("cats", k=3, mode="dense", where="doc_id=d7")[0].doc_id == "d7"


def test_filter_on_source_glob(tmp_path: Path, tiny_model: str, corpus: Path) -> None:
    r = Retriever.build(corpus, index_dir=tmp_path / "i", model=tiny_model)
    hits = r.search("trains and coffee", k=10, where="source~sub/*")
    assert sorted(h.doc_id for h in hits) == ["sub/coffee.html", "sub/trains.rst"]


def test_bad_filter_and_bad_mode_are_clear_errors(tmp_path: Path, tiny_model: str) -> None:
    r = Retriever.build(RECORDS, index_dir=tmp_path / "i", model=tiny_model)
    with pytest.raises(RetrieverError, match="bad filter"):
        r.search("cats", where="year>>2000")
    with pytest.raises(RetrieverError, match="unknown mode"):
        r.search("cats", mode="sparse")
    runner = CliRunner()
    result = runner.invoke(main, ["search", "cats", "--index", str(tmp_path / "i"), "--where", "year"])
    assert result.exit_code == 1 and result.output.startswith("error: bad filter")
    result = runner.invoke(main, ["search", "cats", "--index", str(tmp_path / "i"), "--rerank", "5"])
    assert result.exit_code == 1 and "no learned metric head" in result.output


# explanations (issue 20) -------------------------------------------------------------------------------------------
EXPLAINED = RECORDS + [
    {"_id": "sun", "title": "Sun", "text": "the sun warms cats and zebras alike", "year": 2019},
    {"_id": "garden", "title": "Garden", "text": "a quiet garden where the zebra sleeps", "year": 2020},
    {"_id": "rock", "title": "Rock", "text": "quartz crystals in granite rock", "year": 2017},
]
QUERY = "zebra sleeps in the sun"


@pytest.fixture(scope="module")
def explained_index(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    folder = tmp_path_factory.mktemp("explain") / "i"
    Retriever.build(EXPLAINED, index_dir=folder, model=tiny_model).close()
    return folder


def _side(r: Retriever, mode: str) -> dict[str, tuple[int, float]]:
    """Each document's (1-based rank, score) on one side alone."""
    return {h.doc_id: (rank, h.score) for rank, h in enumerate(r.search(QUERY, k=10, mode=mode), start=1)}


def test_explanation_of_convex_fusion_is_what_the_ranking_computed(explained_index: Path) -> None:
    r = Retriever.load(explained_index)
    hits = r.search(QUERY, k=6, mode="hybrid", fusion="convex", alpha=0.3, explain=True)
    dense, lexical = _side(r, "dense"), _side(r, "lexical")
    assert len(hits) == 6 and {h.doc_id for h in hits} == set(dense)
    for hit in hits:
        e = hit.explanation
        assert (e.mode, e.fusion, e.alpha, e.reranked) == ("hybrid", "convex", 0.3, None)
        assert e.fused == hit.score
        assert (e.dense_rank, e.dense_score) == pytest.approx(dense[hit.doc_id])
        if hit.doc_id in lexical:
            assert (e.lexical_rank, e.lexical_score) == pytest.approx(lexical[hit.doc_id])
        else:  # BM25 did not find it: no rank, and it contributed nothing
            assert (e.lexical_rank, e.lexical_score, e.lexical_normalized) == (None, None, None)
        assert hit.score == pytest.approx(0.3 * e.dense_normalized + 0.7 * (e.lexical_normalized or 0.0), abs=1e-12)
    assert {h.explanation.dense_normalized for h in hits if h.explanation.dense_rank == 1} == {1.0}
    assert {h.explanation.dense_normalized for h in hits if h.explanation.dense_rank == len(dense)} == {0.0}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_explanation_of_rrf_and_of_one_side(explained_index: Path) -> None:
    r = Retriever.load(explained_index)
    for hit in r.search(QUERY, k=6, mode="hybrid", fusion="rrf", explain=True):
        e = hit.explanation
        assert e.fusion == "rrf" and e.alpha is None
        ranks = [rank for rank in (e.dense_rank, e.lexical_rank) if rank is not None]
        assert hit.score == e.fused == pytest.approx(sum(1 / (60 + rank) for rank in ranks), abs=1e-12)
        assert e.dense_normalized == pytest.approx(1 / (60 + e.dense_rank))
    for mode in ("dense", "lexical"):
        hits = r.search(QUERY, k=3, mode=mode, explain=True)
        for rank, hit in enumerate(hits, start=1):
            e = hit.explanation
            own = (e.dense_rank, e.dense_score) if mode == "dense" else (e.lexical_rank, e.lexical_score)
            other = e.lexical_rank if mode == "dense" else e.dense_rank
            assert (e.mode, e.fusion, other, e.fused) == (mode, None, None, hit.score)
            assert own == (rank, hit.score)
    assert all(hit.explanation is None for hit in r.search(QUERY, k=3))  # not asked: not computed


def test_explain_in_the_cli(explained_index: Path) -> None:
    runner = CliRunner()
    args = ["search", QUERY, "--index", str(explained_index), "-k", "2", "--explain"]
    lines = runner.invoke(main, args).output.splitlines()
    why = [line for line in lines if line.startswith("    why: ")]
    assert len(why) == 2 and all(line.startswith("    why: hybrid convex alpha=0.50: dense ") for line in why)
    rows = [json.loads(line) for line in runner.invoke(main, [*args, "--json"]).output.splitlines()]
    assert [row["explanation"]["fused"] for row in rows] == [row["score"] for row in rows]
    assert "why:" not in runner.invoke(main, args[:-1]).output


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_documents_whose_passages_crowd_the_top_still_give_k_documents(mode: str, tmp_path: Path,
                                                                        tiny_model: str) -> None:
    """A first search fetches about the index's mean passages per document (``first_probe``); when one long
    document's passages fill it, the search goes deeper, and the k documents are each one's best passage, in order."""
    from retriever.search import ranking

    long_text = " ".join(f"cats sleep in the sun on day {i} and the cats sleep again at night." for i in range(60))
    records = [{"_id": "long", "text": long_text}] + [
        {"_id": f"short{i}", "text": f"{word} and cats in the garden"}
        for i, word in enumerate("tea coffee train music water sleep memory order parcel garden".split())]
    r = Retriever.build(records, index_dir=tmp_path / "i", model=tiny_model, chunk_tokens=16, overlap=2)
    assert r.manifest.counts["passages"] > 3 * len(records)  # one document holds most passages
    probe = ranking.first_probe(r.snapshot, 5, False)
    assert probe < r.manifest.counts["passages"] - 10  # the long document's passages alone exceed it
    found = r.search("cats sleep in the sun", k=5, mode=mode)
    passages = r.search("cats sleep in the sun", k=10_000, mode=mode, passages=True) if mode != "hybrid" else None
    assert len({h.doc_id for h in found}) == 5
    if passages is not None:  # each document's best passage, best first
        best: dict[str, float] = {}
        for hit in passages:
            best.setdefault(hit.doc_id, hit.score)
        assert [h.doc_id for h in found] == list(best)[:5]
        assert [h.score for h in found] == pytest.approx(list(best.values())[:5], abs=1e-6)
