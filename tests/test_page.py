"""The search page in a real browser (issue 20): Playwright for Python driving Debian's chromium.

Two servers as ``retriever ui`` runs them (one writable without a key, one read-only with an API key and a lower
``max_k``) over a tiny index that holds hostile documents, and one browser, for the whole module.
Each test opens a fresh browser context (its own session storage). Playwright's own browser download cannot be
reached here: the tests use the system's chromium (``RETRIEVER_CHROMIUM`` or ``chromium`` on the PATH).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server needs the 'serve' extra: pip install 'retriever[serve]'")
pytest.importorskip("playwright", reason="the browser tests need the 'dev' extra: pip install 'retriever[dev]'")
CHROMIUM = os.environ.get("RETRIEVER_CHROMIUM") or shutil.which("chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="no chromium to drive: apt-get install chromium "
                                "(or set RETRIEVER_CHROMIUM to a Chromium binary)")

import httpx  # noqa: E402
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from retriever import Retriever  # noqa: E402

expect.set_options(timeout=30_000)  # bounds a wait only: the servers share 2 cores with the rest of the suite
from retriever.serve.limits import Limits  # noqa: E402
from retriever.serve.ui import page_server  # noqa: E402

KEY = "page-key-42"
MAX_K = 5  # the locked server's limit, which the page must respect
TRAINS = " ".join(["The night train crosses the plain slowly and stops at every small station."] * 8
                  + ["At midnight the lighthouse keeper waves at the passing carriages."]
                  + ["Then the train goes on towards the coast, where the morning is grey."] * 8)
RECORDS = [
    {"_id": "cats", "title": "Cats", "text": "Cats sleep in the sun all day long.", "year": 2021},
    {"_id": "dogs", "title": "Dogs", "text": "Dogs love a long walk in the garden.", "year": 2022},
    {"_id": "trains", "title": "Night trains", "text": TRAINS, "year": 2020},
    {"_id": "evil-script", "title": "<script>window.__pwned = 'title'</script>",
     "text": "Payload cats <script>window.__pwned = 'text'</script> sun", "year": 2019},
    {"_id": "evil-img", "title": "Image <img src=x onerror=\"window.__pwned='img'\">",
     "text": "Payload cats nap <img src=x onerror=\"window.__pwned='img'\"> in the sun", "year": 2019},
    {"_id": "evil-link", "title": "Link",
     "text": "Payload cats <a href=\"javascript:window.__pwned='a'\">click</a> sun",
     "url": "javascript:window.__pwned='url'", "source": "javascript:window.__pwned='source'", "year": 2019},
    {"_id": "<img src=x onerror=window.__pwned='id'>", "title": "", "text": "Payload hidden in the id, cats",
     "year": 2019},
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    folder = tmp_path_factory.mktemp("page") / "idx"
    Retriever.build(RECORDS, index_dir=folder, model=tiny_model).close()
    return folder


@pytest.fixture(scope="module")
def servers(index_dir: Path) -> Iterator[dict[str, str]]:
    """The servers ``retriever ui`` runs (``page_server``), in this process (no second torch import): one open
    and writable, one read-only with an API key and a lower ``max_k``."""
    made = [page_server(index_dir), page_server(index_dir, api_key=KEY, read_only=True, limits=Limits(max_k=MAX_K))]
    threads = [threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
               for server, sock, _ in made]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120  # bounds a hang only
        while not all(server.started for server, _, _ in made):
            assert all(t.is_alive() for t in threads) and time.monotonic() < deadline, "a server did not start"
            time.sleep(0.02)
        yield {"page": made[0][2], "locked": made[1][2]}
    finally:
        for server, _, _ in made:
            server.should_exit = True
        for thread in threads:
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def page_url(servers: dict[str, str]) -> str:
    return servers["page"]


@pytest.fixture(scope="module")
def locked_url(servers: dict[str, str]) -> str:
    return servers["locked"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


class Visit:
    """A page in a fresh context, with the dialogs it opened and the errors its scripts raised."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context()
        self.page: Page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text)  # the page breaks its own CSP
                     if "Content Security Policy" in message.text else None)

    def open(self, url: str) -> Any:
        response = self.page.goto(url)
        expect(self.page.locator("body[data-ready=true], #key-form:not([hidden])")).to_have_count(1)
        return response

    def search(self, query: str, mode: str = "hybrid", k: int = 10) -> None:
        self.page.fill("#query", query)
        self.page.select_option("#mode", mode)
        self.page.fill("#k", str(k))
        self.page.click("#search-form button[type=submit]")
        expect(self.page.locator("#status")).to_contain_text("result")

    def pwned(self) -> Any:
        return self.page.evaluate("() => window.__pwned")


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    opened = Visit(browser)
    yield opened
    opened.context.close()
    assert opened.errors == []  # no script error, no CSP violation, whatever the documents held


