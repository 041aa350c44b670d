"""Where tune's judgments come from: the index's judgment store, or a BEIR folder (queries + qrels)."""

from __future__ import annotations

from pathlib import Path

from retriever.errors import RetrieverError
from retriever.eval.beir import read_qrels, read_queries

QrelsByText = dict[str, dict[str, int]]


def beir_judgments(folder: str | Path, split: str | None = None) -> QrelsByText:
    """Query text -> doc id -> grade from ``queries.jsonl`` and ``qrels/SPLIT.tsv`` (every split if None)."""
    folder = Path(folder)
    if not (folder / "queries.jsonl").is_file():
        raise RetrieverError(f"{folder} is not a BEIR judgments folder: queries.jsonl is missing")
    files = [folder / "qrels" / f"{split}.tsv"] if split else sorted((folder / "qrels").glob("*.tsv"))
    missing = [f for f in files if not f.is_file()]
    if not files or missing:
        name = missing[0].relative_to(folder) if missing else "qrels/*.tsv"
        raise RetrieverError(f"{folder} is not a BEIR judgments folder: {name} is missing")
    queries = read_queries(folder / "queries.jsonl")
    out: QrelsByText = {}
    for path in files:
        for qid, docs in read_qrels(path).items():
            if qid in queries:
                out.setdefault(queries[qid], {}).update(docs)
    return out


def stored_judgments(index_dir: str | Path) -> QrelsByText:
    """The judgments people gave on the index's search page (``retriever.judgments``)."""
    try:
        from retriever.judgments import JudgmentStore  # type: ignore[attr-defined]
    except ImportError:
        raise RetrieverError(f"no judgments for index {index_dir}: this version has no judgment store; "
                             "pass --judgments BEIR_DIR") from None
    return JudgmentStore(index_dir).qrels()
