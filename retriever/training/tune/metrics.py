"""Per-query nDCG@10 of a ranking against graded judgments (unjudged documents count as not relevant).

Cross-validation needs the score of each query, not only the mean that ``retriever.eval.metrics`` (ranx)
returns; the formula is trec_eval's (linear gains, log2 discounts), so the means agree with ranx.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CUTOFF = 10


def ndcg_at_10(ranking: Sequence[str], judged: dict[str, int]) -> float:
    """nDCG@10 of ``ranking`` (document ids, best first); 0.0 when nothing is judged relevant."""
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:CUTOFF]
    if not ideal:
        return 0.0
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranking[:CUTOFF])
              if judged.get(doc, 0) > 0)
    best = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / best
