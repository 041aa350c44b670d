"""``retriever calibrate``: choose the verification threshold of an index on labelled pairs.

Positives are the judged-relevant (query, document) pairs of a BEIR qrels split that are in
the index; negatives are mined: each query's top dense results that are not judged at all
(hard negatives, the pairs a threshold must reject). Queries are split 70/30 (seeded): the
threshold is chosen on the first part and precision, recall and F1 are reported on the rest.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import RetrieverError
from retriever.eval.beir import read_qrels, read_queries
from retriever.verification.verdict import Calibration, choose_threshold, precision_recall_f1

HELD_OUT = 0.3


def labelled_pairs(retriever: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                   negatives: int) -> list[tuple[str, str, int]]:
    """(query id, doc id, label) pairs: qrels positives in the index, plus mined hard negatives."""
    present = set(retriever.snapshot.live_documents({d for docs in qrels.values() for d in docs}))
    qids = [q for q, docs in qrels.items() if q in queries and any(r > 0 and d in present for d, r in docs.items())]
    if not qids:
        raise RetrieverError("no judged-relevant document of these qrels is in the index: nothing to calibrate on")
    pairs = [(q, d, 1) for q in qids for d, r in qrels[q].items() if r > 0 and d in present]
    ranked = retriever.search_many([queries[q] for q in qids], k=negatives + len(max(qrels.values(), key=len)) + 1,
                                   mode="dense")
    for qid, hits in zip(qids, ranked):
        unjudged = [h.doc_id for h in hits if h.doc_id not in qrels[qid]]
        pairs += [(qid, d, 0) for d in unjudged[:negatives]]
    return pairs


def calibrate_index(retriever: Any, dataset: str | Path, split: str = "train", target_precision: float | None = None,
                    negatives: int = 3, seed: int = 0) -> Calibration:
    dataset = Path(dataset)
    for name in ("queries.jsonl", f"qrels/{split}.tsv"):
        if not (dataset / name).exists():
            raise RetrieverError(f"{dataset} has no {name}: calibration needs BEIR queries and qrels")
    queries = read_queries(dataset / "queries.jsonl")
    qrels = read_qrels(dataset / "qrels" / f"{split}.tsv")
    pairs = labelled_pairs(retriever, queries, qrels, negatives)
    qids = sorted({q for q, _, _ in pairs})
    random.Random(seed).shuffle(qids)
    held_out = set(qids[: max(1, int(len(qids) * HELD_OUT))]) if len(qids) > 1 else set()
    scores = retriever.similarities([queries[q] for q, _, _ in pairs], [d for _, d, _ in pairs])
    labels = np.asarray([label for _, _, label in pairs])
    fit = np.asarray([q not in held_out for q, _, _ in pairs])
    test = ~fit if held_out else fit
    if labels[fit].min() == labels[fit].max():
        raise RetrieverError("calibration needs both matching and non-matching pairs")
    threshold = choose_threshold(scores[fit], labels[fit], target_precision)
    precision, recall, f1 = precision_recall_f1(scores[test], labels[test], threshold)
    objective = f"precision>={target_precision}" if target_precision is not None else "best F1"
    result = Calibration(threshold, objective, precision, recall, f1, int(test.sum()), int(labels[test].sum()))
    retriever.set_calibration({**asdict(result), "dataset": str(dataset), "split": split, "seed": seed})
    return result
