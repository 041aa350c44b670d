"""Label-free adaptation to a corpus: ``retriever adapt`` and ``from retriever.training.adapt import adapt``.

    from retriever.training.adapt import AdaptConfig, adapt
    result = adapt(AdaptConfig(corpus="docs/", output="models/docs-adapted", minutes=15))
    print(result.verdict)

Modules, one job each: ``corpus`` (documents as ``retriever index`` reads them), ``pairs/`` (one
module per pair source), ``data`` (pools, held-out documents, the sample), ``budget`` (measured
speed -> pairs that fit), ``fusion`` (the hybrid weight) and ``pipeline`` (``adapt``). Training
itself is ``retriever.training.pipeline.train``.
"""

from __future__ import annotations

from retriever.training.adapt.config import AdaptConfig
from retriever.training.adapt.pipeline import AdaptResult, adapt

__all__ = ["adapt", "AdaptConfig", "AdaptResult"]
