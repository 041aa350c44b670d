"""retriever tune: the CV keep-or-discard rule, what load and search use afterwards, safety, one-line errors."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from retriever import Retriever
from retriever.cli import main
from retriever.training.tune import FineTuneSetting, tune
from retriever.training.tune.apply import commit_reencoded
from retriever.training.tune.cv import choose, make_folds
from retriever.training.tune.metrics import ndcg_at_10

TOPICS = ["apple", "river", "engine", "violin", "glacier", "pepper", "saturn", "copper", "tulip", "falcon",
          "marble", "lantern", "cactus", "harbor", "velvet", "walnut", "comet", "meadow", "quartz", "badger"]
FILLER = "the of and a to in is was for on with as by at from"


def records() -> list[dict[str, str]]:
    """Per pair of topic words (a, b): one document with both, and documents with only one of them.

    A query "a b" has exactly one relevant document; BM25 finds it first, a random tiny model does not.
    """
    rng = random.Random(0)
    out = []
    for i in range(0, len(TOPICS), 2):
        a, b = TOPICS[i], TOPICS[i + 1]
        out.append({"_id": f"both-{a}", "text": f"{a} {b} " + " ".join(rng.sample(FILLER.split(), 6))})
        for j in range(3):
            out.append({"_id": f"{a}-{j}", "text": f"{a} " + " ".join(rng.sample(FILLER.split(), 7))})
            out.append({"_id": f"{b}-{j}", "text": f"{b} " + " ".join(rng.sample(FILLER.split(), 7))})
    return out


def word_judgments() -> dict[str, dict[str, int]]:
    """Judgments that agree with the words: the document with both query words is relevant."""
    out = {}
    for i in range(0, len(TOPICS), 2):
        a, b = TOPICS[i], TOPICS[i + 1]
        out[f"{a} {b}"] = {f"both-{a}": 2, f"{a}-0": 0, f"{b}-0": 0}
        out[f"{b} {a} {a}"] = {f"both-{a}": 1, f"{a}-1": 0}
        out[f"{a} {b} {b}"] = {f"both-{a}": 1, f"{b}-1": 0}
        out[f"{b} {a}"] = {f"both-{a}": 2, f"{b}-2": 0}
        out[f"{a} {a} {b} {b}"] = {f"both-{a}": 2, f"{a}-2": 0}
    return out


def contradicting_judgments() -> dict[str, dict[str, int]]:
    """Judgments that contradict the data: the document with both query words is judged irrelevant, and a
    document drawn at random (no pattern a model could learn) relevant."""
    rng = random.Random(3)
    ids = [r["_id"] for r in records()]
    out = {}
    for i in range(0, len(TOPICS), 2):
        a, b = TOPICS[i], TOPICS[i + 1]
        for query in (f"{a} {b}", f"{b} {a} {a}"):
            out[query] = {rng.choice([d for d in ids if a not in d and b not in d]): 2, f"both-{a}": 0}
    return out


@pytest.fixture(scope="module")
def base_index(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Any) -> Path:
    folder = tmp_path_factory.mktemp("tune") / "base"
    Retriever.build(records(), index_dir=folder, encoder=tiny_encoder).close()
    return folder


@pytest.fixture
def index(base_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(base_index, copy)
    return copy


def test_ndcg_uses_graded_gains_and_counts_unjudged_as_irrelevant() -> None:
    import math

    judged = {"a": 2, "b": 0, "c": 1, "d": 1}
    ideal = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_10(["b", "c", "x", "a"], judged) == pytest.approx((1 / math.log2(3) + 2 / math.log2(5)) / ideal)
    assert ndcg_at_10(["a", "c", "d"], judged) == pytest.approx(1.0)
    assert ndcg_at_10(["a"], {"a": 0}) == 0.0
    # condensed (Sakai 2007): unjudged documents are dropped before the cut, not counted as irrelevant
    assert ndcg_at_10(["x", "y", "a", "z", "c", "d"], judged, condensed=True) == pytest.approx(1.0)
    assert ndcg_at_10(["b", "c", "x", "a"], judged, condensed=True) == pytest.approx(
        ndcg_at_10(["b", "c", "a"], judged))


def test_fine_tune_cv_does_not_count_unjudged_documents_as_irrelevant(tiny_model: str) -> None:
    """Judgments cover the base model's top 10 only: a tuned model that ranks an unjudged document first must
    be scored on the judged ones (the condensed list), or the CV favours the base model by construction."""
    from retriever.training.model import load_model
    from retriever.training.tune.finetune import JudgedData, encode, held_out_scores
    from retriever.training.tune.fusion import Fusion

    model = load_model(tiny_model)
    query = "apple river engine"
    texts = {"a-unjudged": query, "b-relevant": "apple river", "c-irrelevant": "violin glacier pepper"}
    vectors = encode(model, list(texts.values()), query=False)
    sims = vectors @ encode(model, [query], query=True)[0]
    assert sims[0] > max(sims[1:]) + 1e-3  # the unjudged document (the query's own words) is ranked first
    qrels = {"q": {"b-relevant": 2, "c-irrelevant": 0}}
    dense_only = Fusion("convex", 1.0)
    with_unjudged = JudgedData({"q": query}, qrels, texts, {"q": []}, {"q": list(texts)})
    judged_only = JudgedData({"q": query}, qrels, texts, {"q": []}, {"q": ["b-relevant", "c-irrelevant"]})
    scored = held_out_scores(model, with_unjudged, ["q"], dense_only)["q"]
    assert scored > 0 and scored == pytest.approx(held_out_scores(model, judged_only, ["q"], dense_only)["q"])


def test_cv_keeps_a_clear_gain_and_discards_noise() -> None:
    qids = [f"q{i}" for i in range(20)]
    folds = make_folds(qids, 5, seed=0)
    clear = {"now": {q: 0.5 for q in qids}, "better": {q: 0.8 for q in qids}}
    assert choose(clear, "now", folds).chosen == "better"
    rng = random.Random(1)  # a setting better on some queries and worse on others, by chance
    noisy = {"now": {q: 0.5 for q in qids}, "lucky": {q: 0.5 + rng.choice([-0.3, 0.3]) for q in qids}}
    decided = choose(noisy, "now", folds)
    assert not decided.kept and decided.chosen == "now"
    too_few = choose({"now": {"q1": 0.1}, "better": {"q1": 0.9}}, "now", make_folds(["q1"], 5))
    assert not too_few.kept and "at least" in too_few.reason


def test_tune_keeps_an_alpha_that_helps_and_search_uses_it(index: Path) -> None:
    from retriever.training.tune.apply import commit_settings

    with Retriever.load(index) as retriever:  # a dense-only default, which the random tiny model makes poor
        commit_settings(retriever, {"alpha": 1.0, "fusion": "convex"}, {"summary": "set up"})
    with Retriever.load(index) as retriever:
        before_generation = retriever.snapshot.generation
        assert retriever.default_alpha == 1.0
        report = tune(retriever, word_judgments(), fine_tune=False)
    assert report.fusion.kept, report.summary
    assert report.fusion.cv_chosen > report.fusion.cv_current
    assert report.summary.startswith("tune kept") and "\n" not in report.summary
    with Retriever.load(index) as tuned:  # no option: the tuned setting is the default
        assert tuned.snapshot.generation != before_generation
        defaults = tuned.manifest.model["search_defaults"]
        assert tuned.default_alpha == defaults["alpha"] and tuned.default_fusion == defaults["fusion"]
        assert tuned.manifest.extras["tune"]["judged_queries"] == len(word_judgments())
        assert tuned.manifest.extras["tune"]["fusion"]["kept"] is True and tuned.default_alpha < 1.0
        query = f"{TOPICS[0]} {TOPICS[1]}"
        explicit = tuned.search(query, fusion=defaults["fusion"], alpha=defaults["alpha"])
        assert [h.doc_id for h in tuned.search(query)] == [h.doc_id for h in explicit]
        assert tuned.search(query)[0].doc_id == f"both-{TOPICS[0]}"
    result = CliRunner().invoke(main, ["search", query, "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output


def test_tune_discards_what_contradicts_the_data(index: Path) -> None:
    setting = FineTuneSetting(lr=1e-3, epochs=1, batch_size=4, max_seq_length=32)
    with Retriever.load(index) as retriever:
        before = retriever.manifest.model
        report = tune(retriever, contradicting_judgments(), folds=3, settings=[setting], mixes=[1.0])
    assert not report.fusion.kept and report.fine_tune is not None and not report.fine_tune.kept
    assert report.model_path is None and report.summary.startswith("tune kept nothing")
    with Retriever.load(index) as after:  # untouched except the record of the attempt
        assert after.manifest.model == before
        assert after.manifest.extras["tune"]["summary"] == report.summary
        assert len(after.manifest.extras["tune_history"]) == 1


def test_reencoding_swaps_the_model_in_one_generation(index: Path, other_tiny_model: str) -> None:
    from retriever.encoding.encoder import Encoder

    reader = Retriever.load(index)
    old_generation, old_hits = reader.snapshot.generation, [h.doc_id for h in reader.search("apple river")]
    with Retriever.load(index) as writer:
        commit_reencoded(writer, Encoder(other_tiny_model), {"alpha": 0.3, "fusion": "convex"}, {"summary": "test"})
    assert [h.doc_id for h in reader.search("apple river")] == old_hits  # an open reader keeps its generation
    assert reader.snapshot.generation == old_generation
    reader.close()
    with Retriever.load(index) as tuned:
        assert tuned.manifest.model["path"] == str(Path(other_tiny_model).resolve()) or tuned.manifest.model[
            "name"] == other_tiny_model
        assert tuned.encoder.fingerprint == Encoder(other_tiny_model).fingerprint
        assert tuned.default_alpha == 0.3 and len(tuned) == len(records())
        top = tuned.search("apple river", mode="dense")[0]  # scored by the new model's vectors
        encoder = Encoder(other_tiny_model)
        vector = encoder.encode_queries(["apple river"])[0]
        expected = encoder.encode_documents([tuned.get(top.doc_id).text])[0] @ vector
        assert top.score == pytest.approx(float(expected), abs=1e-3)


def test_a_tuned_model_is_recorded_inside_the_index_so_a_moved_index_finds_it(index: Path, other_tiny_model: str,
                                                                                 tmp_path: Path) -> None:
    from retriever.encoding.encoder import Encoder, recorded_model_location
    from retriever.training.tune.run import models_dir

    kept = models_dir(index) / "tuned-test"
    shutil.copytree(other_tiny_model, kept)
    with Retriever.load(index) as writer:
        commit_reencoded(writer, Encoder(str(kept)), {}, {"summary": "test"})
    moved = tmp_path / "moved"
    shutil.move(str(index), moved)  # the absolute path the model had is gone
    with Retriever.load(moved) as tuned:
        assert tuned.manifest.model["path"] == tuned.manifest.model["name"] == "models/tuned-test"
        assert recorded_model_location(tuned.manifest.model, moved) == str(moved / "models" / "tuned-test")
        assert tuned.encoder.fingerprint == Encoder(other_tiny_model).fingerprint
        assert len(tuned.search("apple river", mode="dense")) > 0


class FailingEncoder:
    """An encoder that breaks after its first batch: a tune killed in the middle of re-encoding."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0
        self.dimension = inner.dimension

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.calls += 1
        if self.calls > 1:
            raise KeyboardInterrupt
        return self.inner.encode_documents(texts)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def test_an_interrupted_tune_leaves_the_index_usable(index: Path, other_tiny_model: str) -> None:
    from retriever.encoding.encoder import Encoder
    from retriever.training.tune import apply

    with Retriever.load(index) as retriever:
        before = (retriever.snapshot.generation, [h.doc_id for h in retriever.search("comet meadow")])
        apply.ENCODE_BATCH, saved = 8, apply.ENCODE_BATCH
        try:
            with pytest.raises(KeyboardInterrupt):
                commit_reencoded(retriever, FailingEncoder(Encoder(other_tiny_model)), {}, {"summary": "x"})
        finally:
            apply.ENCODE_BATCH = saved
    with Retriever.load(index) as after:
        assert (after.snapshot.generation, [h.doc_id for h in after.search("comet meadow")]) == before
        assert after.check() == []


