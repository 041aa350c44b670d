"""Filters compare as the stored type, and a filter that cannot match says why (issue 9, items 5 and 6)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from retriever.cli import main
from retriever.errors import CorruptIndexError, RetrieverError, RetrieverWarning
from retriever.retriever import Retriever
from retriever.search.filters import (
    MAX_CONDITION_CHARS,
    MAX_CONDITIONS,
    filter_warnings,
    parse_condition,
    parse_filters,
)

# SciFact's ids are all numeric strings; "year" is a number in some records and a string in others.
RECORDS = [
    {"_id": "56486733", "title": "Vitamin D", "text": "vitamin d and bone density", "year": 2021, "score": 0.5},
    {"_id": "4983", "title": "Sleep", "text": "sleep and memory in the brain", "year": 1990, "score": 2},
    {"_id": "12", "title": "Old", "text": "an old survey of cats", "year": "1990", "venue": "Nature"},
    {"_id": "2", "title": "Two", "text": "a note about dogs", "year": "990", "flag": True},
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Retriever:
    return Retriever.build(RECORDS, index_dir=tmp_path_factory.mktemp("filters") / "i", model=tiny_model)


def found(r: Retriever, *where: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RetrieverWarning)  # a filter that matches must not warn
        return sorted(h.doc_id for h in r.search("cats", k=10, mode="dense", where=list(where)))


def test_a_numeric_string_id_is_found_by_its_digits(index: Retriever) -> None:
    assert found(index, "doc_id=56486733") == ["56486733"]
    assert found(index, "doc_id=12") == ["12"]
    assert found(index, "doc_id!=12") == ["2", "4983", "56486733"]
    assert found(index, "doc_id~49*") == ["4983"]


def test_a_string_field_compares_as_text_and_a_number_numerically(index: Retriever) -> None:
    assert found(index, "year=1990") == ["12", "4983"]  # the string "1990" and the number 1990
    assert found(index, "year>=2000") == ["2", "56486733"]  # 2021, and "990" > "2000" as text
    assert found(index, "year<2000") == ["12", "4983"]  # 1990, and "1990" < "2000" as text
    assert found(index, "score>1") == ["4983"]
    assert found(index, "score=0.5") == ["56486733"]
    assert found(index, "score<=5e-1") == ["56486733"]
    assert found(index, "venue=Nature") == ["12"]
    assert found(index, "flag=true") == ["2"]


def test_sql_keeps_one_where_clause_over_documents_d() -> None:
    clause, params = parse_condition("year>=2020").sql()
    assert "d.metadata" in clause and clause.count("?") == len(params)
    assert parse_condition("doc_id=56486733").sql() == ("d.doc_id = ?", ["56486733"])
    assert parse_condition("été=1").field == "été"  # a record field may be named in any alphabet


def test_a_missing_field_warns_instead_of_returning_nothing_silently(index: Retriever) -> None:
    with pytest.warns(RetrieverWarning, match="no document has a field 'yaer'"):
        assert index.search("cats", k=5, where="yaer>=2000") == []


def test_a_word_against_a_numeric_field_warns(index: Retriever) -> None:
    with pytest.warns(RetrieverWarning, match="'score' holds numbers and 'abc' is not a number"):
        assert index.search("cats", k=5, where="score>=abc") == []


def test_filter_warnings_take_any_source_of_field_types() -> None:
    """The check the segment stores call: conditions and a callable giving each field's stored types."""
    types = {"year": {"integer"}, "venue": {"text"}, "mixed": {"integer", "text"}}
    check = lambda *texts: filter_warnings(parse_filters(list(texts)), lambda f: types.get(f, set()))  # noqa: E731
    assert check("year>=2020", "venue=Nature", "mixed<abc", "doc_id=1") == []
    assert len(check("nope=1")) == 1 and "nope" in check("nope=1")[0]
    assert "not a number" in check("year>=abc")[0]
    assert "alphabetically" in check("venue>5")[0]
    assert check("year~19*") == []
    types["tags"] = {"array"}
    assert "lists or objects" in check("tags=pets")[0]


