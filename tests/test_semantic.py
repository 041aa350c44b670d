"""Search by meaning with the real default model (all-MiniLM-L6-v2, shipped offline).

Each query shares no content word with the document it must find first, so these use dense
search: it is the encoder, not BM25, that must find them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from retriever import Retriever

DOCS = {
    "password.md": "# Resetting your password\n\nOpen the login page and choose 'Forgot password'. "
                   "We email you a link; follow it to pick a new passphrase for your account.",
    "coffee.txt": "Grind the beans just before brewing. Pour water at about 94 degrees over the grounds "
                  "and let the French press steep for four minutes before pressing the plunger.",
    "tomatoes.txt": "Tomato seedlings want six to eight hours of direct sun, deep watering twice a week "
                    "and a stake or cage once the vines start to sprawl.",
    "parcels.txt": "Orders leave our warehouse within two working days. The courier emails a tracking "
                   "number, and most shipments reach the customer's doorstep three days later.",
    "sleep.txt": "Adults need seven to nine hours of rest each night; a regular bedtime and a dark, "
                 "cool bedroom make it easier to fall asleep.",
}


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    folder = tmp_path_factory.mktemp("semantic") / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return Retriever.build(folder, index_dir=folder.parent / "index")  # default model


def test_query_without_shared_words_finds_its_answer_first(retriever: Retriever) -> None:
    info = retriever.info()
    assert info["model"]["name"] == "all-MiniLM-L6-v2" and info["model"]["dimension"] == 384
    hits = retriever.search("I can't remember how to sign in", k=5, mode="dense")
    assert hits[0].doc_id == "password.md"
    assert hits[0].title == "Resetting your password"
    assert hits[0].score > hits[1].score


def test_paraphrased_queries_find_their_documents(retriever: Retriever) -> None:
    queries = {
        "when will my package show up": "parcels.txt",
        "how do I make a good cup of joe": "coffee.txt",
        "growing vegetables in the backyard": "tomatoes.txt",
        "I lie awake until 3am": "sleep.txt",
    }
    results = retriever.search_many(list(queries), k=3, mode="dense")
    assert [hits[0].doc_id for hits in results] == list(queries.values())
    loaded = Retriever.load(Path(retriever.info()["index"]), model="all-MiniLM-L6-v2")
    assert loaded.search("locked out, cannot get into my profile", k=1, mode="dense")[0].doc_id == "password.md"
