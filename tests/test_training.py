"""``retriever train``: architectures, losses, data, negatives, dev selection, checkpoints, CLI.

Everything runs on the tiny random BERT of conftest and a synthetic collection where a query
("cat garden") and its document ("the cat and the garden are in the data") share distinctive
words, so a few optimiser steps reliably improve retrieval.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from retriever.errors import InputFormatError, RetrieverError
from retriever.eval.metrics import evaluate
from retriever.training import TrainConfig, TrainingInterrupted, train
from retriever.training.batching import collate, epoch_batches
from retriever.training.config import CV_BELOW_QUERIES, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_LR
from retriever.training.data import load_training_data
from retriever.training.examples import build_examples, column_tasks
from retriever.training.losses import CachedInfoNCELoss, ContrastiveLoss, InfoNCELoss, TripletLoss
from retriever.training.model import build_model, tower_parameters
from retriever.training.negatives import Bm25Ranker, mine_negatives

TOPICS = """cat dog fish bird car train music song coffee tea water sleep memory brain password login email
invoice payment card refund backup restore garden tomato sun plant delivery parcel order""".split()
FAST = {"batch_size": 8, "lr": 1e-3, "progress": False, "dev_fraction": 0.2}


def topic_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    pairs = [(a, b) for i, a in enumerate(TOPICS) for b in TOPICS[i + 1 :]]
    random.Random(seed).shuffle(pairs)
    return pairs[:count]


def write_beir(root: Path, count: int = 40) -> Path:
    """A BEIR folder: query i ("a b") is answered by document i ("the a and the b are in the data")."""
    (root / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for i, (a, b) in enumerate(topic_pairs(count)):
        corpus.append({"_id": f"d{i}", "title": "", "text": f"the {a} and the {b} are in the data"})
        queries.append({"_id": f"q{i}", "text": f"{a} {b}"})
        qrels.append(f"q{i}\td{i}\t1")
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n")
    return root


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def mrr(model_dir: str | Path, data: Path) -> float:
    """MRR@10 of all the collection's queries over all its documents."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    docs = [json.loads(line) for line in (data / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines()]
    q = model.encode_query([r["text"] for r in queries], normalize_embeddings=True)
    d = model.encode_document([r["text"] for r in docs], normalize_embeddings=True)
    scores = q @ d.T
    run = {r["_id"]: {doc["_id"]: float(s) for doc, s in zip(docs, row)} for r, row in zip(queries, scores)}
    qrels = {r["_id"]: {"d" + r["_id"][1:]: 1} for r in queries}
    return evaluate(run, qrels, ("mrr@10",)).scores["mrr@10"]


@pytest.fixture(scope="module")
def beir_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("beir") / "synthetic")


@pytest.fixture(scope="module")
def trained_twin(tiny_model: str, beir_data: Path, tmp_path_factory: pytest.TempPathFactory):
    losses: list[float] = []
    out = tmp_path_factory.mktemp("twin") / "model"
    result = train(TrainConfig(data=beir_data, output=out, model=tiny_model, epochs=3, **FAST),
                   on_step=lambda state: losses.append(state.losses[-1]))
    return result, losses


