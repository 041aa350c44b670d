"""The ``retriever`` command: index, search and info, and one-line errors for every bad input."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from retriever.cli import main
from retriever.ingest.chunking import encoding_text

CATS_QUERY = encoding_text("cats", "Cats sleep most of the day and hunt at night.")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def assert_error(result: Result, *fragments: str) -> str:
    """Exit status 1, one line on stderr starting with 'error:' that contains ``fragments``."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error: "), message
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def indexed(corpus: Path, workdir: Path, tiny_model: str) -> Path:
    """The corpus indexed with the CLI into the default place, indexes/corpus."""
    assert_ok(run("index", "corpus", "--model", tiny_model, "-q"))
    return workdir / "indexes" / "corpus"


# index, search, info ----------------------------------------------------------------------------
def test_index_prints_counts_and_creates_the_default_index(corpus: Path, workdir: Path, tiny_model: str) -> None:
    result = run("index", "corpus", "--model", tiny_model, "-q")
    assert_ok(result)
    assert "added 6, updated 0, removed 0, unchanged 0" in result.stdout
    assert "6 documents, 6 passages" in result.stdout
    assert (workdir / "indexes" / "corpus" / "CURRENT").is_file()

    again = run("index", "corpus", "-q")
    assert_ok(again)
    assert "added 0, updated 0, removed 0, unchanged 6" in again.stdout
    assert "0 passages encoded" in again.stdout


def test_index_reports_updates_and_removals(indexed: Path, corpus: Path) -> None:
    (corpus / "cats.txt").write_text("Cats drink water.")
    (corpus / "dogs.md").unlink()
    (corpus / "tea.txt").write_text("Tea is made with hot water.")
    result = run("index", "corpus", "-q")
    assert_ok(result)
    assert "added 1, updated 1, removed 1, unchanged 4" in result.stdout
    assert "2 passages encoded" in result.stdout


def test_index_with_explicit_index_dir_and_ann(corpus: Path, workdir: Path, tiny_model: str) -> None:
    assert_ok(run("index", str(corpus), "--index", "elsewhere", "--ann", "hnsw", "--model", tiny_model, "-q"))
    info = json.loads(run("info", "--index", "elsewhere", "--json").stdout)
    assert info["ann"]["requested"] == "hnsw"  # segments this small are searched exactly whatever is asked
    assert not (workdir / "indexes").exists()


def test_search_prints_ranked_results(indexed: Path) -> None:
    result = run("search", CATS_QUERY, "-k", "3")
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert len(lines) == 6  # a header line and a snippet line per result
    assert lines[0].split() == ["1.", "1.000", "cats.txt", "cats"]
    assert lines[1].strip() == "Cats sleep most of the day and hunt at night."
    assert lines[2].lstrip().startswith("2.") and lines[4].lstrip().startswith("3.")


def test_search_json_lines(indexed: Path) -> None:
    result = run("search", CATS_QUERY, "--json", "-k", "10")
    assert_ok(result)
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(hits) == 6
    assert {h["doc_id"] for h in hits} == {"cats.txt", "dogs.md", "sub/trains.rst", "sub/coffee.html", "q1", "q2"}
    top = hits[0]
    assert top["doc_id"] == "cats.txt" and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert top["text"] == "Cats sleep most of the day and hunt at night."
    assert {"title", "source", "start", "end", "passage_id", "metadata"} <= set(top)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    q1 = next(h for h in hits if h["doc_id"] == "q1")
    assert q1["metadata"] == {"year": 2021} and q1["title"] == "Refunds"



def test_ui_refuses_a_busy_port_in_one_line_before_loading_anything(indexed: Path) -> None:
    with socket.socket() as busy:  # issue 20: 'retriever ui' serves the search page on 127.0.0.1
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_error(run("ui", "--port", str(port), "--no-browser"), f"cannot listen on 127.0.0.1:{port}")
    assert_error(run("ui", "--index", "no-such-index", "--no-browser"), "no-such-index")


def test_search_passages_mode(indexed: Path) -> None:
    result = run("search", "cats", "--passages", "--json", "-k", "2")
    assert_ok(result)
    assert len(result.stdout.splitlines()) == 2


def test_search_with_the_right_model_is_allowed(indexed: Path, tiny_model: str) -> None:
    assert_ok(run("search", "cats", "--model", tiny_model))


def test_info_text_and_json(indexed: Path, tiny_model: str) -> None:
    text = run("info")
    assert_ok(text)
    for fragment in ("indexes/corpus", tiny_model, "dimensions: 32", "cosine", "flat", "documents: 6", "passages: 6",
                     "flat scan: fp32 (float32 copy): 1 segment"):  # 6 rows: under SQ8_MIN_ROWS
        assert fragment in text.stdout
    info = json.loads(run("info", "--index", str(indexed), "--json").stdout)
    assert info["counts"] == {"documents": 6, "passages": 6, "files": 5}
    assert info["ann"]["flat_scans"] == {"fp32 (float32 copy)": 1}
    assert info["model"]["name"] == tiny_model
    assert info["size_bytes"] > 0


