"""Hybrid search: fusion on hand-made lists, BM25 kept in step with the dense index, filters."""

from __future__ import annotations

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
