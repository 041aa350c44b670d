"""Relevance judgments of an index's search results, kept next to the index (``judgments.sqlite``).

A layer just above ``retriever.index``: the facade, the server, the CLI and ``retriever tune`` read and write
them through ``JudgmentStore``; scoring and BEIR export live in ``retriever.eval``.
"""

from retriever.judgments.store import GRADES, Judgment, JudgmentStore

__all__ = ["GRADES", "Judgment", "JudgmentStore"]
