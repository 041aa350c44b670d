"""Relevance judgments (issue 20): kept durably next to the index, through re-indexing, crashes and several
writers; graded from the API, the server and the CLI; exported to and imported from a BEIR folder."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import SMALL_RECORDS

from retriever import Retriever
from retriever.cli import main
from retriever.client import Client
from retriever.errors import RemoteError, RetrieverError, RetrieverWarning
from retriever.judgments import Judgment, JudgmentStore

ROOT = Path(__file__).resolve().parent.parent


# the store ---------------------------------------------------------------------------------------------
def test_the_latest_grade_of_a_pair_wins_and_queries_are_stripped(tmp_path: Path) -> None:
    store = JudgmentStore(tmp_path)
    assert store.all() == [] and store.qrels() == {} and not (tmp_path / "judgments.sqlite").exists()
    first = store.judge("  cats  ", "cats", 2)
    assert first.query == "cats" and first.grade == 2
    later = store.judge("cats", "cats", 0)
    store.judge("Cats", 7, 1)  # case is kept: another query; an integer id is its string
    assert later.judged_at >= first.judged_at
    assert store.all("cats ") == [later]
    assert store.qrels() == {"cats": {"cats": 0}, "Cats": {"7": 1}}
    assert store.forget(" cats", "cats") is True and store.forget("cats", "cats") is False
    assert [j.to_dict() for j in store.all()] == [{"query": "Cats", "doc_id": "7", "grade": 1,
                                                   "judged_at": store.all()[0].judged_at}]


@pytest.mark.parametrize(("query", "doc_id", "grade", "says"), [
    ("  ", "a", 1, "query is empty"), (None, "a", 1, "must be a string"), ("q", " ", 1, "empty or only whitespace"),
    ("q", "a", 3, "a grade is 0"), ("q", "a", True, "a grade is 0"), ("q", "a", "1", "a grade is 0"),
    ("q", "a", 1.0, "a grade is 0"), ("q\ud800", "a", 1, "lone surrogate"),
])
def test_bad_judgments_are_refused_with_one_line(tmp_path: Path, query: object, doc_id: object, grade: object,
                                                 says: str) -> None:
    with pytest.raises(RetrieverError, match=says) as caught:
        JudgmentStore(tmp_path).judge(query, doc_id, grade)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    assert JudgmentStore(tmp_path).all() == []


@contextmanager
def read_only_view(folder: Path) -> Iterator[Path]:
    """``folder`` as a read-only index: ``chmod a-w``, or, as root (whom chmod does not stop), a read-only bind
    mount of it."""
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        for path in paths:
            path.chmod(path.stat().st_mode & ~0o222)
        try:
            yield folder
        finally:
            for path in paths:
                path.chmod(path.stat().st_mode | 0o200)
        return
    view = folder.parent / f"{folder.name}-read-only"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True).returncode == 0
    try:
        if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", str(view)],
                                         capture_output=True).returncode != 0:
            pytest.skip("root ignores chmod, and this machine cannot make a read-only mount")
        yield view
    finally:
        if mounted:
            subprocess.run(["umount", str(view)], check=True)


def test_a_read_only_index_folder_is_read_and_judging_there_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    JudgmentStore(folder).judge("cats", "cats", 1)
    with read_only_view(folder) as view:
        store = JudgmentStore(view)
        assert store.qrels() == {"cats": {"cats": 1}} and store.revision() == 1
        with pytest.raises(RetrieverError, match="is read-only") as caught:
            store.judge("cats", "dogs", 0)
        assert "\n" not in str(caught.value)
        assert store.qrels() == {"cats": {"cats": 1}}


@pytest.fixture
def index(tmp_path: Path, tiny_encoder: object) -> Retriever:
    retriever = Retriever.build(SMALL_RECORDS, index_dir=tmp_path / "idx", encoder=tiny_encoder)
    yield retriever
    retriever.close()


def test_judgments_survive_reindexing_optimize_removal_and_reopening(index: Retriever, tiny_encoder: object) -> None:
    index.judge("cats in the sun", "cats", 2)
    index.judge("cats in the sun", "never-indexed", 0)  # accepted: the id may be indexed (or imported) later
    index.add([{"_id": "extra", "text": "a fish in the water"}])
    index.remove("cats")
    index.add([{"_id": f"more-{i}", "text": f"the bird and the song {i}"} for i in range(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RetrieverWarning)  # not warned about as a file retriever did not write
        index.optimize()
    index.close()
    again = Retriever.build(SMALL_RECORDS, index_dir=index.layout.root, encoder=tiny_encoder)
    assert {(j.doc_id, j.grade) for j in again.judgments("cats in the sun")} == {("cats", 2), ("never-indexed", 0)}
    assert again.get("cats") is not None
    again.close()
    assert sorted(p.name for p in index.layout.root.iterdir() if p.name.startswith("judgments"))[0] == \
        "judgments.sqlite"


def test_an_acknowledged_judgment_survives_a_kill(tmp_path: Path) -> None:
    """A process judges, prints its acknowledgement, and is SIGKILLed at once: the judgment is on disk."""
    script = textwrap.dedent(f"""
        import sys, time
        from retriever.judgments import JudgmentStore
        store = JudgmentStore({str(tmp_path)!r})
        for i in range(1000):
            store.judge("query", f"doc-{{i}}", i % 3)
            print(i, flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    acknowledged = -1
    for line in process.stdout:  # type: ignore[union-attr]
        acknowledged = int(line)
        if acknowledged == 20:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()  # type: ignore[union-attr]
    judged = JudgmentStore(tmp_path).qrels()["query"]
    assert all(judged[f"doc-{i}"] == i % 3 for i in range(acknowledged + 1))


def test_two_processes_judging_at_once_lose_nothing(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from retriever.judgments import JudgmentStore
        store = JudgmentStore({str(tmp_path)!r})
        for i in range(40):
            store.judge(f"query {{i % 4}}", f"{{sys.argv[1]}}-{{i}}", 1)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", script, name], env=env) for name in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert len(JudgmentStore(tmp_path).all()) == 80


# the server and the client ------------------------------------------------------------------------------
KEY = "judge-key"


@pytest.fixture
def served(index: Retriever, start_server: Callable) -> Callable[..., Client]:
    """A client of a server over ``index`` (started with the given options), with the key."""
    from retriever.serve.app import create_app

    def start(**options: object) -> Client:
        index.refresh()
        return Client(start_server(create_app(index.layout.root, api_key=KEY, **options)), api_key=KEY)

    return start


def test_grades_from_the_server_are_the_index_judgments_and_the_summary_scores_them(
        served: Callable[..., Client], index: Retriever) -> None:
    client = served()
    top = index.search("cats in the sun", k=10)  # what a plain search serves: the engine's defaults
    assert client.judgment_summary() == {"queries": 0, "judgments": 0, "ndcg_at_10": None, "query": None}
    judged = client.judge("  cats in the sun ", top[0].doc_id, 2)
    assert isinstance(judged, Judgment) and judged.query == "cats in the sun"
    assert index.judgments() == [judged] == client.judgments("cats in the sun")
    client.judge("cats in the sun", top[1].doc_id, 0)
    client.judge("a removed document", "gone", 1)  # relevant, but not in the index: found by no search
    summary = client.judgment_summary("cats in the sun")
    assert summary == {"queries": 2, "judgments": 3, "ndcg_at_10": pytest.approx(0.5),
                       "query": {"judged": 2, "ndcg_at_10": pytest.approx(1.0)}}
    client.judge("cats in the sun", top[0].doc_id, 0)  # a new grade, the same count: scored again
    assert client.judgment_summary("cats in the sun") == {
        "queries": 2, "judgments": 3, "ndcg_at_10": 0.0, "query": {"judged": 2, "ndcg_at_10": None}}
    assert client.judgment_summary("never judged")["query"] == {"judged": 0, "ndcg_at_10": None}
    assert [j.doc_id for j in client.judgments()][-1] == top[0].doc_id  # the latest grade is the newest
    with pytest.raises(RemoteError, match="422") as caught:
        client.judge("cats", "cats", 3)
    assert "grade" in str(caught.value)
    with pytest.raises(RemoteError, match="422"):
        client.judge("x" * 2001, "cats", 1)  # the server's query limit
    client.close()
    again = served()  # a restarted server finds them
    assert len(again.judgments()) == 3
    with Client(again.url) as keyless, pytest.raises(RemoteError, match="401"):
        keyless.judgments()
    again.close()


def test_a_read_only_server_lists_judgments_and_refuses_new_ones(served: Callable[..., Client],
                                                                 index: Retriever) -> None:
    index.judge("dogs", "dogs", 1)
    ranked = [hit.doc_id for hit in index.search("dogs", k=10)]
    expected = 1 / math.log2(ranked.index("dogs") + 2)  # one relevant document: nDCG@10 = 1 / log2(rank + 1)
    client = served(read_only=True)
    with pytest.raises(RemoteError, match="403"):
        client.judge("dogs", "cats", 0)
    assert [(j.query, j.doc_id, j.grade) for j in client.judgments()] == [("dogs", "dogs", 1)]
    assert client.judgment_summary(" dogs") == {"queries": 1, "judgments": 1, "ndcg_at_10": pytest.approx(expected),
                                                "query": {"judged": 1, "ndcg_at_10": pytest.approx(expected)}}
    client.close()


# the command line and BEIR folders --------------------------------------------------------------------------
def cli(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_cli_judges_lists_and_refuses_bad_grades(index: Retriever) -> None:
    folder = index.layout.root
    assert cli("judge", " cats in the sun", "cats", "2", "--index", folder).exit_code == 0
    result = cli("judge", "cats in the sun", "no-such-doc", "0", "--index", folder)
    assert result.exit_code == 0 and "warning: document 'no-such-doc' is not in index" in result.output
    assert cli("judge", "cats", "cats", "3", "--index", folder).exit_code == 2  # click's usage error
    blank = cli("judge", "  ", "cats", "1", "--index", folder)
    assert blank.exit_code == 1 and blank.output.strip() == "error: a judged query is empty or only whitespace"
    listed = cli("judgments", "list", "--index", folder, "--query", "cats in the sun", "--json")
    assert [json.loads(line)["doc_id"] for line in listed.output.splitlines()] == ["cats", "no-such-doc"]
    assert cli("judgments", "list", "--index", folder).output.splitlines()[0] == "2  cats  cats in the sun"
    nowhere = cli("judgments", "list", "--index", folder.parent / "nothing")
    assert nowhere.exit_code == 1 and "no index at" in nowhere.output


def test_export_writes_a_beir_folder_that_bench_and_train_read_and_import_reads_back(
        index: Retriever, tmp_path: Path, tiny_model: str, tiny_encoder: object) -> None:
    from retriever.eval.beir import load_beir
    from retriever.training.data import load_training_data

    index.judge("cats in the sun", "cats", 2)
    index.judge("cats in the sun", "dogs", 0)
    index.judge("a walk in the garden", "dogs", 1)
    index.judge("a walk in the garden", "gone", 1)
    index.remove("gone")  # never indexed; a removed document's judgment is exported all the same
    out = tmp_path / "judged"
    exported = cli("judgments", "export", out, "--index", index.layout.root)
    assert exported.exit_code == 0, exported.output
    assert "4 judgments of 2 queries, 4 documents; 1 about a document not in the index" in exported.output
    assert (out / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    bench_data = load_beir(out, "test")  # what 'retriever bench' reads
    assert set(bench_data.corpus) == {r["_id"] for r in SMALL_RECORDS}
    assert bench_data.corpus["cats"].metadata == {"year": 2021}
    assert sorted(bench_data.queries.values()) == ["a walk in the garden", "cats in the sun"]
    training = load_training_data(out)  # what 'retriever train' reads: every judged document has its text
    assert sum(len(d) for d in (*training.train.values(), *training.dev.values())) == 3
    ran = cli("train", out, "-o", tmp_path / "model", "--model", tiny_model, "--max-steps", "1", "--batch-size", "2",
              "--quiet")
    assert ran.exit_code == 0, ran.output
    benched = cli("bench", out, "--systems", "bm25", "--base-model", tiny_model, "--output", tmp_path / "results",
                  "--cache", tmp_path / "cache", "--quiet")
    assert benched.exit_code == 0, benched.output
    assert json.loads((tmp_path / "results" / "judged-test.json").read_text())["counts"]["queries_scored"] == 2
    again = cli("judgments", "export", out, "--index", index.layout.root)
    assert again.exit_code == 1 and "not an empty folder" in again.output

    other = Retriever.build(SMALL_RECORDS, index_dir=tmp_path / "other", encoder=tiny_encoder)
    imported = cli("judgments", "import", out, "--index", other.layout.root)
    assert imported.exit_code == 0 and "4 judgments of 2 queries imported" in imported.output
    assert other.judgment_store.qrels() == index.judgment_store.qrels()
    assert cli("judgments", "export", tmp_path / "again", "--index", other.layout.root).exit_code == 0
    assert sorted((tmp_path / "again" / "qrels" / "test.tsv").read_text().splitlines()) == \
        sorted((out / "qrels" / "test.tsv").read_text().splitlines())  # the same query ids: made from the text
    other.close()


def test_import_refuses_a_folder_it_cannot_read_whole(index: Retriever, tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text('{"_id": "1", "text": "cats"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tcats\t1\n1\tdogs\t3\n")
    result = cli("judgments", "import", folder, "--index", index.layout.root)
    assert result.exit_code == 1 and "has score 3" in result.output
    assert index.judgments() == []
    (folder / "qrels" / "test.tsv").write_text("1\tcats\t1\n2\tdogs\t1\n")
    assert "query id '2' is not in queries.jsonl" in cli("judgments", "import", folder, "--index",
                                                           index.layout.root).output
    assert "qrels/dev.tsv is missing" in cli("judgments", "import", folder, "--index", index.layout.root,
                                             "--split", "dev").output