def test_an_unknown_flat_scan_setting_is_named_and_the_index_is_not_called_corrupt(
        indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIEVER_FLAT_SCAN", "int4")
    message = assert_error(run("search", "cats", "--index", str(indexed)), "RETRIEVER_FLAT_SCAN='int4'", "fp32, sq8")
    assert "corrupt" not in message


def test_index_dot_from_inside_the_corpus(corpus: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(corpus)
    assert_ok(run("index", ".", "--model", tiny_model, "-q"))
    assert (corpus / "indexes" / "corpus" / "CURRENT").is_file()
    again = run("index", ".", "-q")
    assert_ok(again)
    assert "unchanged 6" in again.stdout
    assert_ok(run("search", "cats"))


def test_help_and_version_run_as_a_real_command() -> None:
    command = Path(sys.executable).parent / "retriever"
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("index", "search", "info"):
        assert name in result.stdout
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=300)
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_ctrl_c_exits_130_without_traceback(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.retriever import Retriever

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Retriever, "search", interrupted)
    result = run("search", "cats")
    assert result.exit_code == 130
    assert "Traceback" not in result.output and "interrupted" in result.stderr


# one index or several ----------------------------------------------------------------------------
def test_index_may_be_omitted_only_when_there_is_one(indexed: Path, corpus: Path, tiny_model: str) -> None:
    assert_ok(run("search", "cats"))
    assert_ok(run("index", str(corpus / "faq.jsonl"), "--index", "indexes/faq", "--model", tiny_model, "-q"))
    message = assert_error(run("search", "cats"), "indexes/corpus", "indexes/faq", "--index")
    assert "several" in message
    assert_error(run("info"), "--index")
    assert_ok(run("search", "cats", "--index", "indexes/faq"))


def test_no_index_at_all(workdir: Path) -> None:
    assert_error(run("search", "cats"), "no index", "retriever index")
    assert_error(run("info"), "no index")


# bad input ---------------------------------------------------------------------------------------
def test_missing_path(workdir: Path, tiny_model: str) -> None:
    assert_error(run("index", "nowhere", "--model", tiny_model), "path not found", "nowhere")
    assert not (workdir / "indexes").exists()


def test_empty_folder(workdir: Path, tiny_model: str) -> None:
    (workdir / "empty").mkdir()
    assert_error(run("index", "empty", "--model", tiny_model), "nothing to index", "empty")


def test_folder_with_only_a_binary_file(workdir: Path, tiny_model: str) -> None:
    (workdir / "bin").mkdir()
    (workdir / "bin" / "data.txt").write_bytes(b"\x00\x01\x02\x03 binary")
    assert_error(run("index", "bin", "--model", tiny_model), "nothing to index")
    assert not (workdir / "indexes" / "bin" / "CURRENT").exists()


def test_malformed_jsonl_names_file_and_line(corpus: Path, workdir: Path, tiny_model: str) -> None:
    (corpus / "bad.jsonl").write_text('{"_id": "a", "text": "fine"}\n\n{"_id": "b", "text": "unterminated}\n')
    message = assert_error(run("index", "corpus", "--model", tiny_model, "-q"), "bad.jsonl:3")
    assert "malformed JSON" in message


def test_missing_index(workdir: Path) -> None:
    assert_error(run("search", "cats", "--index", "nowhere"), "nowhere")
    assert_error(run("info", "--index", "nowhere"), "nowhere")


def live_manifest(indexed: Path) -> Path:
    return indexed / "generations" / f"{(indexed / 'CURRENT').read_text().strip()}.json"


def test_corrupt_index(indexed: Path) -> None:
    segment = json.loads(live_manifest(indexed).read_text())["segments"][0]["name"]
    vectors = next((indexed / "segments" / segment / "vectors").glob("*.npy"))
    vectors.write_bytes(vectors.read_bytes()[:64])
    assert_error(run("search", "cats"), "indexes/corpus", "corrupt")
    assert_error(run("info"), "indexes/corpus", "corrupt")
    assert_error(run("index", "corpus", "-q"), "indexes/corpus", "corrupt")


def test_corrupt_manifest(indexed: Path) -> None:
    manifest = live_manifest(indexed)
    manifest.write_text("garbage")
    assert_error(run("search", "cats"), "indexes/corpus", manifest.name)


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query(indexed: Path, query: str) -> None:
    assert_error(run("search", query), "empty query")


def test_unloadable_model(corpus: Path, workdir: Path) -> None:
    message = assert_error(run("index", "corpus", "--model", "no-such-model-xyz", "-q"), "no-such-model-xyz")
    assert "--model /path" in message
    assert not (workdir / "indexes" / "corpus" / "CURRENT").exists()


def test_search_with_another_model_is_refused(indexed: Path, tiny_model: str, other_tiny_model: str) -> None:
    assert_error(run("search", "cats", "--model", other_tiny_model), tiny_model, other_tiny_model)


def test_overlap_too_large_for_the_passages(corpus: Path, workdir: Path, tiny_model: str) -> None:
    assert_error(run("index", "corpus", "--model", tiny_model, "--chunk-tokens", "16", "--overlap", "8", "-q"),
                 "overlap")


def test_unreadable_file_is_skipped_with_a_warning_naming_it(corpus: Path, workdir: Path, tiny_model: str) -> None:
    (corpus / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))
    result = run("index", "corpus", "--model", tiny_model, "-q")
    assert_ok(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "latin1.txt" in warnings[0] and "UTF-8" in warnings[0]
    assert "1 unreadable files skipped" in result.stdout
    assert "6 documents" in result.stdout


# the last resort: anything unexpected is one line, --debug shows the traceback (issue 9) ------------------
def test_an_unexpected_exception_is_one_line_naming_its_type(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.retriever import Retriever

    def broken(self, *args, **kwargs):
        raise ValueError("something inside broke\nacross two lines")

    monkeypatch.setattr(Retriever, "search_many", broken)
    message = assert_error(run("search", "cats"), "something inside broke", "(ValueError)", "--debug")
    assert message.endswith("run with --debug for the traceback")
    for args, env in ((["--debug", "search", "cats"], {}), (["search", "cats", "--debug"], {}),
                      (["search", "cats"], {"RETRIEVER_DEBUG": "1"})):
        result = CliRunner().invoke(main, args, env=env)
        assert isinstance(result.exception, ValueError), (args, env, result.output)


def test_debug_shows_the_traceback_of_an_input_error_too(workdir: Path) -> None:
    from retriever.errors import IndexNotFoundError

    result = CliRunner().invoke(main, ["--debug", "search", "cats", "--index", "nowhere"])
    assert isinstance(result.exception, IndexNotFoundError)


def test_an_os_error_names_the_file(corpus: Path, workdir: Path, tiny_model: str) -> None:
    (workdir / "plain-file").write_text("not a folder")
    assert_error(run("index", "corpus", "--model", tiny_model, "-q", "--index", "plain-file/sub"),
                 "plain-file", "(NotADirectoryError)")


def test_index_pointing_at_a_regular_file(indexed: Path, corpus: Path, workdir: Path, tiny_model: str) -> None:
    (workdir / "notes.txt").write_text("hello")
    assert_error(run("search", "cats", "--index", "notes.txt"), "notes.txt", "is a file")
    assert_error(run("info", "--index", "notes.txt"), "notes.txt", "is a file")
    assert_error(run("index", "corpus", "--model", tiny_model, "-q", "--index", "notes.txt"), "is a file")
    assert (workdir / "notes.txt").read_text() == "hello"


def test_jsonl_nested_100000_deep_is_one_line(corpus: Path, workdir: Path, tiny_model: str) -> None:
    (corpus / "deep.jsonl").write_text('{"_id": "a", "text": "x"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_error(run("index", "corpus", "--model", tiny_model, "-q"), "deep.jsonl:2", "nested too deeply")


@pytest.mark.parametrize("record", ['{"_id": "\\ud800", "text": "x"}', '{"_id": "a", "text": "bad \\udc80"}',
                                    '{"_id": "a", "text": "x", "note": "\\ud83d"}'])
def test_lone_surrogates_in_records_are_one_line(corpus: Path, workdir: Path, tiny_model: str, record: str) -> None:
    (corpus / "bad.jsonl").write_text(record + "\n")
    assert_error(run("index", "corpus", "--model", tiny_model, "-q"), "bad.jsonl:1", "surrogate")


def test_a_lone_surrogate_in_a_query_or_filter_is_one_line(indexed: Path) -> None:
    assert_error(run("search", "cats \udcff"), "surrogate")
    assert_error(run("search", "cats", "--where", "title=\udcff"), "surrogate")


def test_a_file_name_that_is_not_utf8_is_skipped(corpus: Path, workdir: Path, tiny_model: str) -> None:
    import os

    path = os.fsencode(corpus) + b"/caf\xe9.txt"
    with open(path, "wb") as handle:
        handle.write(b"coffee and tea")
    result = run("index", "corpus", "--model", tiny_model, "-q")
    assert_ok(result)
    assert "6 documents" in result.stdout and "not valid UTF-8" in result.stderr


def test_bench_without_the_bench_extra_says_which_extra(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # as if not installed
    assert_error(run("bench", str(workdir)), "psutil", "pip install 'retriever[bench]'")


def test_every_runtime_import_is_declared() -> None:
    from importlib.metadata import requires

    declared = {re.split(r"[<>=!\[ ;]", r)[0].lower() for r in requires("retriever") if "extra ==" not in r}
    assert "scikit-learn" in declared  # verification's threshold search
