"""Retrieval-augmented generation, the retrieval half: find sources, then build a prompt that cites them.

    python examples/rag_pipeline.py "How long until my parcel arrives?"
    python examples/rag_pipeline.py "..." --server http://127.0.0.1:8000   # the same, from 'retriever serve'
    python examples/rag_pipeline.py "..." --via langchain                   # through the LangChain adapter
    python examples/rag_pipeline.py "..." --max-tokens 1000                 # Retriever.context_for: a budget

It indexes examples/sample-corpus the first time (into indexes/sample-corpus) and prints the prompt
a language model would be given: numbered sources, each with its document id and the character
range it was taken from, and the instruction to cite them as [1], [2]. With ``--max-tokens`` the sources
are ``context_for``'s: the best passages with their neighbours, near-copies once, within that many tokens.
No model is needed to run it; send the prompt to the one you use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "sample-corpus"

INSTRUCTIONS = (
    "Answer the question using only the numbered sources below. Cite every claim with the number of "
    "its source in square brackets, e.g. [2]. If the sources do not contain the answer, say so."
)


def open_searcher(index: Path, server: str | None, model: str | None) -> Any:
    """Anything with ``search(query, k=...)``: a server's client, or the index in this process.

    This is the one line that changes between in-process and remote retrieval.
    """
    if server:
        from retriever.client import Client

        return Client(server)
    from retriever import Retriever

    if (index / "CURRENT").exists():
        return Retriever.load(index)
    return Retriever.build(CORPUS, index_dir=index, model=model)


def retrieve(searcher: Any, question: str, k: int, via: str) -> list[dict[str, Any]]:
    """The top k passages as plain dicts (text plus where it came from), whichever way they are fetched."""
    if via == "langchain":
        from retriever.integrations import langchain

        documents = langchain.as_retriever(searcher, k=k).invoke(question)
        return [{"text": d.page_content, **d.metadata} for d in documents]
    if via == "llamaindex":
        from retriever.integrations import llamaindex

        nodes = llamaindex.as_retriever(searcher, k=k).retrieve(question)
        return [{"text": n.node.get_content(), **n.node.metadata} for n in nodes]
    from retriever.integrations import hit_metadata

    return [{"text": hit.text, **hit_metadata(hit)} for hit in searcher.search(question, k=k)]


def assemble(searcher: Any, question: str, k: int, max_tokens: int) -> list[dict[str, Any]]:
    """Sources from ``context_for``: ranked, widened by a neighbour on each side, de-duplicated, within budget."""
    return [part.to_dict() for part in searcher.context_for(question, max_tokens=max_tokens, k=k)]


def build_prompt(question: str, sources: list[dict[str, Any]]) -> str:
    """The prompt: instructions, numbered sources with their provenance, the question."""
    blocks = []
    for number, source in enumerate(sources, start=1):
        label = source.get("title") or source.get("source") or source["doc_id"]
        where = f"{source['doc_id']}, characters {source['start']}-{source['end']}"
        text = " ".join(source["text"].split())
        blocks.append(f"[{number}] {label} ({where})\n{text}")
    return f"{INSTRUCTIONS}\n\nSources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer:"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="How long until my parcel arrives?")
    parser.add_argument("-k", type=int, default=3, help="Sources to retrieve.")
    parser.add_argument("--index", type=Path, default=Path("indexes/sample-corpus"))
    parser.add_argument("--server", default=None, help="URL of a 'retriever serve' server instead of --index.")
    parser.add_argument("--via", choices=["retriever", "langchain", "llamaindex"], default="retriever",
                        help="Retrieve directly or through a RAG framework's retriever.")
    parser.add_argument("--model", default=None, help="Model for a new index (default: all-MiniLM-L6-v2).")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="Assemble the sources with context_for within this many tokens (with --via retriever).")
    args = parser.parse_args(argv)
    searcher = open_searcher(args.index, args.server, args.model)
    if args.max_tokens is not None and args.via == "retriever":
        sources = assemble(searcher, args.question, args.k, args.max_tokens)
    else:
        sources = retrieve(searcher, args.question, args.k, args.via)
    prompt = build_prompt(args.question, sources)
    print(prompt)
    return prompt


if __name__ == "__main__":
    main()
