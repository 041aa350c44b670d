"""LangChain's own standard suites (``langchain-tests``) against ``RetrieverVectorStore`` and ``LangChainRetriever``.

Each vector store test gets a new empty index; all share one loaded tiny model, so a store costs a folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="needs the 'langchain' extra: pip install 'retriever[langchain]'")
pytest.importorskip("langchain_tests", reason="needs the 'dev' extra (langchain-tests)")

from langchain_tests.integration_tests import (  # noqa: E402
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from retriever import Retriever  # noqa: E402
from retriever.encoding.encoder import Encoder  # noqa: E402
from retriever.integrations.langchain import LangChainRetriever, RetrieverVectorStore  # noqa: E402

PASSAGES = ["cats sleep in the sun", "dogs love a walk in the garden", "the train to the coast leaves at nine",
            "grind the coffee before you brew the tea", "a refund is paid to your card"]


class TestRetrieverVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path, tiny_encoder: Encoder) -> Iterator[RetrieverVectorStore]:
        store = RetrieverVectorStore.create(tmp_path / "index", encoder=tiny_encoder)
        try:
            yield store
        finally:
            store.searcher.close()


class TestRetrieverVectorStoreOverServer(VectorStoreIntegrationTests):
    """The same suite with the store over a ``Client`` of ``retriever serve`` (a server per test, on a new index)."""

    @pytest.fixture
    def vectorstore(self, tmp_path: Path, tiny_encoder: Encoder, start_server: Any) -> Iterator[RetrieverVectorStore]:
        pytest.importorskip("fastapi", reason="needs the 'serve' extra: pip install 'retriever[serve]'")
        from retriever.client import Client
        from retriever.serve.app import create_app

        Retriever.create(tmp_path / "index", encoder=tiny_encoder).close()
        with Client(start_server(create_app(tmp_path / "index"))) as remote:
            yield RetrieverVectorStore(remote)


@pytest.fixture(scope="module")
def passages_index(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Encoder) -> Iterator[Retriever]:
    records = [{"_id": f"p{i}", "text": text} for i, text in enumerate(PASSAGES)]
    with Retriever.build(records, index_dir=tmp_path_factory.mktemp("lc") / "index", encoder=tiny_encoder) as built:
        yield built


class TestLangChainRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _index(self, request: pytest.FixtureRequest, passages_index: Retriever) -> None:
        request.instance.searcher = passages_index

    @property
    def retriever_constructor(self) -> type[LangChainRetriever]:
        return LangChainRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"searcher": self.searcher}

    @property
    def retriever_query_example(self) -> str:
        return "where do cats sleep"
