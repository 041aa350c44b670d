"""``tune(retriever, qrels)``: learn from judged queries, keep only what cross-validation says does not lose.

1. Re-choose the hybrid weight and fusion method on the current index (the model that made the judgments).
2. Fine-tune the twin (judged-irrelevant hits as hard negatives, a low learning rate, few steps) fold by
   fold, and choose the WiSE-FT mixing weight on the held-out folds; the base model (weight 0) is the
   reference and wins unless the held-out gain is clear. A kept model re-encodes the index as a new generation.
   The hybrid setting is not re-chosen after it: on the queries it was trained on, a tuned model's dense side
   looks better than it is (on SciFact, alpha drifted from 0.5 to 0.7 and test hybrid nDCG@10 fell).
3. Record what was tried, on what, and what was kept, in the manifest (a record is written even when
   nothing is kept). ``Retriever.load`` then searches with the kept model and setting without any option.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retriever.encoding.encoder import recorded_model_location
from retriever.errors import RetrieverError
from retriever.training.tune import fusion as fusions
from retriever.training.tune.apply import commit_reencoded, commit_settings
from retriever.training.tune.cv import DEFAULT_FOLDS, DEFAULT_MIN_GAIN, CvChoice, choose, make_folds
from retriever.training.tune.finetune import (
    DEFAULT_MIXES,
    MIN_TRAIN_QUERIES,
    RERANK_DEPTH,
    FineTuneSetting,
    JudgedData,
    cross_validated_scores,
    final_model,
    mix_name,
)

if TYPE_CHECKING:
    from retriever.retriever import Retriever

FINE_TUNE_FOLDS = 3  # each fold trains a model: 3 on a CPU (the hybrid setting, which costs nothing, uses 5)
MODELS_DIR = "models"  # inside the index folder: the tuned models its generations name
QrelsByText = dict[str, dict[str, int]]  # query text -> doc id -> grade (0, 1, 2)


@dataclass
class TuneReport:
    """What tune tried and kept; ``summary`` is the one line the CLI prints."""

    summary: str
    fusion: CvChoice
    fine_tune: CvChoice | None
    model_path: str | None  # the tuned model, when one was kept
    wise_weight: float | None
    judged_queries: int
    seconds: float
    peak_memory_mb: float
    record: dict[str, Any] = field(default_factory=dict)


def tune(retriever: Retriever, qrels: QrelsByText, fine_tune: bool = True, folds: int = DEFAULT_FOLDS,
         settings: Sequence[FineTuneSetting] = (FineTuneSetting(),), mixes: Sequence[float] = DEFAULT_MIXES,
         min_gain: float = DEFAULT_MIN_GAIN, seed: int = 0, log: Callable[[str], None] | None = None) -> TuneReport:
    """Tune ``retriever``'s index on judged queries (query text -> doc id -> grade); see the module doc."""
    started = time.perf_counter()
    log = log or (lambda message: None)
    if retriever.snapshot is None:
        raise RetrieverError(f"index {retriever.layout.name} is empty; index documents before tuning it")
    queries, judged = _judged(qrels)
    if not qrels:
        raise RetrieverError(f"no judgments for index {retriever.layout.name}: judge some results first")
    fold_sets = make_folds(sorted(judged), folds, seed)
    base_path = recorded_model_location(retriever.manifest.model, retriever.layout.root)
    # the hybrid setting first, on the model that made the judgments: a model trained on the judged queries
    # would make its own dense side look better on them than it is (alpha chosen after it drifted up)
    fusion_choice = _choose_fusion(retriever, queries, judged, fold_sets, min_gain)
    chosen = fusions.Fusion.parse(fusion_choice.chosen)
    defaults = {**retriever.manifest.model.get("search_defaults", {}), **fusions.describe(chosen)}
    model_choice, model_path, weight, setting = None, None, None, None
    if fine_tune:
        fine_folds = make_folds(sorted(judged), min(folds, FINE_TUNE_FOLDS), seed)  # a training run per fold
        model_choice, setting = _choose_model(retriever, queries, judged, fine_folds, settings, mixes, chosen,
                                              base_path, min_gain, seed, log)
        if model_choice.kept:
            weight = _weight_of(model_choice.chosen, setting, mixes)
            model_path = _train_and_reencode(retriever, queries, judged, setting, weight, chosen, base_path,
                                             model_choice, defaults, seed, log)
            retriever = type(retriever).load(retriever.layout.root, wait=retriever.wait)
    summary = _summary(fusion_choice, chosen, model_choice, weight)
    record = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "judged_queries": len(qrels),
        "queries_with_relevant": len(judged),
        "folds": len(fold_sets),
        "fusion": {**fusion_choice.to_dict(), "kept_setting": fusions.describe(chosen)},
        "fine_tune": ({**model_choice.to_dict(), "setting": setting.to_dict() if setting else None,
                       "wise_weight": weight, "model_path": model_path} if model_choice else None),
        "base_model": base_path,
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
    }
    commit_settings(retriever, defaults if fusion_choice.kept or model_path else None, record)
    retriever.refresh()
    return TuneReport(summary, fusion_choice, model_choice, model_path, weight, len(qrels),
                      time.perf_counter() - started, _peak_memory_mb(), record)


