"""retriever bench and the evaluation it relies on, on a tiny synthetic BEIR folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from retriever.cli import main
from retriever.eval.beir import load_beir
from retriever.eval.bench import BenchConfig, run_bench, select
from retriever.eval.metrics import evaluate

TOPICS = ["cat", "dog", "fish", "bird", "car", "train", "music", "coffee", "tea", "garden"]


def make_beir(root: Path) -> Path:
    """10 topics x 3 docs; 4 judged queries (one with graded relevance), 1 with only a 0 judgement."""
    root.mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as f:
        for t in TOPICS:
            for i in range(3):
                f.write(json.dumps({"_id": f"{t}-{i}", "title": t, "text": f"all about the {t} {i} " * 3}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for q, t in enumerate(["cat", "dog", "fish", "bird", "car", "music"]):
            f.write(json.dumps({"_id": f"q{q}", "text": f"the {t}"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        "q0\tcat-0\t2\nq0\tcat-1\t1\nq1\tdog-0\t1\nq2\tfish-2\t1\nq3\tbird-1\t1\nq4\tcar-0\t0\n"
    )
    return root


def test_evaluate_matches_hand_computed_values_with_graded_relevance() -> None:
    qrels = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"x": 1}}
    run = {"q1": {"c": 0.9, "a": 0.8, "z": 0.7, "b": 0.6}, "q2": {"y": 0.9, "x": 0.5}}
    scores = evaluate(run, qrels).scores
    # trec_eval's nDCG uses the grade as gain: DCG = sum rel_i / log2(i + 1)
    ndcg_q1 = (2 / math.log2(3) + 1 / math.log2(5)) / (2 / math.log2(2) + 1 / math.log2(3))
    ndcg_q2 = (1 / math.log2(3)) / 1
    assert scores["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-6)
    assert scores["mrr@10"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert scores["recall@100"] == pytest.approx(1.0)
    map_q1 = (1 / 2 + 2 / 4) / 2
    map_q2 = 1 / 2
    assert scores["map@100"] == pytest.approx((map_q1 + map_q2) / 2)


def test_evaluate_skips_and_counts_queries_without_relevant_documents() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}, "q3": {"c": 1}}
    evaluation = evaluate({"q1": {"a": 1.0}}, qrels)
    assert evaluation.queries_skipped == 1
    assert evaluation.queries_scored == 2
    assert evaluation.scores["ndcg@10"] == pytest.approx(0.5)  # q3 has no results: scores 0


def test_smoke_limits_keep_the_judged_documents(tmp_path: Path) -> None:
    dataset = load_beir(make_beir(tmp_path / "beir"))
    queries, qrels, counts = select(dataset, BenchConfig(tmp_path, limit_queries=2, limit_docs=5, seed=3))
    assert len(queries) == 2 and set(queries) == set(qrels)
    judged_docs = {d for docs in qrels.values() for d in docs}
    assert judged_docs <= set(dataset.corpus)
    assert len(dataset.corpus) == 5
    assert counts["queries_skipped_no_judgement"] == 1


def test_bench_writes_every_output_and_counts_skipped_queries(
    tmp_path: Path, tiny_model: str, other_tiny_model: str
) -> None:
    data = make_beir(tmp_path / "beir")
    out = tmp_path / "results"
    config = BenchConfig(data, model=tiny_model, finetuned=other_tiny_model, output=out, cache=tmp_path / "cache")
    report = run_bench(config, log=lambda _: None, progress=False)
    assert set(report["systems"]) == {
        "bm25", "reference", "flat", "hnsw", "hybrid", "hybrid-rrf", "fine-tuned", "fine-tuned-hybrid"
    }
    assert report["counts"]["queries_scored"] == 4
    assert report["counts"]["queries_skipped_no_judgement"] == 1
    saved = json.loads((out / "beir-test.json").read_text())
    bm25 = saved["systems"]["bm25"]["quality"]
    assert bm25["recall@100"] == pytest.approx(1.0) and bm25["ndcg@10"] > 0.5  # the topic word is in doc and query
    assert saved["environment"]["cores"] >= 1 and saved["date"] and saved["command"]
    assert saved["machine"]["cpu"] and saved["machine"]["isa"]  # what the rendered docs tables name
    assert saved["systems"]["flat"]["speed"]["ann_recall_at_10"] == pytest.approx(1.0)
    assert "latency_p50_ms_ratio" in saved["systems"]["flat"]["speed"]
    table = (out / "beir-test.md").read_text()
    assert "| nDCG@10 |" in table and "reference" in table
    assert (out / "beir-test.png").read_bytes()[:4] == b"\x89PNG"
    for system in report["systems"]:
        lines = (out / "beir-test-runs" / f"{system}.trec").read_text().splitlines()
        qid, q0, doc, rank, score, name = lines[0].split()
        assert q0 == "Q0" and rank == "1" and name == system and qid in {"q0", "q1", "q2", "q3"}
        float(score)
    # a second run reuses the cached embeddings instead of encoding again
    again = run_bench(config, log=lambda _: None, progress=False)
    assert again["systems"]["flat"]["speed"]["encode_cached"] is True
    assert again["systems"]["reference"]["quality"] == report["systems"]["reference"]["quality"]


def test_bench_cli_rejects_a_folder_that_is_not_beir(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a BEIR dataset folder" in result.output and "Traceback" not in result.output


def test_ann_recall_is_measured_against_exact_search_over_the_same_vectors(tmp_path: Path) -> None:
    from retriever.eval.bench import ann_recall_at_10
    from retriever.index.vectors import SegmentVectors

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:40] + rng.normal(scale=0.5, size=(40, 16)).astype(np.float32)
    poor = {"M": 4, "efConstruction": 8, "efSearch": 1}  # a deliberately poor graph
    segment = SegmentVectors.open(tmp_path / "v", SegmentVectors.write(tmp_path / "v", vectors, "hnsw", poor))

    class OneSegment:  # the part of a snapshot that ann_recall_at_10 reads
        def dense(self, q: np.ndarray, k: int, exact: bool = False) -> list[list[tuple[int, int, float]]]:
            scores, rows = segment.search(q, k, exact=exact)
            return [[(int(r), int(r), float(x)) for x, r in zip(xs, rs) if r >= 0] for xs, rs in zip(scores, rows)]

    assert ann_recall_at_10(OneSegment(), queries) < 1.0


def test_bench_measures_hnsw_recall_against_exact_search_in_any_order(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retriever.index.snapshot import Snapshot

    exact_calls: list[bool] = []
    dense = Snapshot.dense

    def spy(self, vectors, k, allowed=None, exact=False):  # noqa: ANN001, ANN202
        exact_calls.append(exact)
        return dense(self, vectors, k, allowed, exact)

    monkeypatch.setattr(Snapshot, "dense", spy)
    data = make_beir(tmp_path / "beir")
    for systems in (("hnsw",), ("hnsw", "flat")):
        exact_calls.clear()
        config = BenchConfig(data, model=tiny_model, systems=systems, output=tmp_path / "out", cache=tmp_path / "c")
        report = run_bench(config, log=lambda _: None, progress=False)
        assert True in exact_calls, systems
        assert report["systems"]["hnsw"]["speed"]["ann_recall_at_10"] is not None
