"""Records with no text and no title are skipped with one counted warning, or refused when strict
(issue 9, item 4); so are unreadable files and duplicate ids, through the same IndexReport."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from retriever.cli import main
from retriever.errors import InputFormatError, RetrieverWarning
from retriever.eval.beir import load_beir
from retriever.retriever import Retriever
from retriever.training.data import load_training_data


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# As in Cranfield and other public BEIR corpora: a few records with neither text nor title.
CORPUS = [
    {"_id": "1", "title": "Cats", "text": "cats sleep in the sun"},
    {"_id": "2", "title": "", "text": ""},
    {"_id": "3", "title": "Dogs", "text": "dogs love the garden"},
    {"_id": "4", "text": "   "},
    {"_id": "5", "title": "Tea", "text": None},
]


def skip_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, RetrieverWarning)]


def test_empty_records_are_skipped_with_one_counted_warning(tmp_path: Path, tiny_model: str) -> None:
    corpus = write_jsonl(tmp_path / "corpus" / "corpus.jsonl", CORPUS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = Retriever.build(corpus.parent, index_dir=tmp_path / "i", model=tiny_model)
    assert sorted(d for d in ("1", "2", "3", "4", "5") if r.get(d)) == ["1", "3", "5"]
    messages = skip_warnings(caught)
    assert len(messages) == 1
    assert messages[0].startswith("skipped 2 records with no text and no title")
    assert f"{corpus.resolve()}:2" in messages[0] and f"{corpus.resolve()}:4" in messages[0]
    assert r.last_report.skipped_records[0][0] == f"{corpus.resolve()}:2"
    assert "2 records without text skipped" in r.last_report.summary()


def test_many_skipped_records_name_the_first_few_and_count_the_rest(tmp_path: Path, tiny_model: str) -> None:
    records = [{"_id": f"e{i}", "text": ""} for i in range(10)] + [{"_id": "ok", "text": "cats"}]
    with pytest.warns(RetrieverWarning) as caught:
        Retriever.build(records, index_dir=tmp_path / "i", model=tiny_model)
    (message,) = skip_warnings(caught.list)
    assert message.startswith("skipped 10 records") and "record 0, record 1, record 2 and 7 more" in message


def test_strict_refuses_and_writes_nothing(tmp_path: Path, tiny_model: str) -> None:
    corpus = write_jsonl(tmp_path / "corpus" / "corpus.jsonl", CORPUS)
    with pytest.raises(InputFormatError, match="strict: 2 records with no text and no title") as info:
        Retriever.build(corpus.parent, index_dir=tmp_path / "i", model=tiny_model, strict=True)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "i" / "CURRENT").exists()


def test_strict_covers_duplicates_and_unreadable_files_too(tmp_path: Path, tiny_model: str) -> None:
    folder = tmp_path / "corpus"
    write_jsonl(folder / "a.jsonl", [{"_id": "same", "text": "cats"}])
    write_jsonl(folder / "b.jsonl", [{"_id": "same", "text": "dogs"}])
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputFormatError) as info:
        Retriever.build(folder, index_dir=tmp_path / "i", model=tiny_model, strict=True)
    assert "1 unreadable file" in str(info.value) and "1 duplicate document id" in str(info.value)
    with pytest.warns(RetrieverWarning) as caught:
        r = Retriever.build(folder, index_dir=tmp_path / "i", model=tiny_model)
    assert len(r) == 1 and len(skip_warnings(caught.list)) == 2


def test_add_skips_empty_records_and_strict_add_refuses(tmp_path: Path, tiny_model: str) -> None:
    r = Retriever.build([{"_id": "a", "text": "cats"}], index_dir=tmp_path / "i", model=tiny_model)
    with pytest.warns(RetrieverWarning, match="skipped 1 record with no text and no title: record 1"):
        report = r.add([{"_id": "b", "text": "dogs"}, {"_id": "c", "title": " "}])
    assert report.added == 1 and r.get("c") is None
    with pytest.raises(InputFormatError, match="strict"):
        r.add([{"_id": "d", "text": "tea"}, {"_id": "e"}], strict=True)
    assert r.get("d") is None and len(r) == 2


def test_cli_warns_in_one_line_and_strict_fails_in_one_line(tmp_path: Path, tiny_model: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "corpus" / "corpus.jsonl", CORPUS)
    runner = CliRunner()
    strict = runner.invoke(main, ["index", "corpus", "--model", tiny_model, "-q", "--strict"])
    assert strict.exit_code == 1 and len(strict.stderr.strip().splitlines()) == 1
    assert strict.stderr.startswith("error: strict: 2 records") and not (tmp_path / "indexes" / "corpus").exists()
    result = runner.invoke(main, ["index", "corpus", "--model", tiny_model, "-q"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("warning: skipped 2 records with no text and no title")
    assert "3 documents" in result.stdout


def make_beir(root: Path) -> Path:
    write_jsonl(root / "corpus.jsonl", CORPUS)
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "cats"}, {"_id": "q2", "text": "dogs"},
                                         {"_id": "q3", "text": ""}])
    (root / "qrels").mkdir()
    rows = "q1\t1\t1\nq1\t2\t1\nq2\t3\t1\nq3\t5\t1\n"
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root


def test_beir_readers_skip_empty_records_the_same_way(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "beir")
    with pytest.warns(RetrieverWarning) as caught:
        dataset = load_beir(root, "test")
    assert sorted(dataset.corpus) == ["1", "3", "5"] and sorted(dataset.queries) == ["q1", "q2"]
    messages = skip_warnings(caught.list)
    assert any(m.startswith("skipped 2 corpus records with no text and no title") for m in messages)
    assert any(m.startswith("skipped 1 query with no text") for m in messages)


def test_training_data_drops_the_judgements_of_skipped_records(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "beir")
    with pytest.warns(RetrieverWarning):
        data = load_training_data(root, dev_fraction=0)
    assert data.train == {"q1": {"1": 1}, "q2": {"3": 1}}


def test_special_files_are_skipped_with_the_unreadable_files_warning(tmp_path: Path, tiny_model: str) -> None:
    """Issue 24, item 7: a FIFO hung the run and a symlink to /dev/zero ate memory; now one warning."""
    import os

    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "cats.txt").write_text("cats sleep in the sun")
    os.mkfifo(folder / "pipe.md")
    (folder / "zero.txt").symlink_to("/dev/zero")
    with pytest.warns(RetrieverWarning) as caught:
        r = Retriever.build(folder, index_dir=tmp_path / "i", model=tiny_model)
    assert len(r) == 1 and r.get("cats.txt") is not None
    (message,) = skip_warnings(caught.list)
    assert message.startswith("skipped 2 unreadable files") and "FIFO, not a regular file" in message
    assert "character device, not a regular file" in message