def _judged(qrels: QrelsByText) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Query ids for the judged query texts, and the qrels of those with at least one relevant document."""
    queries = {f"q{i:05d}": text for i, text in enumerate(sorted(qrels))}
    judged = {q: {str(d): int(g) for d, g in qrels[t].items()} for q, t in queries.items()
              if any(g > 0 for g in qrels[t].values())}
    return queries, judged


def _choose_fusion(retriever: Retriever, queries: dict[str, str], judged: dict[str, dict[str, int]],
                   fold_sets: list[list[str]], min_gain: float) -> CvChoice:
    current = fusions.current_fusion(retriever)
    qids = sorted(judged)
    dense, lexical = fusions.side_runs(retriever, [queries[q] for q in qids]) if qids else ([], [])
    settings = fusions.candidate_fusions(current)
    scores = fusions.fusion_scores(settings, qids, dense, lexical, judged)
    return choose(scores, current.name, fold_sets, min_gain)


def _choose_model(retriever: Retriever, queries: dict[str, str], judged: dict[str, dict[str, int]],
                  fold_sets: list[list[str]], settings: Sequence[FineTuneSetting], mixes: Sequence[float],
                  current: fusions.Fusion, base_path: str, min_gain: float, seed: int,
                  log: Callable[[str], None]) -> tuple[CvChoice, FineTuneSetting | None]:
    if len(judged) < MIN_TRAIN_QUERIES or len(fold_sets) < 2:
        why = (f"only {len(judged)} judged queries with a relevant result; fine-tuning needs at least "
               f"{MIN_TRAIN_QUERIES}")
        return CvChoice("base", "base", "base", False, why, len(judged), len(fold_sets)), None
    data = judged_data(retriever, queries, judged, current)
    scores: dict[str, dict[str, float]] = {}
    for setting in settings:
        log(f"fine-tuning {setting.name} on {len(fold_sets)} folds of {len(judged)} judged queries")
        scores.update(cross_validated_scores(base_path, data, fold_sets, setting, mixes, current, seed, log))
    choice = choose(scores, "base", fold_sets, min_gain)
    setting = next((s for s in settings if choice.chosen.startswith(s.name)), settings[0])
    return choice, setting


def judged_data(retriever: Retriever, queries: dict[str, str], judged: dict[str, dict[str, int]],
                current: fusions.Fusion) -> JudgedData:
    """Texts, BM25 rankings and re-ranking candidates of the judged queries, from the index itself."""
    qids = sorted(judged)
    dense, lexical = fusions.side_runs(retriever, [queries[q] for q in qids])
    candidates = {}
    for q, d, lx in zip(qids, dense, lexical):
        top = current.fuse(d, lx)[:RERANK_DEPTH]
        candidates[q] = list(dict.fromkeys(top + sorted(judged[q])))
    needed = {d for q in qids for d in candidates[q]} | {d for lx in lexical for d, _ in lx[:30]}
    texts = {}
    for doc_id in sorted(needed):
        doc = retriever.get(doc_id)
        if doc is not None:
            from retriever.ingest.chunking import encoding_text

            texts[doc_id] = encoding_text(doc.title, doc.text)
    candidates = {q: [d for d in c if d in texts] for q, c in candidates.items()}
    qrels = {q: {d: g for d, g in judged[q].items() if d in texts} for q in qids}
    qrels = {q: r for q, r in qrels.items() if any(g > 0 for g in r.values())}
    return JudgedData({q: queries[q] for q in qids}, qrels, texts, dict(zip(qids, lexical)), candidates)


def _weight_of(name: str, setting: FineTuneSetting, mixes: Sequence[float]) -> float:
    return next(w for w in mixes if mix_name(setting, w) == name)


def _train_and_reencode(retriever: Retriever, queries: dict[str, str], judged: dict[str, dict[str, int]],
                        setting: FineTuneSetting, weight: float, current: fusions.Fusion, base_path: str,
                        choice: CvChoice, defaults: dict[str, Any], seed: int, log: Callable[[str], None]) -> str:
    """Train on every judged query, save the WiSE mix inside the index folder, re-encode the index with it."""
    from retriever.encoding.encoder import Encoder

    data = judged_data(retriever, queries, judged, current)
    model = final_model(base_path, data, setting, weight, seed, log)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = retriever.layout.root / MODELS_DIR / f"tuned-{stamp}"
    staging = target.with_name(f".{target.name}.saving")
    model.save(str(staging), create_model_card=False)
    staging.rename(target)  # a model folder is either whole or absent
    recorded = retriever.manifest.model
    encoder = Encoder(str(target), backend=recorded.get("backend", "torch"), quantize=recorded.get("quantize", "none"))
    log(f"re-encoding {retriever.manifest.counts.get('passages', 0)} passages with the tuned model")
    record = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "judged_queries": len(queries),
              "fine_tune": {**choice.to_dict(), "setting": setting.to_dict(), "wise_weight": weight,
                            "model_path": target.relative_to(retriever.layout.root).as_posix()},
              "base_model": base_path, "summary": "re-encoded"}
    commit_reencoded(retriever, encoder, defaults, record)
    return target.relative_to(retriever.layout.root).as_posix()  # relative to the index folder, as recorded


def _summary(fusion_choice: CvChoice, chosen: fusions.Fusion, model_choice: CvChoice | None,
             weight: float | None) -> str:
    kept = []
    if model_choice is not None and model_choice.kept:
        kept.append(f"the fine-tuned model (WiSE weight {weight:.2f}; {model_choice.reason})")
    if fusion_choice.kept:
        setting = "RRF fusion" if chosen.method == "rrf" else f"convex fusion with alpha {chosen.alpha:.2f}"
        kept.append(f"{setting} ({fusion_choice.reason})")
    if kept:
        return "tune kept " + " and ".join(kept)
    why = [f"hybrid setting: {fusion_choice.reason}"]
    if model_choice is not None:
        why.insert(0, f"model: {model_choice.reason}")
    return "tune kept nothing, the index is unchanged (" + "; ".join(why) + ")"


def _peak_memory_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def models_dir(index_dir: Path) -> Path:
    return Path(index_dir) / MODELS_DIR