def test_one_line_errors(index: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["tune", "--index", str(tmp_path / "nowhere"), "--no-fine-tune"])
    assert missing.exit_code != 0 and len(missing.output.strip().splitlines()) == 1, missing.output
    empty = tmp_path / "empty"
    (empty / "qrels").mkdir(parents=True)
    (empty / "queries.jsonl").write_text('{"_id": "1", "text": "apple"}\n')
    (empty / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    none = CliRunner().invoke(main, ["tune", "--index", str(index), "--judgments", str(empty)])
    assert none.exit_code != 0 and "no judgments" in none.output and len(none.output.strip().splitlines()) == 1
    not_beir = CliRunner().invoke(main, ["tune", "--index", str(index), "--judgments", str(tmp_path)])
    assert not_beir.exit_code != 0 and "queries.jsonl" in not_beir.output


def test_cli_tunes_on_the_index_own_judgments(index: Path) -> None:
    with Retriever.load(index) as retriever:
        for query, docs in word_judgments().items():
            for doc_id, grade in docs.items():
                retriever.judge(query, doc_id, grade)
    result = CliRunner().invoke(main, ["tune", "--index", str(index), "--no-fine-tune"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("tune kept") and len(result.output.strip().splitlines()) == 1
    with Retriever.load(index) as tuned:
        assert tuned.manifest.extras["tune"]["judged_queries"] == len(word_judgments())
