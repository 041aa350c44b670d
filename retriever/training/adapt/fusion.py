"""Re-choosing the hybrid fusion weight for an adapted model, on held-out pseudo-pairs.

Pseudo-queries are not real queries: a sentence cut from a document shares more words with it
than a user's question does, so the weight that is best on them is not the weight to use. What
they do measure is how the balance *moves* when the dense side improves. So the weight that is
best on them is found for the base model and for the adapted model, and the default (0.5, chosen
on real queries) is shifted by the difference: ``alpha = 0.5 + (best_adapted - best_base)``,
within ``[MIN_ALPHA, MAX_ALPHA]``. Each "best" is the centre of the best window of three
neighbouring grid points (smoothed over the grid), so one lucky point does not decide it.
"""

from __future__ import annotations

from dataclasses import dataclass

from retriever.eval.metrics import Run, evaluate
from retriever.search.fusion import convex_combination
from retriever.search.ranking import SearchOptions
from retriever.training.dev import DEV_METRIC, DevSet

GRID = tuple(round(0.1 * i, 1) for i in range(11))
MIN_ALPHA, MAX_ALPHA = 0.2, 0.8
DEPTH = 100


@dataclass
class FusionChoice:
    alpha: float
    best_base: float
    best_adapted: float
    base_hybrid: float  # held-out nDCG@10 of the base model's hybrid at the default weight
    adapted_hybrid: float  # ... and of the adapted model's at the chosen weight
    curve_base: dict[float, float]
    curve_adapted: dict[float, float]

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "best_on_pseudo_pairs": {"base": self.best_base, "adapted": self.best_adapted},
                "hybrid_ndcg@10": {"base_at_default": self.base_hybrid, "adapted_at_alpha": self.adapted_hybrid},
                "curve": {"base": self.curve_base, "adapted": self.curve_adapted}}


def lexical_run(dev: DevSet) -> Run:
    """BM25 over the held-out sub-corpus, as the index's lexical side scores it."""
    from retriever.index.lexical import LexicalIndex

    ids = list(dev.docs)
    index = LexicalIndex().index(ids, [dev.docs[i] for i in ids])
    qids = list(dev.queries)
    hits = index.retrieve([dev.queries[q] for q in qids], k=DEPTH)
    return {q: dict(found) for q, found in zip(qids, hits)}


def hybrid_score(dense: Run, lexical: Run, dev: DevSet, alpha: float) -> float:
    run = {}
    for qid in dev.queries:
        ranked_dense = sorted(dense.get(qid, {}).items(), key=lambda kv: -kv[1])[:DEPTH]
        ranked_lexical = sorted(lexical.get(qid, {}).items(), key=lambda kv: -kv[1])[:DEPTH]
        run[qid] = dict(convex_combination(ranked_dense, ranked_lexical, alpha))
    return evaluate(run, dev.qrels, (DEV_METRIC,)).scores[DEV_METRIC]


def choose_alpha(dev: DevSet, base_run: Run, adapted_run: Run) -> FusionChoice:
    lexical = lexical_run(dev)
    curve_base = {a: hybrid_score(base_run, lexical, dev, a) for a in GRID}
    curve_adapted = {a: hybrid_score(adapted_run, lexical, dev, a) for a in GRID}
    best_base, best_adapted = smoothed_best(curve_base), smoothed_best(curve_adapted)
    default = SearchOptions.alpha
    alpha = round(min(MAX_ALPHA, max(MIN_ALPHA, default + best_adapted - best_base)), 2)
    return FusionChoice(alpha, best_base, best_adapted, curve_base[default],
                        hybrid_score(adapted_run, lexical, dev, alpha), curve_base, curve_adapted)


def smoothed_best(curve: dict[float, float]) -> float:
    """The grid point whose three-point neighbourhood scores best on average (ties: nearest the default)."""
    points = sorted(curve)

    def window(i: int) -> float:
        near = [curve[points[j]] for j in (i - 1, i, i + 1) if 0 <= j < len(points)]
        return sum(near) / len(near)

    best = max(range(len(points)), key=lambda i: (round(window(i), 6), -abs(points[i] - SearchOptions.alpha)))
    return points[best]
