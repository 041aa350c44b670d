"""``retriever adapt``: pair sources, the keep-or-discard rule, the saved model, the fusion weight, the CLI.

Runs on the tiny random BERT of conftest and a synthetic corpus of topic documents: each has a
title naming its two topics and sentences that mention them, so pseudo-pairs carry real signal.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from retriever.errors import RetrieverError
from retriever.ingest.documents import Document
from retriever.training.adapt import AdaptConfig, adapt
from retriever.training.adapt.data import build_adapt_data, pair_pools
from retriever.training.adapt.fusion import smoothed_best
from retriever.training.adapt.pairs import CorpusContext, crops, ict, keyterms, title
from retriever.training.adapt.pairs.text import split_sentences
from retriever.training.negatives import guarded_window

TOPICS = """cat dog fish bird car train music song coffee tea water sleep memory brain password login email
invoice payment card refund backup restore garden tomato sun plant delivery parcel order""".split()
FAST = {"batch_size": 8, "lr": 1e-3, "progress": False, "max_seq_length": 64}


def topic_docs(count: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pairs = [(a, b) for i, a in enumerate(TOPICS) for b in TOPICS[i + 1 :]]
    rng.shuffle(pairs)
    docs = []
    for i, (a, b) in enumerate(pairs[:count]):
        sentences = [f"The {a} and the {b} are in the data.", f"A {a} is not a {b} at all.",
                     f"You can see the {b} with the {a} in the garden.", f"This is all about the {a} and {b}."]
        docs.append({"_id": f"d{i}", "title": f"on the {a} and the {b}", "text": " ".join(sentences)})
    return docs


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus" / "docs.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(d) + "\n" for d in topic_docs()))
    return path.parent


def a_document() -> Document:
    text = ("Vitamin D is made in the skin when it is exposed to sunlight. Low levels are common in winter "
            "months in northern countries. Supplements raise blood levels within a few weeks of daily use. "
            "Bone density improved in older adults who took them for two years.")
    return Document("doc1", text, "Vitamin D supplements and bone density in older adults")


# pair sources ---------------------------------------------------------------------------------
def test_sentences_split_at_sentence_ends_only() -> None:
    text = "Levels rose (p < 0.05). Cells were counted, e.g. by eye. 2 of 10 died! Why? Because."
    assert split_sentences(text) == ["Levels rose (p < 0.05).", "Cells were counted, e.g. by eye.", "2 of 10 died!",
                                     "Why?", "Because."]


def test_ict_query_is_a_sentence_of_its_document_and_is_removed_from_the_positive() -> None:
    doc = a_document()
    found = ict.pairs(doc, random.Random(0), CorpusContext({}, 0))
    sentences = split_sentences(doc.text)
    assert len(found) == len(sentences)  # every sentence here has 6-48 words
    removed = 0
    for pair in found:
        assert pair.query in sentences and pair.doc_id == "doc1" and pair.source == "ict"
        assert pair.positive.startswith(doc.title)  # the positive is searched as the index sees it
        removed += pair.query not in pair.positive
        others = [s for s in sentences if s != pair.query]
        assert all(s in pair.positive for s in others)
    assert removed >= len(found) - 1  # kept in the positive only ~10% of the time


def test_ict_skips_short_documents() -> None:
    assert ict.pairs(Document("d", "One sentence only here, with enough words."), random.Random(0),
                     CorpusContext({}, 0)) == []


def test_title_pairs_need_a_real_title() -> None:
    doc = a_document()
    [pair] = title.pairs(doc, random.Random(0), CorpusContext({}, 0))
    assert pair.query == doc.title and pair.positive == doc.text
    named_after_file = Document("notes.txt", doc.text, "notes", source="/x/notes.txt")
    assert title.pairs(named_after_file, random.Random(0), CorpusContext({}, 0)) == []


def test_crops_are_spans_of_the_document() -> None:
    doc = a_document()
    [pair] = crops.pairs(doc, random.Random(1), CorpusContext({}, 0))
    flat = " ".join(doc.text.split())
    assert pair.query in flat and 6 <= len(pair.query.split()) <= 32
    assert pair.positive.startswith(doc.title) and pair.positive[len(doc.title) + 1 :] in flat


def test_keyterms_prefer_words_rare_in_the_corpus() -> None:
    doc = a_document()
    frequency = {"levels": 99, "older": 99, "adults": 99, "vitamin": 1, "density": 1, "supplements": 1, "bone": 1}
    [pair] = keyterms.pairs(doc, random.Random(0), CorpusContext(frequency, 100))
    words = pair.query.split()
    assert 3 <= len(words) <= 6 and "levels" not in words and "the" not in words
    assert set(words) <= set(keyterms.terms(doc.title + " " + doc.text))


def test_held_out_documents_give_dev_pairs_only_and_are_searched_as_cut() -> None:
    docs = [Document(d["_id"], d["text"], d["title"]) for d in topic_docs()]
    pools = pair_pools(docs, ["ict", "title"], seed=0)
    data = build_adapt_data(docs, pools, train_pairs=30, seed=0, source=Path("corpus"))
    held_out = {d for docs_ in data.dev.values() for d in docs_}
    assert len(held_out) == len(data.dev) == 4  # 10% of 40
    assert not held_out & set(data.part_of.values())
    for qid, judged in data.dev.items():
        [doc_id] = judged
        assert data.queries[qid] not in data.corpus[doc_id]  # an ICT sentence is cut from its document
    assert len(data.train) == 30 and sorted(data.notes["train_pairs_by_source"]) == ["ict", "title"]
    trained_docs = list(data.part_of.values())
    assert len(set(trained_docs)) == len(trained_docs)  # one pair per document in a round


def test_the_guard_drops_candidates_scored_too_close_to_the_positive() -> None:
    scored = [("pos", 10.0), ("a", 9.5), ("b", 8.0), ("c", 5.0)]
    assert guarded_window(scored, {"pos": 1}, 0, 4, 0.9) == ["b", "c"]
    assert guarded_window(scored, {"x": 1}, 0, 4, 0.9) == []  # positive not found: nothing is safe


def test_smoothed_best_ignores_a_lone_spike() -> None:
    curve = {0.0: 0.5, 0.1: 0.5, 0.2: 0.9, 0.3: 0.5, 0.4: 0.5, 0.5: 0.7, 0.6: 0.72, 0.7: 0.7, 0.8: 0.5}
    assert smoothed_best(curve) == 0.6


# the run ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapted(tiny_model: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("adapt")
    (root / "corpus").mkdir()
    (root / "corpus" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in topic_docs()))
    config = AdaptConfig(corpus=root / "corpus", output=root / "model", model=tiny_model, pairs=64,
                         keep_margin=0.0, hybrid_noise=1.0, **FAST)
    return adapt(config)


def test_adapted_model_loads_plainly_and_has_a_card(adapted) -> None:
    from sentence_transformers import SentenceTransformer

    out = Path(adapted.output)
    model = SentenceTransformer(str(out), device="cpu")
    assert model.encode_query(["cat garden"]).shape == (1, 32)
    card = json.loads((out / "training.json").read_text())
    assert card["command"] == "adapt" and card["data"]["format"] == "corpus"
    assert card["adaptation"]["pairs_by_source"] and card["adaptation"]["held_out_pairs"] == 4
    assert "retriever adapt" in (out / "README.md").read_text()
    assert adapted.dev_before is not None and adapted.dev_after is not None


def test_adapted_model_is_kept_with_its_fusion_weight_when_it_helps(adapted, tmp_path: Path) -> None:
    from retriever import Retriever

    assert adapted.kept_adapted and adapted.verdict.startswith("adapted model kept")
    assert adapted.dev_after > adapted.dev_before
    stored = json.loads((Path(adapted.output) / "retriever_search.json").read_text())
    assert stored["alpha"] == adapted.alpha and 0.2 <= adapted.alpha <= 0.8
    index = Retriever.build(topic_docs()[:5], index_dir=tmp_path / "index", model=str(adapted.output))
    assert index.manifest.model["search_defaults"] == {"alpha": adapted.alpha}
    assert Retriever.load(tmp_path / "index").default_alpha == adapted.alpha


def test_base_model_is_kept_and_said_so_when_adaptation_does_not_help(tiny_model: str, corpus_file: Path,
                                                                       tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    config = AdaptConfig(corpus=corpus_file, output=tmp_path / "model", model=tiny_model, pairs=64,
                         keep_margin=1.0, **FAST)  # no model can gain a whole point of nDCG@10
    result = adapt(config)
    assert not result.kept_adapted and result.alpha is None
    assert result.verdict.startswith("base model kept") and "less than the 1.0000 required" in result.verdict
    saved = SentenceTransformer(str(result.output), device="cpu").encode_query(["cat garden"])
    base = SentenceTransformer(tiny_model, device="cpu").encode_query(["cat garden"])
    assert abs(saved - base).max() < 1e-6
    assert not (Path(result.output) / "retriever_search.json").exists()
    assert json.loads((Path(result.output) / "training.json").read_text())["kept_starting_model"] is True


def test_too_short_a_budget_is_one_clear_error(tiny_model: str, corpus_file: Path, tmp_path: Path) -> None:
    with pytest.raises(RetrieverError, match="leave no time to train"):
        adapt(AdaptConfig(corpus=corpus_file, output=tmp_path / "m", model=tiny_model, minutes=0.001, **FAST))


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RetrieverError, match="pair sources"):
        AdaptConfig(corpus=tmp_path, output=tmp_path / "m", sources=("ict", "nope"))
    with pytest.raises(RetrieverError, match="corpus not found"):
        adapt(AdaptConfig(corpus=tmp_path / "missing", output=tmp_path / "m", progress=False))


# the CLI -----------------------------------------------------------------------------------------
def test_cli_adapt_prints_the_verdict(tiny_model: str, corpus_file: Path, tmp_path: Path) -> None:
    from retriever.cli import main

    result = CliRunner().invoke(main, ["adapt", str(corpus_file), "-o", str(tmp_path / "m"), "--model", tiny_model,
                                       "--pairs", "32", "--batch-size", "8", "--max-seq-length", "64",
                                       "--sources", "title,keyterms", "-q"])
    assert result.exit_code == 0, result.output
    assert "model kept" in result.output and "32 pairs" in result.output
    card = json.loads((tmp_path / "m" / "training.json").read_text())
    assert set(card["adaptation"]["pairs_by_source"]) == {"title", "keyterms"}


def test_cli_adapt_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    from retriever.cli import main

    result = CliRunner().invoke(main, ["adapt", str(tmp_path / "missing"), "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and result.output.strip().startswith("error: corpus not found")


def test_cli_index_adapt_adapts_then_indexes_with_the_adapted_model(tiny_model: str, corpus_file: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever import Retriever
    from retriever.cli import main
    from retriever.encoding.encoder import model_fingerprint

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["index", str(corpus_file), "--adapt", "--model", tiny_model,
                                       "--pairs", "64", "-q"])  # not --minutes: how many steps fit depends on the CPU
    assert result.exit_code == 0, result.output
    assert "model kept" in result.output
    index = Retriever.load(tmp_path / "indexes" / "corpus")
    assert index.manifest.model["fingerprint"] == model_fingerprint(tmp_path / "models" / "corpus-adapted")
    assert len(index) == 40
