"""The Haystack document store against Haystack's own test helpers, and the retriever component in a pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("haystack", reason="needs the 'haystack' extra: pip install 'retriever[haystack]'")

from haystack import Document, Pipeline  # noqa: E402
from haystack.document_stores.types import DuplicatePolicy  # noqa: E402
from haystack.errors import FilterError  # noqa: E402
from haystack.testing.document_store import (  # noqa: E402
    CountDocumentsTest,
    DeleteDocumentsTest,
    WriteDocumentsTest,
)

from retriever import Retriever  # noqa: E402
from retriever.integrations.haystack import HaystackRetriever, RetrieverDocumentStore  # noqa: E402

TEXTS = ["cats sleep in the sun all day", "dogs love a walk in the garden", "the train to the coast leaves at nine"]


class TestRetrieverDocumentStore(CountDocumentsTest, WriteDocumentsTest, DeleteDocumentsTest):
    @pytest.fixture
    def document_store(self, tmp_path: Path, tiny_encoder: Any) -> Iterator[RetrieverDocumentStore]:
        store = RetrieverDocumentStore.create(tmp_path / "index", encoder=tiny_encoder)
        yield store
        store.searcher.close()

    def test_write_documents(self, document_store: RetrieverDocumentStore) -> None:
        """The default policy replaces a document with the same id, as the engine's add does."""
        doc = Document(content="test doc", meta={"year": 2021})
        assert document_store.write_documents([doc]) == 1
        changed = Document(id=doc.id, content="test doc changed")
        assert document_store.write_documents([changed]) == 1
        assert document_store.filter_documents() == [changed]


def pets(store: RetrieverDocumentStore) -> list[Document]:
    docs = [Document(id=f"d{i}", content=text, meta={"year": 2019 + i, "kind": "pets" if i < 2 else "travel"})
            for i, text in enumerate(TEXTS)]
    store.write_documents(docs, policy=DuplicatePolicy.OVERWRITE)
    return docs


def test_filter_documents_takes_haystack_filters(tmp_path: Path, tiny_encoder: Any) -> None:
    store = RetrieverDocumentStore.create(tmp_path / "index", encoder=tiny_encoder)
    docs = pets(store)
    assert sorted(store.filter_documents(), key=lambda d: d.id) == docs
    recent_pets = {"operator": "AND", "conditions": [{"field": "meta.kind", "operator": "==", "value": "pets"},
                                                     {"field": "meta.year", "operator": ">=", "value": 2020}]}
    assert store.filter_documents(recent_pets) == [docs[1]]
    assert store.filter_documents({"field": "id", "operator": "!=", "value": "d0"}) in ([docs[1], docs[2]],
                                                                                       [docs[2], docs[1]])
    with pytest.raises(FilterError, match="only AND"):
        store.filter_documents({"operator": "OR", "conditions": recent_pets["conditions"]})
    with pytest.raises(FilterError, match="'in' is not supported"):
        store.filter_documents({"field": "meta.year", "operator": "in", "value": [2019]})
    with pytest.raises(FilterError, match="missing value"):
        store.filter_documents({"field": "meta.year", "operator": "=="})
    store.searcher.close()


def test_retriever_component_runs_in_a_pipeline_and_serialises(tmp_path: Path, tiny_encoder: Any) -> None:
    store = RetrieverDocumentStore.create(tmp_path / "index", encoder=tiny_encoder, search_options={"mode": "dense"})
    docs = pets(store)
    pipeline = Pipeline()
    pipeline.add_component("retriever", HaystackRetriever(store, top_k=2))
    found = pipeline.run({"retriever": {"query": TEXTS[2]}})["retriever"]["documents"]
    assert [d.id for d in found] == [h.doc_id for h in store.searcher.search(TEXTS[2], k=2, mode="dense")]
    assert found[0].id == "d2" and found[0].score == pytest.approx(1.0, abs=1e-4) and found[0].meta == docs[2].meta
    filtered = pipeline.run({"retriever": {"query": TEXTS[2], "top_k": 3,
                                           "filters": {"field": "meta.kind", "operator": "==", "value": "pets"}}})
    assert {d.id for d in filtered["retriever"]["documents"]} == {"d0", "d1"}
    store.searcher.close()
    again = Pipeline.loads(pipeline.dumps(), allowed_modules=["retriever.integrations.haystack"])  # reopens the index
    assert [d.id for d in again.run({"retriever": {"query": TEXTS[2]}})["retriever"]["documents"]] == [
        d.id for d in found]
    again.get_component("retriever").document_store.searcher.close()


def test_document_store_works_over_a_server(tmp_path: Path, tiny_encoder: Any, start_server: Callable) -> None:
    pytest.importorskip("fastapi", reason="needs the 'serve' extra: pip install 'retriever[serve]'")
    from retriever.client import Client
    from retriever.serve.app import create_app

    Retriever.create(tmp_path / "served", encoder=tiny_encoder).close()
    with Client(start_server(create_app(tmp_path / "served"))) as remote:
        store = RetrieverDocumentStore(remote)
        docs = pets(store)
        assert store.count_documents() == 3
        assert store.filter_documents({"field": "meta.year", "operator": "<", "value": 2020}) == [docs[0]]
        assert HaystackRetriever(store, top_k=1).run("coast train")["documents"][0].id == "d2"
        assert HaystackRetriever.from_dict(HaystackRetriever(store).to_dict()).document_store.searcher.url == remote.url
        store.delete_documents(["d0", "d1"])
        assert store.filter_documents() == [docs[2]]
