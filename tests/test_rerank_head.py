"""The learned nonlinear metric: formula, training, and reranking through the engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from retriever.retriever import Retriever
from retriever.search.rerank import HeadExamples, RerankHead, train_head

WORDS = ["cat", "dog", "fish", "bird", "car", "train", "music", "coffee"]


def test_an_untrained_head_scores_by_cosine() -> None:
    head = RerankHead(4, hidden=8)
    u = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    v = torch.tensor([[0.6, 0.8, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    assert head(u, v).tolist() == pytest.approx([0.6, 0.0])


def test_training_puts_the_trained_positive_first() -> None:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(20, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[:10] * 0.9 + 0.1 * rng.normal(size=(10, 8)).astype(np.float32)
    # the positive of query i is document i + 10, which the cosine does not rank first
    examples = HeadExamples(queries, docs, np.arange(10, 20), np.stack([np.arange(10)] * 10))
    before = RerankHead(8).score(queries[0], docs[[0, 10]])
    head, losses = train_head(examples, epochs=200, lr=1e-2, seed=0, hidden=32)
    after = head.score(queries[0], docs[[0, 10]])
    assert before[0] > before[1] and after[1] > after[0]
    assert losses[-1] < losses[0]


def test_search_rerank_uses_the_head_saved_with_the_model(tmp_path: Path, tiny_model: str) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    records = [{"_id": w, "text": f"all about the {w}"} for w in WORDS]
    r = Retriever.build(records, index_dir=tmp_path / "index", model=str(model))
    query = "the cat"
    dense = [h.doc_id for h in r.search(query, k=len(WORDS), mode="dense")]
    target = dense[-1]  # the dense search ranks it last: teach the head to rank it first
    qvec = r.encoder.encode_queries([query])
    doc_vectors = r.snapshot.vectors_of([key for d in dense for key in r.snapshot.passage_keys(d)])
    position = dense.index(target)
    negatives = [i for i in range(len(dense)) if i != position]
    examples = HeadExamples(qvec, doc_vectors, np.asarray([position]), np.asarray([negatives]))
    head, _ = train_head(examples, epochs=300, lr=1e-2, seed=0, hidden=32)
    head.save(model)
    reloaded = Retriever.load(tmp_path / "index")  # the head does not change the model's fingerprint
    reranked = reloaded.search(query, k=3, mode="dense", rerank=len(WORDS))
    assert reranked[0].doc_id == target
    explained = reloaded.search(query, k=3, mode="dense", rerank=len(WORDS), explain=True)  # issue 20
    for hit in explained:  # the head's score is the hit's; the dense side's own rank and score stay as searched
        e = hit.explanation
        assert e.reranked == hit.score and e.dense_rank == dense.index(hit.doc_id) + 1
    assert explained[0].explanation.dense_rank == len(WORDS)
    assert [h.doc_id for h in reloaded.search(query, k=3, mode="dense")] == dense[:3]


def write_head_data(data: Path, words: list[str]) -> Path:
    """A BEIR folder where query i ("the w i") is answered by document i ("w number i")."""
    import json

    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": w, "text": f"{w} number {i}"}) + "\n" for i, w in enumerate(words))
    )
    (data / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"the {w} {i}"}) + "\n" for i, w in enumerate(words))
    )
    (data / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(len(words)))
    )
    return data


def test_train_head_cli_writes_a_model_dir_and_reports_dev_scores(tmp_path: Path, tiny_model: str) -> None:
    from click.testing import CliRunner

    from retriever.cli import main

    data = write_head_data(tmp_path / "beir", WORDS * 3)
    out = tmp_path / "with-head"
    result = CliRunner().invoke(
        main, ["train", str(data), "--output", str(out), "--model", tiny_model, "--head", "mlp", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "dev nDCG@10" in result.output
    assert (out / "modules.json").exists()
    kept = "rerank head kept" in result.output
    assert (RerankHead.load(out) is not None) == kept


def test_a_head_that_is_not_kept_leaves_no_head_in_the_output(tmp_path: Path, tiny_model: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither an earlier run's head nor the base model's may be used by --rerank after a run that kept none."""
    import retriever.training.head as head_module
    from retriever.training.head import train_mlp_head

    data = write_head_data(tmp_path / "beir", WORDS * 2)
    out = tmp_path / "with-head"
    dev_scores = iter([0.1, 0.9, 0.9, 0.1, 0.9, 0.1])  # (before, after): the first head helps, later ones do not
    monkeypatch.setattr(head_module, "_dev_ndcg", lambda *args: next(dev_scores))
    first = train_mlp_head(data, tiny_model, out, epochs=1, cache=tmp_path / "cache", progress=False)
    assert first.kept and RerankHead.load(out) is not None
    shutil.copytree(out, tmp_path / "base-with-head")
    second = train_mlp_head(data, tiny_model, out, epochs=1, cache=tmp_path / "cache", progress=False)
    assert not second.kept and RerankHead.load(out) is None
    third = train_mlp_head(data, str(tmp_path / "base-with-head"), tmp_path / "copy", epochs=1,
                           cache=tmp_path / "cache", progress=False)
    assert not third.kept and RerankHead.load(tmp_path / "copy") is None
