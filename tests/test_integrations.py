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


def test_langchain_invoke_returns_documents_with_metadata_and_score(retriever: Retriever) -> None:
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra: pip install 'retriever[langchain]'")
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    adapter = retriever.as_langchain(k=2)
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
    lexical = retriever.as_langchain(k=3, mode="lexical", where="year>=2020").invoke("train coast")
    assert [d.id for d in lexical] == ["guides/trains.md"]
    assert [d.id for d in adapter.batch(["cats sun", "dogs garden"])[1]] == [
        h.doc_id for h in retriever.search("dogs garden", k=2)]


def test_llamaindex_retrieve_returns_nodes_with_scores(retriever: Retriever) -> None:
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra: pip install 'retriever[llamaindex]'")
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    adapter = retriever.as_llamaindex(k=2)
    assert isinstance(adapter, BaseRetriever)
    nodes = adapter.retrieve("cats in the sun")
    hits = retriever.search("cats in the sun", k=2)
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    assert [n.node.ref_doc_id for n in nodes] == [h.doc_id for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits])
    assert nodes[0].node.get_content() == hits[0].text
    assert (nodes[0].node.start_char_idx, nodes[0].node.end_char_idx) == (hits[0].start, hits[0].end)
    assert nodes[0].node.metadata["year"] == hits[0].metadata["year"]
    lexical = retriever.as_llamaindex(k=3, mode="lexical").retrieve("train coast")
    assert lexical[0].node.ref_doc_id == "guides/trains.md"
    with pytest.raises(ValueError):
        retriever.as_llamaindex(k=0)


def test_adapters_work_the_same_over_a_server(retriever: Retriever, tmp_path: Path, start_server: Callable) -> None:
    pytest.importorskip("fastapi", reason="needs the 'serve' extra: pip install 'retriever[serve]'")
    pytest.importorskip("langchain_core", reason="needs the 'langchain' extra")
    pytest.importorskip("llama_index.core", reason="needs the 'llamaindex' extra")
    from retriever.client import Client
    from retriever.serve.app import create_app

    url = start_server(create_app(tmp_path / "idx"))
    with Client(url) as remote:
        assert [d.id for d in remote.as_langchain(k=2).invoke("dogs garden")] == [
            d.id for d in retriever.as_langchain(k=2).invoke("dogs garden")]
        assert [n.node.ref_doc_id for n in remote.as_llamaindex(k=2).retrieve("dogs garden")] == [
            n.node.ref_doc_id for n in retriever.as_llamaindex(k=2).retrieve("dogs garden")]


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
