"""Verification: thresholds chosen on labelled pairs, stored in the index, used by verify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from retriever.cli import main
from retriever.retriever import Retriever
from retriever.verification.verdict import choose_threshold, precision_recall_f1


def test_best_f1_threshold_separates_separable_pairs() -> None:
    scores = np.array([0.9, 0.8, 0.75, 0.4, 0.3, 0.2])
    labels = np.array([1, 1, 1, 0, 0, 0])
    threshold = choose_threshold(scores, labels)
    assert 0.4 < threshold <= 0.75
    assert precision_recall_f1(scores, labels, threshold) == (1.0, 1.0, 1.0)


def test_target_precision_picks_the_lowest_threshold_reaching_it() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 1, 0, 1, 0])
    assert choose_threshold(scores, labels, target_precision=1.0) == pytest.approx(0.8)
    assert choose_threshold(scores, labels, target_precision=0.75) == pytest.approx(0.6)


def make_pairs_dataset(root: Path) -> tuple[Path, list[dict]]:
    """Each query repeats its document's distinctive word; the other documents are unrelated."""
    words = ["cat", "dog", "fish", "bird", "car", "train", "music", "coffee", "tea", "garden", "sun", "plant"]
    records = [{"_id": w, "title": w, "text": f"{w} {w} {w} all about the {w}"} for w in words]
    root.mkdir()
    queries = "".join(json.dumps({"_id": f"q-{w}", "text": f"{w} {w}"}) + "\n" for w in words)
    (root / "queries.jsonl").write_text(queries)
    (root / "qrels").mkdir()
    qrels = "".join(f"q-{w}\t{w}\t1\n" for w in words)
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return root, records


def test_calibrate_stores_a_threshold_that_verify_uses(tmp_path: Path, tiny_model: str) -> None:
    data, records = make_pairs_dataset(tmp_path / "pairs")
    index = tmp_path / "index"
    Retriever.build(records, index_dir=index, model=tiny_model)
    runner = CliRunner()
    result = runner.invoke(main, ["calibrate", str(data), "--index", str(index), "--negatives", "2"])
    assert result.exit_code == 0, result.output
    assert "threshold" in result.output and "F1" in result.output
    r = Retriever.load(index)
    stored = r.manifest.extras["verification"]
    assert stored["objective"] == "best F1" and stored["pairs"] > 0
    positive = r.verify("cat cat", "cat")
    assert positive.calibrated and positive.threshold == pytest.approx(stored["threshold"])
    scores_pos = r.similarities([f"{w} {w}" for w in ["dog", "fish", "tea"]], ["dog", "fish", "tea"])
    scores_neg = r.similarities([f"{w} {w}" for w in ["dog", "fish", "tea"]], ["tea", "dog", "fish"])
    assert (scores_pos > scores_neg).all()  # the model ranks the pairs the way the threshold needs
    assert r.verify("cat cat", "cat").is_match == (positive.score >= stored["threshold"])
    result = runner.invoke(main, ["verify", "cat cat", "cat", "--index", str(index), "--json"])
    verdict = json.loads(result.output)
    assert result.exit_code == (0 if verdict["is_match"] else 2)
    assert verdict["calibrated"] is True


def test_verify_unknown_document_is_a_clear_error(tmp_path: Path, tiny_model: str) -> None:
    Retriever.build([{"_id": "a", "text": "cats"}], index_dir=tmp_path / "i", model=tiny_model)
    result = CliRunner().invoke(main, ["verify", "cats", "nope", "--index", str(tmp_path / "i")])
    assert result.exit_code == 1 and "no document 'nope'" in result.output
