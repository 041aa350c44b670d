"""The LangChain and LlamaIndex adapters against the real packages, and the RAG example."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from retriever import Retriever

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def retriever(records_index: Path) -> Retriever:
    with Retriever.load(records_index) as loaded:  # cats, dogs, guides/trains.md, coffee
        yield loaded



def langchain_retriever(searcher: object, **options: object) -> object:
    from retriever.integrations.langchain import as_retriever

    return as_retriever(searcher, **options)


def llamaindex_retriever(searcher: object, **options: object) -> object:
    from retriever.integrations.llamaindex import as_retriever

    return as_retriever(searcher, **options)


def test_langchain_invoke_returns_documents_with_metadata_and_score(retriever: Retriever) -> None:
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra: pip install 'retriever[langchain]'")
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    adapter = langchain_retriever(retriever, k=2)
    assert isinstance(adapter, BaseRetriever)
    documents = adapter.invoke("cats in the sun")
    hits = retriever.search("cats in the sun", k=2)
    assert all(isinstance(d, Document) for d in documents)
    assert [d.id for d in documents] == [h.doc_id for h in hits]
    first = documents[0]
    assert first.page_content == hits[0].text
    assert first.metadata["score"] == pytest.approx(hits[0].score)
    assert first.metadata["doc_id"] == hits[0].doc_id and first.metadata["title"] == hits[0].title
    assert first.metadata["year"] == hits[0].metadata["year"]
    assert {"start", "end", "passage_id", "source"} <= set(first.metadata)
    assert (first.metadata["snippet"], first.metadata["highlights"]) == (hits[0].snippet, hits[0].highlights)
    lexical = langchain_retriever(retriever, k=3, mode="lexical", where="year>=2020").invoke("train coast")
    assert [d.id for d in lexical] == ["guides/trains.md"]
    assert lexical[0].metadata["highlights"] and lexical[0].metadata["snippet"]
    assert [d.id for d in adapter.invoke("train coast", k=1, mode="lexical")] == ["guides/trains.md"]  # per call
    assert [d.id for d in adapter.batch(["cats sun", "dogs garden"])[1]] == [
        h.doc_id for h in retriever.search("dogs garden", k=2)]


def test_llamaindex_retrieve_returns_nodes_with_scores(retriever: Retriever) -> None:
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra: pip install 'retriever[llamaindex]'")
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    adapter = llamaindex_retriever(retriever, k=2)
    assert isinstance(adapter, BaseRetriever)
    nodes = adapter.retrieve("cats in the sun")
    hits = retriever.search("cats in the sun", k=2)
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    assert [n.node.ref_doc_id for n in nodes] == [h.doc_id for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits])
    assert nodes[0].node.get_content() == hits[0].text
    assert (nodes[0].node.start_char_idx, nodes[0].node.end_char_idx) == (hits[0].start, hits[0].end)
    assert nodes[0].node.metadata["year"] == hits[0].metadata["year"]
    lexical = llamaindex_retriever(retriever, k=3, mode="lexical").retrieve("train coast")
    assert lexical[0].node.ref_doc_id == "guides/trains.md"
    with pytest.raises(ValueError):
        llamaindex_retriever(retriever, k=0)


def test_adapters_work_the_same_over_a_server(retriever: Retriever, tmp_path: Path, start_server: Callable) -> None:
    pytest.importorskip("fastapi", reason="needs the 'serve' extra: pip install 'retriever[serve]'")
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra")
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra")
    from retriever.client import Client
    from retriever.serve.app import create_app

    url = start_server(create_app(tmp_path / "idx"))
    with Client(url) as remote:
        assert [d.id for d in langchain_retriever(remote, k=2).invoke("dogs garden")] == [
            d.id for d in langchain_retriever(retriever, k=2).invoke("dogs garden")]
        assert [n.node.ref_doc_id for n in llamaindex_retriever(remote, k=2).retrieve("dogs garden")] == [
            n.node.ref_doc_id for n in llamaindex_retriever(retriever, k=2).retrieve("dogs garden")]


def load_example() -> object:
    spec = importlib.util.spec_from_file_location("rag_pipeline", EXAMPLES / "rag_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rag_pipeline"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("via", ["retriever", "langchain", "llamaindex"])
def test_rag_example_builds_a_prompt_that_cites_its_sources(via: str, tmp_path: Path, tiny_model: str,
                                                           capsys: pytest.CaptureFixture) -> None:
    if via != "retriever":
        pytest.importorskip({"langchain": "langchain_core", "llamaindex": "llama_index.core"}[via],
                            reason=f"needs the '{via}' extra")
    example = load_example()
    index = tmp_path / "sample"
    prompt = example.main(["How long until my parcel arrives?", "-k", "3", "--index", str(index), "--model",
                           tiny_model, "--via", via])
    assert prompt == capsys.readouterr().out.rstrip("\n")
    hits = Retriever.load(index).search("How long until my parcel arrives?", k=3)
    assert prompt.startswith(example.INSTRUCTIONS)
    for number, hit in enumerate(hits, start=1):
        assert f"[{number}] " in prompt and f"({hit.doc_id}, characters {hit.start}-{hit.end})" in prompt
    assert prompt.rstrip().endswith("Question: How long until my parcel arrives?\nAnswer:")


# vector stores --------------------------------------------------------------------------------------------------
STORE_TEXTS = ["cats sleep in the sun all day", "dogs love a walk in the garden",
               "the train to the coast leaves at nine", "grind the coffee before you brew the tea"]
STORE_METADATA = [{"year": 2021, "kind": "pets"}, {"year": 2019, "kind": "pets"}, {"year": 2020, "kind": "travel"},
                  {"year": 2022, "kind": "food"}]


@pytest.fixture
def lc_store(tmp_path: Path, tiny_encoder: object) -> object:
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra")
    from retriever.integrations.langchain import RetrieverVectorStore

    store = RetrieverVectorStore.create(tmp_path / "store", encoder=tiny_encoder,
                                        search_options={"mode": "dense"})
    store.add_texts(STORE_TEXTS, STORE_METADATA, ids=["cats", "dogs", "trains", "coffee"])
    yield store
    store.searcher.close()


def test_langchain_vector_store_searches_with_scores_filters_and_thresholds(lc_store: object) -> None:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import VectorStore

    assert isinstance(lc_store, VectorStore)
    scored = lc_store.similarity_search_with_score("cats sleep in the sun all day", k=4)
    assert scored[0] == (Document(id="cats", page_content=STORE_TEXTS[0], metadata=STORE_METADATA[0]),
                         pytest.approx(1.0, abs=1e-4))  # the same text: cosine 1, metadata as added
    assert [d.id for d, _ in scored] == [h.doc_id for h in lc_store.searcher.search(STORE_TEXTS[0], k=4, mode="dense")]
    assert [d.id for d in lc_store.similarity_search("cats", k=4, filter={"kind": "pets"})] in (
        ["cats", "dogs"], ["dogs", "cats"])
    assert [d.id for d in lc_store.similarity_search("cats", k=4, filter="year>=2021", where="kind=food")] == [
        "coffee"]
    threshold = lc_store.as_retriever(search_type="similarity_score_threshold",
                                      search_kwargs={"score_threshold": 0.9999, "k": 4})
    assert [d.id for d in threshold.invoke(STORE_TEXTS[2])] == ["trains"]
    assert [d.id for d in lc_store.as_retriever(search_kwargs={"k": 1}).invoke(STORE_TEXTS[1])] == ["dogs"]
    assert lc_store.get_by_ids(["coffee", "nothing", "cats"]) == [
        Document(id="coffee", page_content=STORE_TEXTS[3], metadata=STORE_METADATA[3]),
        Document(id="cats", page_content=STORE_TEXTS[0], metadata=STORE_METADATA[0])]


def test_langchain_vector_store_refuses_what_it_cannot_do(lc_store: object, tmp_path: Path) -> None:
    from retriever.errors import RetrieverError
    from retriever.integrations.langchain import RetrieverVectorStore

    lexical = RetrieverVectorStore(lc_store.searcher, mode="lexical")
    with pytest.raises(RetrieverError, match="no 0-1 relevance score"):
        lexical.similarity_search_with_relevance_scores("cats", k=2)
    with pytest.raises(RetrieverError, match="ids"):
        lc_store.delete()
    with pytest.raises(RetrieverError, match="already exists"):
        RetrieverVectorStore.create(tmp_path / "store")
    with pytest.raises(RetrieverError, match="filter"):
        lc_store.similarity_search("cats", filter=42)
    with pytest.raises(RetrieverError, match="model="):
        RetrieverVectorStore.from_texts(["a"], embedding=object(), index_dir=tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_create_writes_an_empty_index_that_loads(tmp_path: Path, tiny_encoder: object) -> None:
    Retriever.create(tmp_path / "empty", encoder=tiny_encoder).close()
    with Retriever.load(tmp_path / "empty") as loaded:
        assert len(loaded) == 0 and loaded.search("cats", k=3) == [] and loaded.info()["counts"]["documents"] == 0


def test_langchain_vector_store_from_texts_makes_an_index_that_loads(tmp_path: Path, tiny_model: str) -> None:
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra")
    from retriever.integrations.langchain import RetrieverVectorStore

    store = RetrieverVectorStore.from_texts(STORE_TEXTS[:2], metadatas=STORE_METADATA[:2], index_dir=tmp_path / "s",
                                            model=tiny_model)
    store.searcher.close()
    with Retriever.load(tmp_path / "s") as loaded:
        assert len(loaded) == 2 and {h.text for h in loaded.search("cats", k=2)} == set(STORE_TEXTS[:2])


@pytest.fixture
def near_copies(tmp_path: Path, tiny_encoder: object) -> Retriever:
    """Two documents with the same text and a third: MMR must not return both copies."""
    records = [{"_id": "a1", "text": STORE_TEXTS[0]}, {"_id": "a2", "text": STORE_TEXTS[0]},
               {"_id": "b", "text": STORE_TEXTS[1]}, {"_id": "c", "text": STORE_TEXTS[2]}]
    with Retriever.build(records, index_dir=tmp_path / "copies", encoder=tiny_encoder) as built:
        yield built


def test_langchain_mmr_leaves_out_a_near_copy(near_copies: Retriever) -> None:
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra")
    from retriever.integrations.langchain import RetrieverVectorStore

    store = RetrieverVectorStore(near_copies, mode="dense")
    assert {d.id for d in store.similarity_search(STORE_TEXTS[0], k=2)} == {"a1", "a2"}
    diverse = store.max_marginal_relevance_search(STORE_TEXTS[0], k=2, fetch_k=4, lambda_mult=0.3)
    assert len(diverse) == 2 and diverse[0].id in {"a1", "a2"} and diverse[1].id not in {"a1", "a2"}
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.3})
    assert [d.id for d in mmr.invoke(STORE_TEXTS[0])] == [d.id for d in diverse]
    relevance_only = store.max_marginal_relevance_search(STORE_TEXTS[0], k=2, fetch_k=4, lambda_mult=1.0)
    assert {d.id for d in relevance_only} == {"a1", "a2"}


def test_llamaindex_mmr_leaves_out_a_near_copy(near_copies: Retriever) -> None:
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra")
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from retriever.errors import RetrieverError
    from retriever.integrations.llamaindex import RetrieverVectorStore

    store = RetrieverVectorStore(near_copies, mode="dense")
    plain = store.query(VectorStoreQuery(query_str=STORE_TEXTS[0], similarity_top_k=2))
    assert set(plain.ids) == {"a1", "a2"}
    diverse = store.query(VectorStoreQuery(query_str=STORE_TEXTS[0], similarity_top_k=2,
                                           mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3))
    assert diverse.ids[0] in {"a1", "a2"} and diverse.ids[1] not in {"a1", "a2"}
    assert store.query(VectorStoreQuery(query_str=STORE_TEXTS[0], similarity_top_k=2, mode="mmr",
                                        mmr_threshold=0.3)).ids == diverse.ids
    with pytest.raises(RetrieverError, match="'svm' is not supported"):
        store.query(VectorStoreQuery(query_str="cats", mode=VectorStoreQueryMode.SVM))


def pets_nodes() -> list:
    """Three nodes of source document 'pets' and one of 'travel', as a LlamaIndex splitter would make them."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    def node(node_id: str, text: str, source: str, year: int) -> TextNode:
        return TextNode(id_=node_id, text=text, metadata={"year": year, "kind": source},
                        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=source)})

    return [node("n1", STORE_TEXTS[0], "pets", 2021), node("n2", STORE_TEXTS[1], "pets", 2019),
            node("n3", "a cat and a dog in the garden", "pets", 2020), node("n4", STORE_TEXTS[2], "travel", 2020)]


