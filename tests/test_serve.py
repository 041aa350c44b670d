"""``retriever serve``: the real server on a free 127.0.0.1 port, with the tiny model and a tiny index.

Covers each endpoint, the API key, the limits, read-only mode, errors without tracebacks or
paths, and the promises about writes: searches answered during a slow write, a failed write
leaving the served version unchanged, concurrent writes all applied.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs the 'serve' extra: pip install 'retriever[serve]'")
httpx = pytest.importorskip("httpx", reason="the server tests need the 'serve' extra (httpx)")

from click.testing import CliRunner  # noqa: E402
from conftest import PROCESS_BACKEND, SMALL_RECORDS  # noqa: E402

from retriever import Retriever  # noqa: E402
from retriever.cli import main  # noqa: E402
from retriever.encoding.encoder import Encoder  # noqa: E402
from retriever.serve import Limits  # noqa: E402
from retriever.serve.app import create_app  # noqa: E402
from retriever.serve.snapshot import ReaderSlot  # noqa: E402

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def index_dir(records_index: Path) -> Path:
    return records_index  # cats, dogs, guides/trains.md, coffee (conftest.SMALL_RECORDS)


@pytest.fixture
def serve(index_dir: Path, start_server: Callable) -> Callable[..., httpx.Client]:
    """``serve(**create_app options)``: a client of a freshly started server over the tiny index."""
    clients: list[httpx.Client] = []

    def start(**options: object) -> httpx.Client:
        options.setdefault("api_key", KEY)
        url = start_server(create_app(index_dir, **options))
        client = httpx.Client(base_url=url, headers=AUTH if options["api_key"] else {}, timeout=30)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The status, and a body that is exactly ``{"error": one line}`` containing ``fragments``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"], body
    message = body["error"]
    assert message and "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def lexical(client: httpx.Client, query: str, **options: object) -> list[str]:
    response = client.post("/search", json={"query": query, "mode": "lexical", **options})
    assert response.status_code == 200, response.text
    return [hit["doc_id"] for hit in response.json()["hits"]]


def document_count(client: httpx.Client) -> int:
    return client.get("/info").json()["counts"]["documents"]


# endpoints ------------------------------------------------------------------------------------------
def test_search_answers_with_the_fields_and_scores_of_hit(serve: Callable, index_dir: Path) -> None:
    client = serve()
    response = client.post("/search", json={"query": "cats in the sun", "k": 3})
    assert response.status_code == 200
    hits = response.json()["hits"]
    with Retriever.load(index_dir) as local:
        expected = [hit.to_dict() for hit in local.search("cats in the sun", k=3)]
    assert [h["doc_id"] for h in hits] == [h["doc_id"] for h in expected]
    for got, want in zip(hits, expected):
        assert set(got) == set(want) == {"doc_id", "score", "text", "title", "source", "start", "end",
                                         "passage_id", "metadata", "snippet", "highlights", "explanation"}
        assert got["explanation"] is None  # computed only when asked for (explain: true)
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
        assert {k: v for k, v in got.items() if k != "score"} == {k: v for k, v in want.items() if k != "score"}


def test_search_options_pass_through(serve: Callable) -> None:
    client = serve()
    assert lexical(client, "train coast")[0] == "guides/trains.md"
    for where in ("year>=2021", ["year>=2021"]):
        filtered = client.post("/search", json={"query": "sun", "mode": "dense", "where": where})
        assert {hit["doc_id"] for hit in filtered.json()["hits"]} == {"cats", "coffee"}
    assert lexical(client, "coffee tea", k=1) == ["coffee"]
    dense = client.post("/search", json={"query": "coffee", "mode": "dense", "k": 2, "passages": True})
    assert dense.status_code == 200 and len(dense.json()["hits"]) == 2
    rrf = client.post("/search", json={"query": "coffee", "mode": "hybrid", "fusion": "rrf", "alpha": 0.3})
    assert rrf.status_code == 200 and rrf.json()["hits"]


def test_the_page_server_sends_on_kept_alive_connections_at_once(index_dir: Path) -> None:
    """``retriever ui``'s server turns Nagle's algorithm off on every connection: with it on, each request after a
    connection's first waited ~40 ms for the client's delayed ACK (``retriever.serve.sockets``)."""
    import http.client

    from retriever.serve.ui import page_server

    server, sock, url = page_server(index_dir)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120  # bounds a hang only
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the page server did not start"
            time.sleep(0.02)
        connection = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=30)
        for _ in range(2):  # the same connection, kept alive
            connection.request("GET", "/health")
            assert connection.getresponse().read() == b'{"status":"ok"}'
        served = [protocol.transport.get_extra_info("socket") for protocol in server.server_state.connections]
        assert served and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in served)
        connection.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_batch_search_matches_single_searches(serve: Callable) -> None:
    client = serve()
    queries = ["cats sun", "train coast", "coffee tea"]
    response = client.post("/search/batch", json={"queries": queries, "k": 2, "mode": "lexical"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [[h["doc_id"] for h in hits] for hits in results] == [lexical(client, q, k=2) for q in queries]


def test_add_get_update_and_delete_a_document(serve: Callable) -> None:
    client = serve()
    added = client.post("/documents", json={"documents": [{"_id": "fish", "title": "Fish", "text": "fish and bird"}]})
    assert added.status_code == 200
    assert added.json()["added"] == 1 and added.json()["documents"] == 5
    assert lexical(client, "fish bird")[0] == "fish"
    document = client.get("/documents/fish").json()
    assert document == {"doc_id": "fish", "text": "fish and bird", "title": "Fish", "source": None, "metadata": {}}
    updated = client.post("/documents", json={"documents": [{"_id": "fish", "text": "music and song"}]})
    assert updated.json()["updated"] == 1 and updated.json()["documents"] == 5
    assert client.get("/documents/fish").json()["text"] == "music and song"
    assert "fish" not in lexical(client, "bird")
    assert client.delete("/documents/fish").json()["removed"] == 1
    assert_error(client.get("/documents/fish"), 404, "fish")
    assert_error(client.delete("/documents/fish"), 404, "fish")
    assert document_count(client) == 4


def test_document_ids_with_slashes_and_batch_delete(serve: Callable) -> None:
    client = serve()
    assert client.get("/documents/guides/trains.md").json()["title"] == "Trains"
    response = client.post("/documents/delete", json={"ids": ["guides/trains.md", "cats", "not-there"]})
    assert response.status_code == 200 and response.json()["removed"] == 2
    assert document_count(client) == 2


def test_verify_and_info(serve: Callable, index_dir: Path, tiny_model: str) -> None:
    client = serve()
    verdict = client.post("/verify", json={"query": "cats in the sun", "doc_id": "cats"})
    assert verdict.status_code == 200
    assert set(verdict.json()) == {"score", "is_match", "threshold", "calibrated"}
    assert_error(client.post("/verify", json={"query": "cats", "doc_id": "nope"}), 404, "nope")
    info = client.get("/info")
    assert info.status_code == 200
    details = info.json()
    assert details["counts"]["documents"] == 4 and details["index"] == "idx"
    assert details["server"]["read_only"] is False
    assert str(index_dir.parent) not in info.text and str(Path(tiny_model).parent) not in info.text


# safety ---------------------------------------------------------------------------------------------
def test_every_endpoint_but_health_needs_the_api_key(serve: Callable) -> None:
    client = serve()
    url = str(client.base_url)
    requests = [("GET", "/info", None), ("POST", "/search", {"query": "cats"}),
                ("POST", "/search/batch", {"queries": ["cats"]}), ("GET", "/documents/cats", None),
                ("DELETE", "/documents/cats", None), ("POST", "/documents", {"documents": [{"_id": "x", "text": "y"}]}),
                ("POST", "/documents/delete", {"ids": ["cats"]}), ("POST", "/verify", {"query": "c", "doc_id": "cats"}),
                ("GET", "/docs", None), ("GET", "/openapi.json", None), ("GET", "/no-such-page", None)]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        with httpx.Client(base_url=url, headers=headers) as anonymous:
            assert anonymous.get("/health").json() == {"status": "ok"}
            for method, path, body in requests:
                response = anonymous.request(method, path, json=body)
                assert_error(response, 401, "API key")
                assert response.headers["www-authenticate"] == "Bearer"
    assert document_count(client) == 4  # nothing was deleted or added
    assert client.get("/openapi.json").json()["info"]["title"] == "retriever"


def test_limits_give_4xx_with_a_one_line_reason(serve: Callable) -> None:
    limits = Limits(max_body_bytes=20_000, max_query_chars=50, max_k=5, max_batch=3, max_documents=2)
    client = serve(limits=limits)
    assert_error(client.post("/search", json={"query": "cats", "k": 6}), 422, "k is 6; at most 5")
    assert_error(client.post("/search", json={"query": "cats", "k": 0}), 422, "k")
    assert_error(client.post("/search", json={"query": "cats " * 20}), 422, "at most 50")
    assert_error(client.post("/search", json={"query": "cats", "where": "title=" + "x" * 60}), 422, "at most 50")
    assert_error(client.post("/search/batch", json={"queries": ["a", "b", "c", "d"]}), 422, "at most 3")
    assert_error(client.post("/documents/delete", json={"ids": ["a", "b", "c", "d"]}), 422, "at most 3")
    records = [{"_id": str(i), "text": "tea"} for i in range(3)]
    assert_error(client.post("/documents", json={"documents": records}), 422, "at most 2")  # as the schema's maxItems
    assert_error(client.post("/search", json={"query": "x", "padding": "y" * 30_000}), 413, "20000 bytes")

    def chunks():  # a streamed body, without a declared length
        yield b'{"query": "'
        for _ in range(30):
            yield b"y" * 1_000
        yield b'"}'

    assert_error(client.post("/search", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert_error(client.post("/search", content=b'{"query": ', headers={"content-type": "application/json"}), 400,
                 "not valid JSON")
    assert_error(client.post("/search", json={"k": 3}), 422, "query")
    assert_error(client.post("/search", json={"query": "cats", "mode": "magic"}), 422, "mode")
    assert_error(client.post("/search", json={"query": "cats", "where": "no operator"}), 400, "bad filter")
    assert_error(client.post("/search", json={"query": "cats", "rerank": 3}), 400, "no learned metric head")
    assert_error(client.put("/search", json={"query": "cats"}), 405)
    assert_error(client.post("/documents", json={"documents": [{"text": "no id"}]}), 400, "no '_id'")
    assert document_count(client) == 4


def test_read_only_turns_writes_off(serve: Callable) -> None:
    client = serve(read_only=True)
    assert_error(client.post("/documents", json={"documents": [{"_id": "x", "text": "tea"}]}), 403, "read-only")
    assert_error(client.delete("/documents/cats"), 403, "read-only")
    assert_error(client.post("/documents/delete", json={"ids": ["cats"]}), 403, "read-only")
    assert lexical(client, "cats sun")[0] == "cats"
    assert document_count(client) == 4
    assert client.get("/info").json()["server"]["read_only"] is True


def test_no_traceback_or_server_path_reaches_the_client(serve: Callable, index_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.errors import CorruptIndexError

    client = serve()

    def broken_search(self: Retriever, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f'Traceback (most recent call last):\n  File "{index_dir}/x.py", line 1\nboom')

    monkeypatch.setattr(Retriever, "search_many", broken_search)
    message = assert_error(client.post("/search", json={"query": "cats"}), 500, "internal server error")
    assert "boom" not in message and str(index_dir) not in message

    def corrupt_search(self: Retriever, *args: object, **kwargs: object) -> None:
        raise CorruptIndexError(f"index {index_dir.resolve()} is corrupt: {index_dir.resolve()}/gen-000001/x.faiss")

    monkeypatch.setattr(Retriever, "search_many", corrupt_search)
    message = assert_error(client.post("/search", json={"query": "cats"}), 500, "idx", "corrupt")
    assert message == "index idx is corrupt: idx/gen-000001/x.faiss"  # the index's name, not where it lives


# reads and writes -----------------------------------------------------------------------------------
class BlockedEncoding:
    """Holds every document encoding (only writes encode documents) until ``release``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        original = Encoder.encode_documents

        def blocked(encoder: Encoder, texts: list[str], progress: bool = False):  # noqa: ANN202
            self.entered.set()
            assert self.released.wait(30), "the test never released the write"
            return original(encoder, texts, progress)

        monkeypatch.setattr(Encoder, "encode_documents", blocked)

    def release(self) -> None:
        self.released.set()


