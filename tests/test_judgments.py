"""Relevance judgments (issue 20): kept durably next to the index, through re-indexing, crashes and several
writers; graded from the API, the server and the CLI; exported to and imported from a BEIR folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from conftest import SMALL_RECORDS

from retriever import Retriever
from retriever.errors import RetrieverError, RetrieverWarning
from retriever.judgments import JudgmentStore

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
