"""Validation at the boundary (issue 9, items 3 and 7): ids, documents, metadata, queries and options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from retriever.errors import InputFormatError, RetrieverError
from retriever.ingest.documents import Document, document_from_record
from retriever.retriever import Retriever

RECORDS = [{"_id": str(i), "title": f"Doc {i}", "text": f"cats and dogs number {i}", "n": i} for i in (1, 2, 12)]


@pytest.fixture
def r(tmp_path: Path, tiny_model: str) -> Retriever:
    return Retriever.build(RECORDS, index_dir=tmp_path / "i", model=tiny_model)


def test_remove_takes_a_single_string_as_one_id(r: Retriever) -> None:
    assert r.remove("12") == 1
    assert sorted(d for d in ("1", "2", "12") if r.get(d) is not None) == ["1", "2"]
    assert r.remove(["1", "1"]) == 1
    assert r.remove(2) == 1  # an integer id is its string
    assert len(r) == 0


@pytest.mark.parametrize("bad", [False, None, ["1"], math.nan, 1.0, "", "   ", b"1", "\ud800"])
def test_remove_refuses_ids_that_are_not_strings_or_ints(r: Retriever, bad: object) -> None:
    with pytest.raises(RetrieverError):
        r.remove([bad])
    assert len(r) == 3


@pytest.mark.parametrize("bad_id", [False, True, ["a"], math.nan, 1.5, "", " \t", {"a": 1}])
def test_a_record_with_a_bad_id_is_refused_naming_it(r: Retriever, bad_id: object) -> None:
    with pytest.raises(InputFormatError) as info:
        r.add([{"_id": "fine", "text": "fine"}, {"_id": bad_id, "text": "text"}])
    message = str(info.value)
    assert "record 1" in message and "\n" not in message
    assert len(r) == 3 and r.get("fine") is None, "nothing is written"


def test_an_integer_id_becomes_its_string() -> None:
    assert document_from_record({"_id": 7, "text": "seven"}, "x").doc_id == "7"
    assert Document(8, "eight").doc_id == "8"


def test_document_validates_itself() -> None:
    for kwargs in ({"doc_id": False, "text": "t"}, {"doc_id": "a", "text": None}, {"doc_id": "a", "text": "\udc80"},
                   {"doc_id": "a", "text": "t", "title": 3}, {"doc_id": "a", "text": "t", "metadata": {"x": math.nan}},
                   {"doc_id": "a", "text": "t", "metadata": {"x": [1, {"y": math.inf}]}},
                   {"doc_id": "a", "text": "t", "metadata": {"x": object()}},
                   {"doc_id": "a", "text": "t", "source": 5}):
        with pytest.raises(InputFormatError):
            Document(**kwargs)


def test_nan_metadata_is_refused_so_later_filters_keep_working(r: Retriever) -> None:
    with pytest.raises(InputFormatError, match="finite"):
        r.add([{"_id": "nan", "text": "cats", "score": math.nan}])
    assert [h.doc_id for h in r.search("cats", k=5, mode="dense", where="n>=2")] != []


def test_deeply_nested_metadata_is_refused_in_one_line(r: Retriever) -> None:
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InputFormatError, match="nested"):
        r.add([{"_id": "deep", "text": "cats", "meta": deep}])


@pytest.mark.parametrize("option", [{"mode": ""}, {"fusion": ""}, {"k": True}, {"k": 2.5}, {"alpha": "0.5"}])
def test_empty_or_mistyped_options_are_errors_not_defaults(r: Retriever, option: dict) -> None:
    with pytest.raises(RetrieverError):
        r.search("cats", **option)


@pytest.mark.parametrize("query", ["", "  ", "\ud83d cats", 5, None])
def test_bad_queries_are_one_line_errors(r: Retriever, query: object) -> None:
    with pytest.raises(RetrieverError) as info:
        r.search_many([query])
    assert "\n" not in str(info.value)


def test_verify_and_get_validate_the_id(r: Retriever) -> None:
    with pytest.raises(RetrieverError):
        r.get(False)
    with pytest.raises(RetrieverError):
        r.verify("cats", ["1"])
    assert r.get(12).doc_id == "12"
    with pytest.raises(RetrieverError, match="same length"):
        r.similarities(["cats", "dogs"], ["1"])