def test_searches_are_answered_while_a_write_is_in_progress(serve: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    client = serve()
    block = BlockedEncoding(monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        write = pool.submit(client.post, "/documents", json={"documents": [{"_id": "fish", "text": "fish bird"}]})
        assert block.entered.wait(30)
        for _ in range(5):
            started = time.monotonic()
            assert lexical(client, "cats sun")[0] == "cats"
            assert time.monotonic() - started < 5
        assert "fish" not in lexical(client, "fish bird")  # the last committed version is served
        assert client.get("/info").json()["server"]["pending_writes"] == 1
        assert client.get("/health").status_code == 200
        block.release()
        assert write.result(timeout=30).status_code == 200
    assert lexical(client, "fish bird")[0] == "fish"  # a write that has answered is visible at once


def test_a_failed_write_leaves_the_served_version_unchanged(serve: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    client = serve()
    before = client.get("/info").json()
    bad_batch = [{"_id": "fish", "text": "fish bird"}, {"title": "no id and no text"}]
    assert_error(client.post("/documents", json={"documents": bad_batch}), 400)

    def failing(encoder: Encoder, texts: list[str], progress: bool = False) -> None:
        raise RuntimeError("simulated failure while encoding")

    with monkeypatch.context() as patch:
        patch.setattr(Encoder, "encode_documents", failing)
        assert_error(client.post("/documents", json={"documents": [{"_id": "fish", "text": "fish bird"}]}), 500)
    after = client.get("/info").json()
    assert after["counts"] == before["counts"] and after["updated_at"] == before["updated_at"]
    assert after["server"]["commits"] == 0
    assert "fish" not in lexical(client, "fish bird")
    assert client.get("/documents/fish").status_code == 404
    # the next write goes through
    assert client.post("/documents", json={"documents": [{"_id": "fish", "text": "fish bird"}]}).status_code == 200
    assert lexical(client, "fish bird")[0] == "fish"


def test_concurrent_writes_are_serialized_and_all_applied(serve: Callable) -> None:
    client = serve()
    batches = [[{"_id": f"w{n}-{i}", "text": f"water {n} {i}"} for i in range(3)] for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda docs: client.post("/documents", json={"documents": docs}), batches))
        removals = list(pool.map(lambda doc_id: client.delete(f"/documents/{doc_id}"), ["cats", "dogs"]))
    assert [r.status_code for r in responses + removals] == [200] * 10
    assert document_count(client) == 4 + 24 - 2
    for docs in batches:
        for doc in docs:
            assert client.get(f"/documents/{doc['_id']}").json()["text"] == doc["text"]
    assert client.get("/info").json()["server"]["commits"] == 10


def test_writes_beyond_the_queue_limit_are_refused(serve: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    client = serve(limits=Limits(max_pending_writes=1))
    block = BlockedEncoding(monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/documents", json={"documents": [{"_id": "a1", "text": "tea"}]})
        assert block.entered.wait(30)
        assert_error(client.post("/documents", json={"documents": [{"_id": "a2", "text": "tea"}]}), 429, "retry")
        block.release()
        assert first.result(timeout=30).status_code == 200
    assert client.post("/documents", json={"documents": [{"_id": "a2", "text": "tea"}]}).status_code == 200


def test_concurrent_searches_are_answered_in_one_batch(serve: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    client = serve()
    first_entered, release = threading.Event(), threading.Event()
    original = Retriever.search_many
    held = []

    def held_first(self: Retriever, queries: list[str], **options: object) -> list:
        # Both batch workers are held, so the searches that arrive meanwhile must queue (with one worker free,
        # a fast machine answered each search alone as it arrived and no two shared a batch).
        if not release.is_set():
            held.append(queries)
            first_entered.set()
            assert release.wait(30)
        return original(self, queries, **options)

    from retriever.serve.batching import SearchBatcher

    submitted = threading.Semaphore(0)
    original_submit = SearchBatcher.submit

    def counted_submit(self: SearchBatcher, query: str, options: dict) -> object:
        future = original_submit(self, query, options)
        submitted.release()  # queued for a batch worker
        return future

    monkeypatch.setattr(Retriever, "search_many", held_first)
    monkeypatch.setattr(SearchBatcher, "submit", counted_submit)
    requests = [("cats sun", "lexical"), ("   ", "lexical")] + [
        (q, m) for q in ("train coast", "coffee tea", "dogs garden") for m in ("lexical", "dense")]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = [pool.submit(client.post, "/search", json={"query": q, "mode": m, "k": 2}) for q, m in requests]
        assert first_entered.wait(30)
        # Every search is queued before the held workers are let go: at most two batches are held, so the other
        # searches wait in the queue and share a batch (or the first worker's batch took them all), whatever the
        # machine's speed; no sleep to guess how long that takes.
        assert all(submitted.acquire(timeout=30) for _ in requests)
        release.set()
        responses = [a.result(timeout=30) for a in answers]
    monkeypatch.setattr(Retriever, "search_many", original)
    monkeypatch.setattr(SearchBatcher, "submit", original_submit)
    for (query, mode), response in zip(requests, responses):
        if not query.strip():
            assert_error(response, 400, "empty query")  # refused alone; the rest of its batch is answered
            continue
        assert response.status_code == 200
        expected = client.post("/search", json={"query": query, "mode": mode, "k": 2}).json()["hits"]
        assert [h["doc_id"] for h in response.json()["hits"]] == [h["doc_id"] for h in expected]
    server = client.get("/info").json()["server"]
    assert server["search_batches"] < server["searches_batched"]  # some searches shared a batch


def test_a_version_committed_by_another_writer_is_served(index_dir: Path, start_server: Callable,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.serve import served_index

    monkeypatch.setattr(served_index, "WATCH_SECONDS", 0.05)
    client = httpx.Client(base_url=start_server(create_app(index_dir, api_key=KEY)), headers=AUTH, timeout=30)
    assert "volcano" not in lexical(client, "volcano erupted")
    with Retriever.load(index_dir) as other:  # what `retriever index` or `retriever tune` in another process does
        assert other.add([{"_id": "volcano", "text": "the volcano erupted over the island"}]).added == 1
    deadline = time.monotonic() + 30  # bounds a failure only: the server looks every 0.05 s
    while "volcano" not in lexical(client, "volcano erupted"):
        assert time.monotonic() < deadline, "the server kept serving the version it started with"
        time.sleep(0.05)
    assert document_count(client) == 5
    client.close()


def test_searches_without_batching(serve: Callable) -> None:
    client = serve(batch_searches=False)
    assert lexical(client, "cats sun")[0] == "cats"
    assert client.get("/info").json()["server"]["search_batches"] == 0


def test_a_swapped_out_reader_stays_open_until_its_search_ends(index_dir: Path) -> None:
    old, new = Retriever.load(index_dir), Retriever.load(index_dir)
    slot = ReaderSlot(old)
    with slot.use() as reader:
        slot.swap(new)
        assert reader is old
        assert reader.search("cats sun", k=1, mode="lexical")[0].doc_id == "cats"  # still usable
        with slot.use() as newer:
            assert newer is new
    assert old.closed  # closed by the last request that used it
    with slot.use() as reader:
        assert reader is new and not new.closed


# the command ------------------------------------------------------------------------------------------
def test_serve_command_serves_until_interrupted(tmp_path: Path, serve_command: Callable, tiny_model: str) -> None:
    index_dir = tmp_path / "idx"
    Retriever.build(SMALL_RECORDS, index_dir=index_dir, model=tiny_model, backend=PROCESS_BACKEND).close()
    with serve_command(index_dir, "--read-only", api_key=KEY) as url:
        assert httpx.post(f"{url}/search", json={"query": "cats"}).status_code == 401
        answer = httpx.post(f"{url}/search", json={"query": "cats sun", "mode": "lexical"}, headers=AUTH)
        assert answer.json()["hits"][0]["doc_id"] == "cats"
        assert httpx.post(f"{url}/documents", json={"documents": []}, headers=AUTH).status_code == 403


def test_serve_command_refuses_a_missing_index_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--index", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no index at") and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_extra_is_named_in_one_line() -> None:
    from retriever.errors import MissingExtraError
    from retriever.extras import require_extra

    with pytest.raises(MissingExtraError, match=r"pip install 'retriever\[serve\]'") as caught:
        require_extra("serve", "json", "no_such_module_here", feature="retriever serve")
    message = str(caught.value)
    assert "no_such_module_here" in message and "json" not in message and "\n" not in message


def test_big_integers_and_too_many_filters_are_not_server_errors(serve: Callable) -> None:
    """Issue 24, items 3 and 4: an integer past 64 bits is compared, and 999 filters are a 400 naming the limit."""
    client = serve()
    response = client.post("/search", json={"query": "cats", "where": "year>=100000000000000000000"})
    assert response.status_code == 200, response.text
    message = assert_error(client.post("/search", json={"query": "cats", "where": ["year>1"] * 999}), 400,
                           "999 filters; at most 64")
    assert "segments" not in message and "rebuild" not in message


# the HTTP contract (issue 24, item 9) ----------------------------------------------------------------
def test_sources_are_shown_relative_to_the_corpus_root(tmp_path: Path, tiny_model: str,
                                                      start_server: Callable) -> None:
    corpus = tmp_path / "srv" / "corpus"
    (corpus / "notes").mkdir(parents=True)
    (corpus / "corpus.jsonl").write_text('{"_id": "r1", "text": "cats sleep in the sun"}\n')
    (corpus / "notes" / "trains.md").write_text("# Trains\n\nthe train to the coast leaves at nine\n")
    Retriever.build(corpus, index_dir=tmp_path / "idx", model=tiny_model).close()
    with Retriever.load(tmp_path / "idx") as local:  # the engine keeps where the files are
        assert {hit.source for hit in local.search("cats train", k=5, mode="lexical")} == {
            str((corpus / "corpus.jsonl").resolve()), str((corpus / "notes" / "trains.md").resolve())}
    url = start_server(create_app(tmp_path / "idx"))
    with httpx.Client(base_url=url) as client:
        hits = client.post("/search", json={"query": "cats train", "mode": "lexical"}).json()["hits"]
        assert {hit["doc_id"]: hit["source"] for hit in hits} == {"r1": "corpus.jsonl",
                                                                   "notes/trains.md": "notes/trains.md"}
        batch = client.post("/search/batch", json={"queries": ["cats"], "mode": "lexical"}).json()
        assert batch["results"][0][0]["source"] == "corpus.jsonl"
        assert client.get("/documents/r1").json()["source"] == "corpus.jsonl"
        for where, ids in {"source~notes/*": {"notes/trains.md"}, "source=corpus.jsonl": {"r1"},
                           "source!=corpus.jsonl": {"notes/trains.md"}, "source~*.md": {"notes/trains.md"},
                           "source~srv/*": set(), "source~corpus/*": set()}.items():
            found = client.post("/search", json={"query": "cats train", "mode": "dense", "where": where}).json()
            assert {hit["doc_id"] for hit in found["hits"]} == ids, where
        for response in (client.post("/search", json={"query": "cats train"}), client.get("/documents/r1")):
            assert str(tmp_path) not in response.text


@pytest.mark.parametrize("body", [{"k": True}, {"k": "5"}, {"k": 5.5}, {"passages": "yes"}, {"rerank": 1.5},
                                  {"alpha": "0.5"}, {"where": 3}])
def test_search_fields_are_strictly_typed(serve: Callable, body: dict) -> None:
    client = serve()
    assert_error(client.post("/search", json={"query": "cats", **body}), 422, next(iter(body)))
    assert_error(client.post("/search/batch", json={"queries": ["cats"], **body}), 422, next(iter(body)))


def test_strict_types_elsewhere_and_rerank_has_a_maximum(serve: Callable) -> None:
    client = serve(limits=Limits(max_k=5))
    assert client.post("/search", json={"query": "cats", "k": 5, "alpha": 1}).status_code == 200  # int for float
    hits = client.post("/search", json={"query": "cats", "k": 2.0, "mode": "dense"}).json()["hits"]
    assert len(hits) == 2, "JSON Schema's integer includes 2.0"
    assert_error(client.post("/search", json={"query": "cats", "rerank": 6}), 422, "rerank is 6; at most 5")
    assert_error(client.post("/verify", json={"query": "cats", "doc_id": 5}), 422, "doc_id")
    assert_error(client.post("/documents/delete", json={"ids": [1]}), 422, "ids")
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("SearchRequest", "BatchSearchRequest"):
        k = schema[name]["properties"]["k"]["anyOf"][0]
        assert k["type"] == "integer" and k["minimum"] == 1 and k["maximum"] == 5
        assert schema[name]["properties"]["rerank"]["maximum"] == 0, "the tiny model has no learned metric head"
    assert_error(client.post("/search/batch", json={"queries": [], "rerank": 1}), 400, "no learned metric head")


def test_openapi_declares_the_error_answers(serve: Callable) -> None:
    client = serve()
    spec = client.get("/openapi.json").json()
    assert spec["components"]["schemas"]["ErrorBody"]["properties"] == {"error": {"title": "Error", "type": "string"}}
    wanted = {("/search", "post"): {400, 401, 413, 422}, ("/search/batch", "post"): {400, 401, 413, 422},
              ("/documents", "post"): {400, 401, 403, 413, 422, 429},
              ("/documents/delete", "post"): {400, 401, 403, 413, 422, 429},
              ("/documents/{doc_id}", "delete"): {401, 403, 404, 429}, ("/documents/{doc_id}", "get"): {400, 401, 404},
              ("/verify", "post"): {400, 401, 404, 422}, ("/info", "get"): {400, 401}}
    for (path, method), codes in wanted.items():
        responses = spec["paths"][path][method]["responses"]
        assert codes <= {int(code) for code in responses if code.isdigit()}, (path, method, sorted(responses))
        for code in codes:
            assert responses[str(code)]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"}


def test_method_not_allowed_lists_every_method_of_the_path(serve: Callable) -> None:
    client = serve()
    response = client.options("/documents/cats")
    assert_error(response, 405)
    assert response.headers["allow"] == "GET, DELETE"
    response = client.put("/documents/guides/trains.md")
    assert_error(response, 405)
    assert response.headers["allow"] == "GET, DELETE"
    assert client.options("/search").headers["allow"] == "POST"


def raw_request(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library fixes them up); the status, headers and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("request_bytes", [
    b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n11\r\n{\"query\": \"cats\"}\r\n0\r\n\r\n",
    b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\nContent-Length: 18\r\nConnection: close\r\n\r\n"
    b"{\"query\": \"cats\"} ",
    b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
    "GET /documents/caf\u00e9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    b"GARBAGE\r\n\r\n",
], ids=["cl-and-te", "two-lengths", "bad-length", "raw-utf8-path", "bad-request-line"])
def test_malformed_http_gets_400_as_json(serve: Callable, request_bytes: bytes) -> None:
    client = serve(api_key=None)
    status, headers, body = raw_request(str(client.base_url).rstrip("/"), request_bytes)
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert headers.get("connection") == "close"
    message = httpx.Response(400, content=body).json()
    assert list(message) == ["error"] and message["error"].startswith("bad request")
    assert client.get("/health").json() == {"status": "ok"}  # the server goes on serving