def test_llamaindex_vector_store_adds_queries_filters_and_deletes(tmp_path: Path, tiny_encoder: object,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra")
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
    )

    from retriever.errors import RetrieverError
    from retriever.integrations import llamaindex

    store = llamaindex.RetrieverVectorStore.create(tmp_path / "li", encoder=tiny_encoder)
    assert isinstance(store, BasePydanticVectorStore) and store.client is store.client
    nodes = pets_nodes()
    assert store.add(nodes) == ["n1", "n2", "n3", "n4"]
    result = store.query(VectorStoreQuery(query_str=STORE_TEXTS[2], similarity_top_k=2))
    assert result.ids[0] == "n4" and len(result.nodes) == len(result.similarities) == 2
    found = result.nodes[0]
    assert (found.node_id, found.ref_doc_id, found.get_content(), found.metadata) == (
        "n4", "travel", STORE_TEXTS[2], {"year": 2020, "kind": "travel"})
    recent_pets = MetadataFilters(filters=[MetadataFilter(key="kind", value="pets"),
                                           MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE)])
    filtered = store.query(VectorStoreQuery(query_str="cats", similarity_top_k=4, filters=recent_pets))
    assert sorted(filtered.ids) == ["n1", "n3"]
    lexical = store.query(VectorStoreQuery(query_str="coast", similarity_top_k=4, mode=VectorStoreQueryMode.SPARSE))
    assert lexical.ids == ["n4"]
    hybrid = store.query(VectorStoreQuery(query_str="coast", similarity_top_k=1, mode=VectorStoreQueryMode.HYBRID,
                                          alpha=0.0))  # 0: all lexical, as in LlamaIndex
    assert hybrid.ids == ["n4"]
    assert [n.node_id for n in store.get_nodes(["n2", "missing", "n1"])] == ["n2", "n1"]
    with pytest.raises(RetrieverError, match="'in' is not supported"):
        store.query(VectorStoreQuery(query_str="cats", filters=MetadataFilters(
            filters=[MetadataFilter(key="year", value=[2020], operator=FilterOperator.IN)])))
    with pytest.raises(RetrieverError, match="'or'"):
        store.query(VectorStoreQuery(query_str="cats", filters=MetadataFilters(
            filters=recent_pets.filters, condition=FilterCondition.OR)))
    with pytest.raises(RetrieverError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=[0.1] * 32))

    monkeypatch.setattr(llamaindex, "DELETE_BATCH", 2)  # three nodes of 'pets': found and removed in two rounds
    store.delete("pets")
    assert len(store.client) == 1
    assert store.query(VectorStoreQuery(query_str="cats", similarity_top_k=4)).ids == ["n4"]
    store.delete_nodes(["n4"])
    assert len(store.client) == 0
    store.client.close()