def test_the_cli_prints_a_filter_warning_in_one_line(index: Retriever) -> None:
    result = CliRunner().invoke(main, ["search", "cats", "--index", str(index.layout.root), "--where", "yaer>1"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "'yaer'" in lines[0]
    assert "no results" in result.stdout


def test_cli_where_finds_a_numeric_string_id(index: Retriever, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["search", "vitamin", "--index", str(index.layout.root), "--json",
                                       "--where", "doc_id=56486733"])
    assert result.exit_code == 0, result.output
    assert '"doc_id": "56486733"' in result.stdout


BIG = 100000000000000000000  # 1e20 exactly; SQLite binds integers only up to 2**63 - 1 (issue 24, item 3)


def test_integers_beyond_64_bits_compare_exactly(index: Retriever) -> None:
    assert found(index, f"year<{BIG}") == ["4983", "56486733"]
    assert found(index, f"score<={2**63}", f"score>-{2**63 + 1}") == ["4983", "56486733"]
    assert found(index, f"score!={2**64 + 1}", f"score>-{10**400}") == ["4983", "56486733"]
    assert found(index, f"doc_id!={BIG}") == ["12", "2", "4983", "56486733"]  # text compares as text
    for where in (f"score>={BIG}", f"score={2**63}", f"score>{10**400}", f"year=-{BIG}"):
        assert found(index, where) == []


def test_a_number_just_past_a_double_is_not_rounded_to_it(tmp_path: Path, tiny_model: str) -> None:
    records = [{"_id": "a", "text": "cats", "n": 2.0**64}, {"_id": "b", "text": "cats", "n": 2.0**64 * (1 + 2**-52)}]
    r = Retriever.build(records, index_dir=tmp_path / "i", model=tiny_model)
    assert found(r, f"n>{2**64}") == ["b"]
    assert found(r, f"n>{2**64 + 1}") == ["b"]  # 2**64 + 1 rounds down to 2**64 as a double
    assert found(r, f"n<{2**64 + 1}") == ["a"]
    assert found(r, f"n>={2**64 + 1}", f"n<={2**64 + 2**12 - 1}") == []


def test_too_many_or_too_long_filters_are_one_line_errors(index: Retriever) -> None:
    with pytest.raises(RetrieverError, match=f"where: 999 filters; at most {MAX_CONDITIONS}"):
        index.search("cats", k=5, where=["year>1"] * 999)
    with pytest.raises(RetrieverError, match=f"at most {MAX_CONDITION_CHARS}"):
        index.search("cats", k=5, where="title=" + "x" * MAX_CONDITION_CHARS)
    assert found(index, *["score>0"] * MAX_CONDITIONS) == ["4983", "56486733"]


def test_an_sqlite_expression_error_does_not_blame_the_index(index: Retriever) -> None:
    conditions = [parse_condition("year>1")] * 1200  # past SQLite's expression depth; the parser refuses this many
    store = index._snapshot().segments[0].store
    with pytest.raises(RetrieverError, match="cannot evaluate these filters") as caught:
        store.rows_where(conditions, 10)
    assert not isinstance(caught.value, CorruptIndexError) and "rebuild" not in str(caught.value)


def test_the_cli_reports_a_big_integer_and_too_many_filters_in_one_line(index: Retriever) -> None:
    root = str(index.layout.root)
    result = CliRunner().invoke(main, ["search", "cats", "--index", root, "--where", f"year<{BIG}"])
    assert result.exit_code == 0 and "OverflowError" not in result.output, result.output
    result = CliRunner().invoke(main, ["search", "cats", "--index", root, *["--where", "year>1"] * 65])
    assert result.exit_code != 0
    assert result.stderr.strip() == f"error: where: 65 filters; at most {MAX_CONDITIONS}"
