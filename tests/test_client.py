"""``retriever.client.Client``: a server used like a ``Retriever``, returning the same objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the client tests need the 'serve' extra: pip install 'retriever[serve]'")
pytest.importorskip("httpx", reason="the client needs the 'serve' extra (httpx)")

from retriever import Document, Retriever  # noqa: E402
from retriever.client import Client  # noqa: E402
from retriever.errors import RemoteError, RetrieverError  # noqa: E402
from retriever.ingest.sync import IndexReport  # noqa: E402
from retriever.search.results import Hit  # noqa: E402
from retriever.serve.app import create_app  # noqa: E402
from retriever.verification.verdict import Verdict  # noqa: E402

KEY = "client-key"


@pytest.fixture
def index_dir(records_index: Path) -> Path:
    return records_index  # cats, dogs, guides/trains.md, coffee (conftest.SMALL_RECORDS)


@pytest.fixture
def url(index_dir: Path, start_server: Callable) -> str:
    return start_server(create_app(index_dir, api_key=KEY))


@pytest.fixture
def client(url: str) -> Client:
    with Client(url, api_key=KEY) as remote:
        yield remote


def same_hits(remote: list[Hit], local: list[Hit]) -> None:
    assert [h.doc_id for h in remote] == [h.doc_id for h in local]
    for got, want in zip(remote, local):
        assert isinstance(got, Hit)
        assert got.score == pytest.approx(want.score, abs=1e-5)
        assert (got.text, got.title, got.start, got.end, got.metadata) == (want.text, want.title, want.start,
                                                                            want.end, want.metadata)


def same_explanations(got: list, want: list) -> bool:
    """The same explanations, scores within 1e-5: the server encodes the query on another thread, and with more than
    one BLAS/OpenMP thread the last bits of a float32 score depend on how the sums were split (6e-8 measured)."""
    return len(got) == len(want) and all(
        mine.explanation.to_dict() == pytest.approx(theirs.explanation.to_dict(), abs=1e-5)
        for mine, theirs in zip(got, want))


def test_search_and_search_many_return_the_hits_of_the_local_retriever(client: Client, index_dir: Path) -> None:
    with Retriever.load(index_dir) as local:
        same_hits(client.search("cats in the sun", k=2), local.search("cats in the sun", k=2))
        local_explained = local.search("cats in the sun", k=2, explain=True)
        options = {"mode": "lexical", "where": ["year>=2020"]}
        same_hits(client.search("train coast", **options), local.search("train coast", **options))
        queries = ["cats sun", "dogs garden"]
        for remote, here in zip(client.search_many(queries, k=2, mode="dense"),
                                local.search_many(queries, k=2, mode="dense")):
            same_hits(remote, here)
    with pytest.raises(TypeError):
        client.search_many("one query")
    explained = client.search("cats in the sun", k=2, explain=True)  # the explanation comes through (issue 20)
    assert same_explanations(explained, local_explained)
    assert all(h.explanation.fused == pytest.approx(h.score) for h in explained)
    assert client.search("cats in the sun", k=2)[0].explanation is None
    batch = client.search_many(["cats in the sun", "dogs garden"], k=2, explain=True)  # POST /search/batch too
    assert same_explanations(batch[0], local_explained)
    with pytest.raises(TypeError, match="unknown search option"):
        client.search("cats", colour="red")


def test_add_get_remove_verify_info_as_on_a_retriever(client: Client) -> None:
    report = client.add([{"_id": "fish", "text": "fish and bird", "year": 2023},
                         Document("tea", "tea with water", title="Tea", metadata={"year": 2024})])
    assert isinstance(report, IndexReport) and report.added == 2 and report.passages_encoded == 2
    assert len(client) == 6
    assert client.get("fish") == Document("fish", "fish and bird", metadata={"year": 2023})
    assert client.get("tea").title == "Tea"
    assert client.search("fish bird", k=1, mode="lexical")[0].doc_id == "fish"
    assert client.add([{"_id": "fish", "text": "fish and bird", "year": 2023}]).unchanged == 1
    verdict = client.verify("fish and bird", "fish")
    assert isinstance(verdict, Verdict) and verdict.threshold == 0.5 and not verdict.calibrated
    assert client.remove(["fish", "tea", "never-there"]) == 2
    assert client.get("fish") is None
    info = client.info()
    assert info["counts"]["documents"] == 4 and info["server"]["commits"] == 2


def test_errors_are_remote_errors_with_the_servers_reason(client: Client, url: str) -> None:
    with pytest.raises(RemoteError, match="no '_id'") as bad_record:
        client.add([{"text": "no id"}])
    assert bad_record.value.status == 400 and isinstance(bad_record.value, RetrieverError)
    with pytest.raises(RemoteError, match="k is 1000"):
        client.search("cats", k=1000)
    with pytest.raises(RemoteError, match="no document 'nope'") as missing:
        client.verify("cats", "nope")
    assert missing.value.status == 404
    with Client(url, api_key="wrong") as intruder, pytest.raises(RemoteError, match="API key") as refused:
        intruder.search("cats")
    assert refused.value.status == 401


def test_api_key_from_the_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIEVER_API_KEY", KEY)
    with Client(url) as remote:
        assert remote.search("cats sun", k=1, mode="lexical")[0].doc_id == "cats"


def test_a_server_that_does_not_answer_is_one_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    with Client(f"http://127.0.0.1:{port}", timeout=5) as remote, pytest.raises(RemoteError, match="no answer") as e:
        remote.search("cats")
    assert e.value.status == 0