@pytest.fixture(scope="module")
def trained_half_twin(tiny_model: str, beir_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("half-twin") / "model"
    return train(TrainConfig(data=beir_data, output=out, model=tiny_model, architecture="half-twin",
                             metric_head="linear", cached=True, mini_batch_size=3, epochs=2, **FAST))


# architectures -------------------------------------------------------------------------------
def test_twin_towers_are_one_set_of_parameters(tiny_model: str) -> None:
    model = build_model(tiny_model, "twin", "none", True, 64)
    query, document = tower_parameters(model, "query"), tower_parameters(model, "document")
    assert query and [id(p) for p in query] == [id(p) for p in document]
    assert type(list(model)[-1]).__name__ == "Normalize"
    assert type(list(build_model(tiny_model, "twin", "none", False, 64))[-1]).__name__ == "Pooling"  # --no-normalize


def test_half_twin_towers_diverge_after_one_step(tiny_model: str) -> None:
    model = build_model(tiny_model, "half-twin", "none", True, 64)
    query, document = tower_parameters(model, "query"), tower_parameters(model, "document")
    assert not {id(p) for p in query} & {id(p) for p in document}
    assert all(torch.equal(q, d) for q, d in zip(query, document))  # both start as the base model
    rows = {"query": ["cat garden", "dog music"], "positive": ["the cat and the garden", "the dog and the music"]}
    features, labels = collate(model, rows, column_tasks(list(rows)), routed=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    InfoNCELoss(model)(features, labels).backward()
    optimizer.step()
    assert any(not torch.equal(q, d) for q, d in zip(query, document))


def test_metric_head_is_identity_at_start_and_shared_by_both_towers(tiny_model: str) -> None:
    from sentence_transformers.sentence_transformer.modules import Dense

    plain = build_model(tiny_model, "twin", "none", True, 64)
    for architecture in ("twin", "half-twin"):
        model = build_model(tiny_model, architecture, "linear", True, 64)
        heads = [m for m in model.modules() if isinstance(m, Dense)]
        assert len(heads) == 1 and torch.equal(heads[0].linear.weight, torch.eye(32))
        assert heads[0].linear.bias is None
        texts = ["cat garden", "the dog and the music"]
        assert np.allclose(model.encode_query(texts), plain.encode_query(texts), atol=1e-6)
        assert np.allclose(model.encode_document(texts), plain.encode_document(texts), atol=1e-6)


def test_half_twin_with_metric_head_trains_with_gradcache(trained_half_twin, tiny_model: str, beir_data: Path) -> None:
    assert trained_half_twin.card["loss"]["class"] == "CachedInfoNCELoss"
    assert trained_half_twin.card["architecture"] == "half-twin" and trained_half_twin.card["metric_head"] == "linear"
    assert mrr(trained_half_twin.output, beir_data) > mrr(tiny_model, beir_data) + 0.05


def test_saved_half_twin_loads_plainly_and_routes_queries_and_documents(trained_half_twin) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Router

    model = SentenceTransformer(str(trained_half_twin.output), device="cpu")
    assert any(isinstance(m, Router) for m in model.modules())
    head = next(m for m in model.modules() if isinstance(m, Dense))
    assert not torch.equal(head.linear.weight, torch.eye(32))  # W was trained too
    query = model.encode_query(["cat garden"])
    document = model.encode_document(["cat garden"])
    assert not np.allclose(query, document, atol=1e-4)


def test_half_twin_index_encodes_queries_with_the_query_tower(trained_half_twin, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from retriever import Retriever

    records = [{"_id": "1", "text": "the cat and the garden are in the data"},
               {"_id": "2", "text": "the dog and the music are in the data"}]
    index = Retriever.build(records, index_dir=tmp_path / "index", model=str(trained_half_twin.output))
    assert index.manifest.model["architecture"] == "half-twin"
    model = SentenceTransformer(str(trained_half_twin.output), device="cpu")
    ours = index.encoder.encode_queries(["cat garden"])
    assert np.allclose(ours, model.encode_query(["cat garden"], normalize_embeddings=True), atol=1e-5)
    assert not np.allclose(ours, model.encode_document(["cat garden"], normalize_embeddings=True), atol=1e-4)
    assert index.search("cat garden", k=1)


# losses ---------------------------------------------------------------------------------------
def test_infonce_matches_hand_computation() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    loss = InfoNCELoss(model=None, scale=20.0).compute_loss_from_embeddings([q, pos, neg], None)
    candidates = [(0.6, 0.8), (0.0, 1.0), (1.0, 0.0), (0.8, 0.6)]  # all positives, then all negatives
    expected = 0.0
    for i, query in enumerate([(1.0, 0.0), (0.0, 1.0)]):
        sims = [20 * (query[0] * c[0] + query[1] * c[1]) for c in candidates]
        expected -= math.log(math.exp(sims[i]) / sum(math.exp(s) for s in sims))
    assert loss.item() == pytest.approx(expected / 2, rel=1e-5)


def test_cached_infonce_equals_infonce(tiny_model: str) -> None:
    model = build_model(tiny_model, "half-twin", "none", True, 64)
    model.eval()  # no dropout, so both losses see the same embeddings
    rows = {"query": [f"{a} {b}" for a, b in topic_pairs(6)],
            "positive": [f"the {a} and the {b}" for a, b in topic_pairs(6)]}
    features, labels = collate(model, rows, column_tasks(list(rows)), routed=True)
    plain = InfoNCELoss(model)(features, labels)
    features, labels = collate(model, rows, column_tasks(list(rows)), routed=True)
    cached = CachedInfoNCELoss(model, mini_batch_size=2)(features, labels)
    assert cached.item() == pytest.approx(plain.item(), rel=1e-5)


def test_contrastive_loss_matches_hand_computation() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
    labels = torch.tensor([1, 0, 0])
    loss = ContrastiveLoss(model=None, margin=1.0).compute_loss_from_embeddings([a, b], labels)
    positive = 0.4**2 + 0.8**2  # y d^2
    far_negative = max(0.0, 1.0 - math.sqrt(2.0)) ** 2  # beyond the margin: 0
    near_negative = (1.0 - math.sqrt(0.2**2 + 0.6**2)) ** 2  # (m - d)^2
    assert loss.item() == pytest.approx((positive + far_negative + near_negative) / 3, rel=1e-5)


def test_triplet_loss_matches_hand_computation() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    n = torch.tensor([[0.0, 1.0], [0.8, 0.6]])
    loss = TripletLoss(model=None, margin=0.2).compute_loss_from_embeddings([a, p, n])
    satisfied = max(0.0, (0.4**2 + 0.8**2) - 2.0 + 0.2)  # 0
    violated = max(0.0, 2.0 - (0.2**2 + 0.6**2) + 0.2)  # 1.8
    assert loss.item() == pytest.approx((satisfied + violated) / 2, rel=1e-5)


# training -------------------------------------------------------------------------------------
def test_training_lowers_the_loss_and_improves_retrieval(trained_twin, tiny_model: str, beir_data: Path) -> None:
    result, losses = trained_twin
    assert len(losses) == result.steps > 5
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert mrr(result.output, beir_data) > mrr(tiny_model, beir_data) + 0.05
    assert result.dev_after["ndcg@10"] > result.dev_before["ndcg@10"]
    assert not result.kept_starting_model


def test_model_card_records_the_run(trained_twin, tiny_model: str) -> None:
    result, _ = trained_twin
    card = json.loads((result.output / "training.json").read_text())
    assert card["base_model"]["path"] == str(Path(tiny_model).resolve())
    assert card["loss"]["class"] == "InfoNCELoss" and card["loss"]["formula"].startswith("L =")
    assert card["hyperparameters"]["lr"] == 1e-3 and card["hyperparameters"]["weight_decay"] == 0.01
    assert card["dev_before"] and card["dev_after"] and card["seconds"] > 0 and card["peak_memory_mb"] > 0
    assert card["data"]["dev_queries"] == 8 and card["data"]["train_queries"] == 32
    assert "## Training" in (result.output / "README.md").read_text()
    assert not (result.output / "checkpoint").exists()


@pytest.mark.parametrize("loss", ["contrastive", "triplet"])
def test_other_losses_train(loss: str, tiny_model: str, beir_data: Path, tmp_path: Path) -> None:
    losses: list[float] = []
    result = train(TrainConfig(data=beir_data, output=tmp_path / "m", model=tiny_model, loss=loss, epochs=2,
                               **FAST), on_step=lambda state: losses.append(state.losses[-1]))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert mrr(result.output, beir_data) > mrr(tiny_model, beir_data)
    assert json.loads((result.output / "training.json").read_text())["loss"]["class"].lower().startswith(loss)


def test_a_worse_model_is_never_saved_silently(tiny_model: str, beir_data: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers import SentenceTransformer

    import retriever.training.loop as loop

    scores = iter([0.9, 0.5, 0.4])
    monkeypatch.setattr(loop, "score_run", lambda run, dev: {"ndcg@10": next(scores)})
    result = train(TrainConfig(data=beir_data, output=tmp_path / "m", model=tiny_model, epochs=2, **FAST))
    assert result.kept_starting_model and "starting model is saved instead" in result.warnings[0]
    saved = SentenceTransformer(str(result.output), device="cpu").encode_query(["cat garden"])
    base = SentenceTransformer(tiny_model, device="cpu").encode_query(["cat garden"])
    assert np.allclose(saved, base, atol=1e-6)
    assert json.loads((result.output / "training.json").read_text())["kept_starting_model"] is True


# few training queries: k-fold cross-validation decides keep-or-discard, not a 10% split (issue 20) ----------
def test_few_queries_are_cross_validated_and_a_clear_gain_is_kept(tiny_model: str, beir_data: Path,
                                                                  tmp_path: Path) -> None:
    from retriever.cli import main

    assert 40 < CV_BELOW_QUERIES  # beir_data's 40 queries are few: no --dev-fraction, so CV decides
    out = tmp_path / "m"
    args = ["train", str(beir_data), "-o", str(out), "--model", tiny_model, "--epochs", "3", "--batch-size", "8",
            "--lr", "1e-3", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "training.json").read_text())
    cv = card["cross_validation"]
    assert cv["folds"] == 5 and sum(cv["fold_sizes"]) == 40 and len(cv["fold_means"]) == 5
    assert card["data"]["dev_queries"] == 0 and card["data"]["train_queries"] == 40  # nothing held out
    assert cv["kept"] and not card["kept_starting_model"] and card["steps"] > 0, cv
    assert cv["gain"] > 2 * cv["stderr"]  # tune's rule, on the paired held-out gain
    assert result.stdout.startswith("kept the fine-tuned model: 5-fold CV over 40 judged queries")
    assert "dev nDCG@10:" not in result.stdout
    assert mrr(out, beir_data) > mrr(tiny_model, beir_data) + 0.05


def test_judgments_that_training_cannot_generalise_keep_the_starting_model(tiny_model: str,
                                                                            tmp_path: Path) -> None:
    """Each query is judged relevant to a document that shares no word with it: learning those pairs on four
    folds does not help the fifth, so the trained model is discarded and the starting model saved."""
    from sentence_transformers import SentenceTransformer

    root = write_beir(tmp_path / "shuffled")
    qrels = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{(i + 7) % 40}\t1" for i in range(40)]
    (root / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n")
    settings = {k: v for k, v in FAST.items() if k != "dev_fraction"}
    result = train(TrainConfig(data=root, output=tmp_path / "m", model=tiny_model, epochs=3, **settings))
    assert result.cv is not None and not result.cv["kept"], result.cv
    assert result.kept_starting_model and result.steps == 0
    assert result.card["cross_validation"]["folds"] == 5 and len(result.cv["fold_means"]) == 5
    saved = SentenceTransformer(str(result.output), device="cpu").encode_query(["cat garden"])
    base = SentenceTransformer(tiny_model, device="cpu").encode_query(["cat garden"])
    assert np.allclose(saved, base, atol=1e-6)


def test_an_explicit_dev_fraction_keeps_the_dev_split(beir_data: Path, tmp_path: Path) -> None:
    from retriever.training.crossval import uses_cv
    from retriever.training.data import read_training_data

    data = read_training_data(beir_data)
    assert uses_cv(TrainConfig(data=beir_data, output=tmp_path / "m"), data)
    assert not uses_cv(TrainConfig(data=beir_data, output=tmp_path / "m", dev_fraction=0.1), data)


def test_ctrl_c_saves_a_checkpoint_that_resume_continues(tiny_model: str, beir_data: Path, tmp_path: Path) -> None:
    settings = dict(data=beir_data, model=tiny_model, epochs=2, **FAST)
    straight = train(TrainConfig(output=tmp_path / "straight", **settings))

    def interrupt(state) -> None:
        if state.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as stopped:
        train(TrainConfig(output=tmp_path / "resumed", **settings), on_step=interrupt)
    assert stopped.value.step == 3 and (tmp_path / "resumed" / "checkpoint" / "state.pt").exists()
    with pytest.raises(RetrieverError, match="--resume"):
        train(TrainConfig(output=tmp_path / "resumed", **settings))
    resumed = train(TrainConfig(output=tmp_path / "resumed", resume=True, **settings))
    assert resumed.steps == straight.steps and not (tmp_path / "resumed" / "checkpoint").exists()
    from safetensors.torch import load_file

    a, b = load_file(straight.output / "model.safetensors"), load_file(resumed.output / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def _distance_from_start(tiny_model: str, work: Path, l2sp: float) -> tuple[float, float]:
    """Train the twin 2 epochs with ``Trainer`` (no dev, nothing discarded); squared distance to the start, loss."""
    from datasets import Dataset

    from retriever.training.checkpoint import load_checkpoint
    from retriever.training.loop import Trainer, l2sp_penalty, starting_weights
    from retriever.training.losses import make_loss

    torch.manual_seed(0)
    config = TrainConfig(data=work, output=work, model=tiny_model, epochs=2, l2sp=l2sp, **FAST)
    model = build_model(tiny_model, "twin", "none", True, 64)
    start = starting_weights(model)
    rows = [{"query": f"{a} {b}", "positive": f"the {a} and the {b} are in the data"} for a, b in topic_pairs(32)]
    trainer = Trainer(model, make_loss(config, model), Dataset.from_list(rows), None, config, {}, work / "checkpoint")
    state = trainer.run()
    if l2sp:  # the checkpoint written after epoch 1 keeps the starting weights, so a resumed run pulls toward them
        saved = load_checkpoint(work / "checkpoint").training_state["anchor"]
        assert all(torch.equal(saved[name], value) for name, value in start.items())
    return float(l2sp_penalty(model, start).detach()), state.losses[-1]


def test_l2sp_keeps_the_weights_near_the_start(tiny_model: str, tmp_path: Path) -> None:
    free, _ = _distance_from_start(tiny_model, tmp_path / "free", 0.0)
    held, _ = _distance_from_start(tiny_model, tmp_path / "held", 10.0)
    assert free > 0 and held < 0.5 * free, (free, held)
    with pytest.raises(RetrieverError, match="l2sp"):
        TrainConfig(data=tmp_path, output=tmp_path, l2sp=-1.0)


def test_resume_without_checkpoint_is_an_error(tmp_path: Path, beir_data: Path) -> None:
    with pytest.raises(RetrieverError, match="no checkpoint"):
        train(TrainConfig(data=beir_data, output=tmp_path / "none", resume=True, progress=False))


# data, examples, negatives, batches ----------------------------------------------------------------
def test_jsonl_formats_and_dev_split(tmp_path: Path) -> None:
    rows = [{"query": f"{a} {b}", "positive": f"the {a} and the {b}", "negative": ["the sun", "the tea"]}
            for a, b in topic_pairs(8)]
    rows += [{"query": "cat dog", "document": "a cat and a dog", "label": 1},
             {"query": "cat dog", "document": "a fish", "label": 0}]
    data = load_training_data(write_jsonl(tmp_path / "train.jsonl", rows), dev_fraction=0.25, seed=1)
    assert len(data.train) + len(data.dev) == 9 and len(data.dev) == 2
    assert not set(data.train) & set(data.dev)
    everything = {**data.train, **data.dev}
    assert sum(r > 0 for d in everything.values() for r in d.values()) == 9
    assert sum(r == 0 for d in everything.values() for r in d.values()) == 17
    again = load_training_data(tmp_path / "train.jsonl", dev_fraction=0.25, seed=1)
    assert again.dev == data.dev  # seeded


def test_examples_for_each_loss(beir_data: Path) -> None:
    data = load_training_data(beir_data, dev_fraction=0.0)
    negatives = mine_negatives(data.queries, data.train, [Bm25Ranker(data.corpus)], 1, 1, 10, seed=0)
    infonce = build_examples("infonce", data.queries, data.corpus, data.train, negatives, 1, 0)
    assert infonce.column_names == ["query", "positive", "negative_1"] and len(infonce) == 40
    triplet = build_examples("triplet", data.queries, data.corpus, data.train, negatives, 1, 0)
    assert triplet.column_names == ["query", "positive", "negative"]
    pairs = build_examples("contrastive", data.queries, data.corpus, data.train, negatives, 1, 0)
    assert pairs.column_names == ["query", "document", "label"] and sorted(set(pairs["label"])) == [0, 1]
    assert column_tasks(pairs.column_names) == {"query": "query", "document": "document"}


def test_mined_negatives_skip_top_ranks_and_never_take_positives(beir_data: Path) -> None:
    data = load_training_data(beir_data, dev_fraction=0.0)
    qrels = {q: {**docs, "d39": 0} for q, docs in data.train.items() if q != "q39"}  # a known negative each
    ranker = Bm25Ranker(data.corpus)
    negatives = mine_negatives(data.queries, qrels, [ranker], per_query=3, skip=2, depth=8, seed=7)
    rankings = dict(zip(sorted(qrels), ranker.rank([data.queries[q] for q in sorted(qrels)], 40)))
    for qid, chosen in negatives.items():
        assert chosen[0] == "d39" and len(chosen) == 3
        positives = {d for d, r in qrels[qid].items() if r > 0}
        for doc in chosen[1:]:
            assert doc not in positives
            assert 2 <= rankings[qid].index(doc) < 8
    assert negatives == mine_negatives(data.queries, qrels, [ranker], 3, 2, 8, seed=7)


def test_dev_sub_corpus_keeps_positives_and_each_querys_bm25_top(beir_data: Path) -> None:
    from retriever.training.dev import build_dev_set

    data = load_training_data(beir_data, dev_fraction=0.25, seed=3)
    ranker = Bm25Ranker(data.corpus)
    dev = build_dev_set(data.queries, data.corpus, data.dev, ranker, max_docs=15, depth=5, seed=0)
    assert set(dev.queries) == set(data.dev) and len(dev.docs) == 15
    positives = {d for docs in data.dev.values() for d in docs}
    tops = {ranking[0] for ranking in ranker.rank([data.queries[q] for q in data.dev], 1)}
    assert positives <= set(dev.docs) and tops <= set(dev.docs)
    assert build_dev_set(data.queries, data.corpus, {}, ranker, 15, 5, 0) is None


def test_eval_steps_and_dense_negatives(tiny_model: str, beir_data: Path, tmp_path: Path) -> None:
    result = train(TrainConfig(data=beir_data, output=tmp_path / "m", model=tiny_model, negatives="both",
                               negatives_per_query=2, eval_steps=2, max_steps=4, **FAST))
    assert [h["step"] for h in result.card["dev_history"]] == [0, 2, 4]
    assert result.card["examples"] == 32 and result.steps == 4


def test_batches_never_repeat_a_text_and_cover_every_row() -> None:
    from datasets import Dataset

    rows = [{"query": f"q{i % 5}", "positive": f"d{i}"} for i in range(23)]  # 5 queries, several positives
    batches = epoch_batches(Dataset.from_list(rows), 4, seed=0, epoch=0, distinct=True)
    assert sorted(i for b in batches for i in b) == list(range(23))
    for batch in batches:
        assert len({rows[i]["query"] for i in batch}) == len(batch)
    assert batches == epoch_batches(Dataset.from_list(rows), 4, seed=0, epoch=0, distinct=True)


# bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"query": "a", "positive": "b"}', '{"query": "a", "positive": '], r"train\.jsonl:2: malformed JSON"),
        (['{"positive": "b"}'], r"train\.jsonl:1: missing field 'query'"),
        (['{"query": "a"}'], r"train\.jsonl:1: a training record needs"),
        (['{"query": "a", "document": "b"}'], r"train\.jsonl:1: field 'label' must be 1"),
        (['{"query": "a", "positive": ""}'], r"train\.jsonl:1: field 'positive' must be a non-empty string"),
        (["[1, 2]"], r"train\.jsonl:1: expected a JSON object"),
        ([""], r"no training records"),
    ],
)
def test_bad_jsonl_is_reported_by_file_and_line(lines: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match=message):
        load_training_data(write_jsonl(tmp_path / "train.jsonl", lines))


def test_bad_beir_qrels_are_reported_by_file_and_line(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir", count=4)
    with (root / "qrels" / "train.tsv").open("a") as handle:
        handle.write("q1\tmissing-doc\t1\n")
    with pytest.raises(InputFormatError, match=r"train\.tsv:6: document id 'missing-doc' is not in corpus"):
        load_training_data(root)
    (root / "qrels" / "train.tsv").unlink()
    with pytest.raises(RetrieverError, match="qrels/train.tsv is missing"):
        load_training_data(root)


def test_cli_reports_bad_data_in_one_line(tmp_path: Path) -> None:
    from retriever.cli import main

    bad = write_jsonl(tmp_path / "train.jsonl", ['{"query": "a", "positive": "b"}', "not json"])
    result = CliRunner().invoke(main, ["train", str(bad), "--output", str(tmp_path / "m"), "--quiet"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "train.jsonl:2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["train", str(bad), "--output", str(tmp_path / "m"), "--negatives-range", "9"])
    assert result.exit_code == 1 and result.stderr.startswith("error: --negatives-range")


def test_cli_trains_and_saves_a_loadable_model(tiny_model: str, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from retriever.cli import main

    rows = [{"query": f"{a} {b}", "positive": f"the {a} and the {b} are in the data"} for a, b in topic_pairs(12)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "model"
    args = ["train", str(data), "--output", str(out), "--model", tiny_model, "--max-steps", "2",
            "--batch-size", "4", "--negatives-range", "1:5", "--device", "cpu", "--quiet", "--dev-fraction", "0.1",
            "--l2sp", "0.5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "dev nDCG@10:" in result.stdout and str(out) in result.stdout
    assert SentenceTransformer(str(out), device="cpu").encode(["cat"]).shape == (1, 32)
    card = json.loads((out / "training.json").read_text())
    assert card["steps"] == 2 and card["hyperparameters"]["negatives_skip"] == 1
    assert card["hyperparameters"]["l2sp"] == 0.5
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "--overwrite" in again.stderr


def test_cli_help_shows_the_configured_defaults() -> None:
    from retriever.cli import main

    text = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    assert f"[default: {DEFAULT_EPOCHS}]" in text and f"[default: {DEFAULT_BATCH_SIZE}]" in text
    assert float(re.search(r"Learning rate \[default: ([^\]]+)\]", text).group(1)) == DEFAULT_LR
    assert f"fewer than {CV_BELOW_QUERIES} training queries" in text


# --overwrite replaces the old model only once the new run has succeeded (issue 9, item 11) --------------
def test_overwrite_keeps_the_old_model_until_the_new_run_succeeds(tiny_model: str, beir_data: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import retriever.training.pipeline as pipeline

    out = tmp_path / "model"
    settings = dict(data=beir_data, output=out, model=tiny_model, max_steps=2, **FAST)
    train(TrainConfig(**settings))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "prepare", broken)
        with pytest.raises(RuntimeError):
            train(TrainConfig(overwrite=True, **settings))
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before, "the old model is intact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no staging folder is left behind"

    def interrupt(state) -> None:
        if state.global_step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(overwrite=True, **{**settings, "max_steps": 3}), on_step=interrupt)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before, "still the old model"
    resumed = train(TrainConfig(resume=True, **settings))
    assert resumed.output == out and resumed.steps == 3
    assert json.loads((out / "training.json").read_text())["steps"] == 3, "the new model replaced the old one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_cli_seed_zero_is_zero_for_the_rerank_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import retriever.training.head as head
    from retriever.cli import main

    seeds: list[int] = []

    def fake_head(data, model, output, progress, seed):
        seeds.append(seed)
        raise RetrieverError("stop here")

    monkeypatch.setattr(head, "train_mlp_head", fake_head)
    for extra in (["--seed", "0"], []):
        CliRunner().invoke(main, ["train", str(tmp_path), "-o", str(tmp_path / "m"), "--head", "mlp", *extra])
    assert seeds == [0, 42]