def test_search_shows_hits_with_highlights_and_explanation(visit: Visit, page_url: str) -> None:
    response = visit.open(page_url)
    csp = response.headers["content-security-policy"]
    for rule in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert rule in csp
    assert "unsafe" not in csp and response.headers["x-content-type-options"] == "nosniff"
    visit.search("cats sun", k=3)
    hits = visit.page.locator("li.hit")
    expect(hits).to_have_count(3)
    answer = httpx.post(page_url + "search", json={"query": "cats sun", "k": 3, "explain": True}).json()["hits"]
    for item, hit in zip(hits.all(), answer):
        assert item.locator(".doc-id").text_content() == hit["doc_id"]
        assert item.locator(".score").text_content() == f"{hit['score']:.4f}"
        marks = [text.lower() for text in item.locator(".passage mark").all_text_contents()]
        assert marks and set(marks) <= {"cats", "sun"}  # the query's words, from the API's highlight spans
        assert item.locator(".passage").text_content() == hit["text"]
        why = item.locator(".why").text_content()
        assert why.startswith("hybrid convex α=0.50: dense ") and why.endswith(f"= {hit['score']:.4f}")
    visit.search("cats", mode="lexical", k=2)
    expect(hits).to_have_count(2)
    assert all(text.startswith("lexical: BM25 ") for text in visit.page.locator(".why").all_text_contents())
    if httpx.get(page_url + "judgments", params={"query": "x"}).status_code == 404:  # no judgments API: none shown
        expect(visit.page.locator("#judging")).to_be_hidden()
        assert visit.page.locator(".grade").count() == 0


def test_document_view_marks_the_passage_in_place(visit: Visit, page_url: str) -> None:
    visit.open(page_url)
    visit.search("lighthouse keeper midnight", mode="lexical", k=1)
    hit = httpx.post(page_url + "search", json={"query": "lighthouse keeper midnight", "k": 1,
                                                "mode": "lexical"}).json()["hits"][0]
    assert hit["doc_id"] == "trains" and hit["end"] - hit["start"] < len(TRAINS)  # one passage of several
    visit.page.click("li.hit .hit-title")
    expect(visit.page.locator("#document")).to_be_visible()
    expect(visit.page.locator("#results")).to_be_hidden()
    assert visit.page.locator("#doc-text").text_content() == TRAINS  # the whole document
    assert visit.page.locator("#passage").text_content() == TRAINS[hit["start"]:hit["end"]]
    assert "lighthouse keeper" in visit.page.locator("#passage").text_content()
    expect(visit.page.locator("#passage")).to_be_in_viewport()
    visit.page.click("#back")
    expect(visit.page.locator("li.hit")).to_have_count(1)


def test_hostile_documents_are_shown_as_text_and_never_run(visit: Visit, page_url: str) -> None:
    visit.open(page_url)
    visit.search("payload", mode="lexical", k=10)
    items = visit.page.locator("li.hit")
    expect(items).to_have_count(4)
    shown = " ".join(items.all_text_contents())
    for payload in ("<script>window.__pwned = 'title'</script>", "<img src=x onerror=\"window.__pwned='img'\">",
                    "<a href=\"javascript:window.__pwned='a'\">click</a>", "<img src=x onerror=window.__pwned='id'>"):
        assert payload in shown  # titles, ids and passages as text
    assert visit.page.locator("#results img, #results script, #results a, #results iframe").count() == 0
    documents = []
    for index in range(4):
        visit.page.locator("li.hit .hit-title").nth(index).click()
        expect(visit.page.locator("#document")).to_be_visible()
        assert visit.page.locator("#document img, #document script, #document a").count() == 0
        documents.append(visit.page.locator("#doc-text").text_content())
        visit.page.click("#back")
    for record in RECORDS[3:]:
        assert record["text"] in documents  # the whole text, markup and all, as text
    visit.page.locator("li.hit", has_text="Link").locator(".hit-title").click()
    expect(visit.page.locator("#doc-metadata")).to_contain_text("javascript:window.__pwned='url'")
    assert visit.page.locator("a[href^='javascript:' i], [onerror], [onclick]").count() == 0
    visit.page.wait_for_timeout(200)  # an image that failed to load would have fired its onerror by now
    assert visit.pwned() is None and visit.dialogs == []