def test_llamaindex_vector_store_serves_a_vector_store_index(tmp_path: Path, tiny_encoder: object) -> None:
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra")
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    from retriever.integrations.llamaindex import RetrieverVectorStore

    store = RetrieverVectorStore.create(tmp_path / "li", encoder=tiny_encoder)
    index = VectorStoreIndex.from_vector_store(store, embed_model=MockEmbedding(embed_dim=4))
    index.insert_nodes(pets_nodes())
    retrieved = index.as_retriever(similarity_top_k=2).retrieve(STORE_TEXTS[1])
    assert retrieved[0].node.node_id == "n2" and retrieved[0].node.get_content() == STORE_TEXTS[1]
    store.client.close()


def test_vector_stores_work_over_a_server(tmp_path: Path, tiny_encoder: object, start_server: Callable) -> None:
    pytest.importorskip("fastapi", reason="needs the 'serve' extra: pip install 'retriever[serve]'")
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra")
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra")
    from langchain_core.documents import Document
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery

    from retriever.client import Client
    from retriever.integrations import langchain, llamaindex
    from retriever.serve.app import create_app

    Retriever.create(tmp_path / "served", encoder=tiny_encoder).close()
    with Client(start_server(create_app(tmp_path / "served"))) as remote:
        lc = langchain.RetrieverVectorStore(remote, mode="dense")
        added = [Document(page_content="foo", metadata={"id": 1}), Document(page_content="bar", metadata={"id": 2})]
        ids = lc.add_documents(added, ids=["1", "2"])  # a metadata field named 'id' survives the trip
        assert lc.similarity_search("bar", k=2) == [Document(id="2", page_content="bar", metadata={"id": 2}),
                                                    Document(id="1", page_content="foo", metadata={"id": 1})]
        assert lc.similarity_search("bar", k=2, filter={"id": 1}) == [added[0].model_copy(update={"id": "1"})]
        assert lc.get_by_ids(ids[::-1])[0].metadata == {"id": 2}
        lc.delete(ids)
        assert lc.similarity_search("bar", k=2) == []

        li = llamaindex.RetrieverVectorStore(remote)
        li.add(pets_nodes())
        pets = MetadataFilters(filters=[MetadataFilter(key="kind", value="pets")])
        result = li.query(VectorStoreQuery(query_str="cats", similarity_top_k=4, filters=pets))
        assert sorted(result.ids) == ["n1", "n2", "n3"] and result.nodes[0].ref_doc_id == "pets"
        li.delete("pets")
        assert li.query(VectorStoreQuery(query_str="cats", similarity_top_k=4)).ids == ["n4"]
