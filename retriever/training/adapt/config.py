"""What an adaptation run is asked to do: ``AdaptConfig`` and its defaults, in one place.

``retriever adapt`` is ``retriever train`` on pairs cut from the corpus, sized to a time budget:
one pass over as many pairs as ``minutes`` allow on this machine (measured before training), the
same InfoNCE loss with GradCache and BM25 hard negatives, then the keep-or-discard rule on
held-out pseudo-pairs and a re-chosen hybrid fusion weight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retriever.encoding.encoder import DEFAULT_MODEL
from retriever.errors import RetrieverError
from retriever.training.adapt.pairs import SOURCE_NAMES
from retriever.training.config import DEFAULT_BATCH_SIZE, DEFAULT_SEED, NEGATIVE_SOURCES, TrainConfig

DEFAULT_SOURCES = ("ict", "title")
DEFAULT_MINUTES = 15.0  # the whole run: reading, mining, training, dev checks, saving
# SciFact, 15 minutes: at retriever train's lr 2e-4, 256 tokens and GradCache only 21 steps (672 pairs) fitted
# and held-out pseudo-pair nDCG@10 fell (0.888 -> 0.873): pseudo-pairs are noisier than labels, so a lower lr,
# and 128-token texts without GradCache's second forward pass: 17s steps instead of 44s. With these, 1,088 pairs
# in 10.9 minutes still lowered it (0.867 -> 0.858), and the base model was kept again
# (docs/training.md, "Adapting to SciFact").
DEFAULT_LR = 5e-5
DEFAULT_MAX_SEQ_LENGTH = 128
DEFAULT_NEGATIVES_GUARD = 0.9  # a BM25 candidate scoring >= 90% of the source document is no safe negative
DEFAULT_KEEP_MARGIN = 0.01  # held-out pseudo-pair nDCG@10 gain needed to keep the adapted model
DEFAULT_HYBRID_NOISE = 0.005  # hybrid may not fall more than this below the base model's on held-out pairs
DEV_MAX_DOCS = 800  # held-out sub-corpus: the held-out documents (as cut), their BM25 neighbours, others


@dataclass
class AdaptConfig:
    corpus: str | Path
    output: str | Path
    model: str = DEFAULT_MODEL
    sources: tuple[str, ...] = DEFAULT_SOURCES
    minutes: float = DEFAULT_MINUTES
    pairs: int | None = None  # train on exactly this many pairs instead of sizing them to ``minutes``
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    cached: bool = False  # GradCache: bounded memory for a second forward pass; 128-token batches of 32 fit without
    negatives: str = "bm25"
    negatives_per_query: int = 1
    negatives_guard: float | None = DEFAULT_NEGATIVES_GUARD
    keep_margin: float = DEFAULT_KEEP_MARGIN
    hybrid_noise: float = DEFAULT_HYBRID_NOISE
    seed: int = DEFAULT_SEED
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.corpus, self.output = Path(self.corpus), Path(self.output)
        self.sources = tuple(self.sources)
        unknown = [s for s in self.sources if s not in SOURCE_NAMES]
        if not self.sources or unknown:
            raise RetrieverError(f"pair sources must be some of {', '.join(SOURCE_NAMES)}, not {', '.join(unknown)}")
        if self.minutes <= 0:
            raise RetrieverError("minutes must be more than 0")
        if self.pairs is not None and self.pairs < 1:
            raise RetrieverError("pairs must be at least 1")
        if self.negatives not in NEGATIVE_SOURCES:
            raise RetrieverError(f"negatives must be one of {', '.join(NEGATIVE_SOURCES)}, not {self.negatives!r}")
        if self.hybrid_noise < 0:
            raise RetrieverError("hybrid_noise cannot be negative")
        self.train_config(max_steps=0)  # validates the shared options with retriever train's own checks

    def train_config(self, max_steps: int) -> TrainConfig:
        """The ``retriever train`` configuration this run trains with."""
        return TrainConfig(
            data=self.corpus, output=self.output, model=self.model, epochs=1, batch_size=self.batch_size,
            lr=self.lr, max_seq_length=self.max_seq_length, cached=self.cached, negatives=self.negatives,
            negatives_per_query=self.negatives_per_query, negatives_guard=self.negatives_guard,
            keep_margin=self.keep_margin, dev_max_docs=DEV_MAX_DOCS, max_steps=max_steps, seed=self.seed,
            overwrite=self.overwrite, progress=self.progress, command="adapt",
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["corpus"], out["output"], out["sources"] = str(self.corpus), str(self.output), list(self.sources)
        return out