def test_api_key_is_asked_once_and_a_read_only_server_has_no_grading(visit: Visit, locked_url: str) -> None:
    page = visit.page
    visit.open(locked_url)
    expect(page.locator("#key-form")).to_be_visible()
    page.fill("#key-input", "wrong-key")
    page.click("#key-form button")
    expect(page.locator("#key-wrong")).to_be_visible()  # refused: asked again
    page.fill("#key-input", KEY)
    page.click("#key-form button")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#read-only")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('retriever-api-key')") == KEY
    assert page.locator("#k").get_attribute("max") == str(MAX_K)  # the server's limit
    visit.search("cats sun", k=50)  # over the limit: the page asks for the most it may
    expect(page.locator("li.hit")).to_have_count(MAX_K)
    assert page.locator("#k").input_value() == str(MAX_K)
    assert page.locator("li.hit .grade").count() == 0  # read-only: no grade buttons
    if httpx.get(locked_url + "judgments", params={"query": "x"}, headers={"Authorization": f"Bearer {KEY}"},
                 timeout=60).status_code != 404:  # a server with judgments shows them, and says why no buttons
        expect(page.locator("#judging")).to_contain_text("Read-only server: grading is off.")
    page.reload()  # the key is kept for the tab: not asked again
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    expect(page.locator("#key-form")).to_be_hidden()
    visit.search("dogs garden", k=1)
    expect(page.locator("li.hit")).to_have_count(1)


def test_judging_from_the_page(visit: Visit, page_url: str) -> None:
    if httpx.get(page_url + "judgments", params={"query": "x"}).status_code == 404:
        pytest.skip("the judgments API (POST /judgments) is not on this branch yet")
    page = visit.page
    visit.open(page_url)
    query = "dogs walk in the garden"
    visit.search(query, k=3)
    expect(page.locator("#judging")).to_contain_text("This query: 0 judged (0 of these 3 results)")
    first, second = page.locator("li.hit").nth(0), page.locator("li.hit").nth(1)
    first_id, second_id = first.get_attribute("data-doc-id"), second.get_attribute("data-doc-id")
    first.locator(".grade[data-grade='2']").click()
    expect(first.locator(".grade[data-grade='2']")).to_have_attribute("aria-pressed", "true")
    page.locator("li.hit").nth(1).locator(".grade[data-grade='0']").click()
    expect(page.locator("#judging")).to_contain_text("This query: 2 judged (2 of these 3 results)")
    stored = httpx.get(page_url + "judgments", params={"query": query}).json()["judgments"]
    assert {(j["doc_id"], j["grade"]) for j in stored} == {(first_id, 2), (second_id, 0)}
    page.reload()  # the grades are the server's: shown again on a new search
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    visit.search(query, k=3)
    expect(page.locator(f"li.hit[data-doc-id='{first_id}'] .grade[data-grade='2']")).to_have_attribute(
        "aria-pressed", "true")
    expect(page.locator(f"li.hit[data-doc-id='{second_id}'] .grade[data-grade='1']")).to_have_attribute(
        "aria-pressed", "false")
    # the nDCG@10 the server computes, shown on the page
    summary = httpx.get(page_url + "judgments/summary", params={"query": query}, timeout=300).json()
    assert summary["query"]["judged"] == 2 and summary["judgments"] >= 2
    expect(page.locator("#judging")).to_contain_text(f"nDCG@10 {summary['query']['ndcg_at_10']:.3f}",
                                                     timeout=300_000)
    expect(page.locator("#judging")).not_to_contain_text("Computing")
