"""Verification: thresholds chosen on labelled pairs, stored in the index, used by verify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from retriever.cli import main
from retriever.errors import RetrieverError
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


def test_an_unreachable_target_precision_is_an_error_naming_the_best() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 1, 0, 1])  # the best precision any threshold reaches is 0.5
    with pytest.raises(RetrieverError, match=r"no threshold reaches precision 0\.9.*the best is 0\.500"):
        choose_threshold(scores, labels, target_precision=0.9)
    assert choose_threshold(scores, labels, target_precision=0.5) == pytest.approx(0.6)


def test_calibrate_never_records_a_precision_it_did_not_reach(tmp_path: Path, tiny_model: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data, records = make_pairs_dataset(tmp_path / "pairs")
    index = tmp_path / "index"
    Retriever.build(records, index_dir=index, model=tiny_model)

    def inverted(self, queries, doc_ids):  # a model that scores every mismatch above every match
        return np.array([0.1 if q.split()[0] == d else 0.9 for q, d in zip(queries, doc_ids)], dtype=np.float32)

    monkeypatch.setattr(Retriever, "similarities", inverted)
    result = CliRunner().invoke(main, ["calibrate", str(data), "--index", str(index), "--target-precision", "0.9"])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: no threshold reaches precision 0.9")
    assert "verification" not in Retriever.load(index).manifest.extras
