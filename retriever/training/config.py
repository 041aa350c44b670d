"""What a training run is asked to do: ``TrainConfig`` and the CPU defaults, in one place.

The defaults are sized for the default model (all-MiniLM-L6-v2, 22M parameters) on a laptop
CPU: on BEIR SciFact's training split (809 queries, 920 pairs, 5,183 abstracts) two epochs of
InfoNCE with one BM25 hard negative per query, batches of 32 and 256-token documents are 53
optimiser steps; the run (mining, dev evaluations, saving) takes about 15 minutes on 2 cores.
The learning rate was chosen by held-out cross-validation on the training queries
(benchmarks/twin_cv_sweep.py); with it and GradCache (3.7 GB peak) the twin scores test
nDCG@10 0.760 (0.773 hybrid), against 0.665 untrained (benchmarks/train_scifact.py).
Change them here, not in the CLI or the loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from retriever.encoding.encoder import DEFAULT_MODEL
from retriever.errors import RetrieverError

# --- defaults ---------------------------------------------------------------------------------
ARCHITECTURES = ("twin", "half-twin")  # shared weights / separate query and document towers
LOSSES = ("infonce", "contrastive", "triplet")
METRIC_HEADS = ("none", "linear")  # linear: a learned W, distance ||W(f(q) - f(d))||^2
NEGATIVE_SOURCES = ("bm25", "dense", "both", "none")

DEFAULT_EPOCHS = 2  # SciFact, lr 5e-5: 1 epoch 0.683 test nDCG@10 in 9.5 min, 2 epochs 0.706 in 18 min (2 cores)
DEFAULT_BATCH_SIZE = 32  # in-batch negatives: 32 queries x (1 positive + 1 hard negative)
DEFAULT_LR = 2e-4  # 53 steps on SciFact: CV nDCG@10 0.734 at 5e-5, 0.751 at 1e-4, 0.775 at 2e-4
DEFAULT_WEIGHT_DECAY = 0.01  # AdamW, not applied to biases and LayerNorm weights
DEFAULT_L2SP = 0.0  # L2-SP (Li et al. 2018): l2sp * sum((theta - theta0)^2) added to the loss; 0 = off
DEFAULT_WARMUP_RATIO = 0.1  # linear warm-up over the first 10% of steps, then linear decay
DEFAULT_MAX_SEQ_LENGTH = 256  # tokens; capped at what the base model can take
DEFAULT_SCALE = 20.0  # InfoNCE: cosine similarities / temperature 0.05, as sentence-transformers
DEFAULT_MARGINS = {"contrastive": 1.0, "triplet": 0.2}  # unit vectors: d in [0, 2]; FaceNet's 0.2
DEFAULT_MINI_BATCH_SIZE = 16  # GradCache chunk: memory is that of 16 sequences whatever the batch
CACHED_ABOVE_BATCH = DEFAULT_MINI_BATCH_SIZE  # SciFact, 6 steps: 3.4 GB peak with GradCache, 9.0 without
DEFAULT_NEGATIVES = "bm25"
DEFAULT_NEGATIVES_PER_QUERY = 1
DEFAULT_NEGATIVES_SKIP = 3  # the top 3 BM25 hits are too often unjudged positives
DEFAULT_NEGATIVES_DEPTH = 30  # negatives are drawn from ranks [skip, depth)
DEFAULT_DEV_FRACTION = 0.1  # of training queries held out when there is no qrels/dev.tsv (and no CV)
# Below this many training queries with a positive (and with no qrels/dev.tsv or dev fraction given), keep-or-
# discard is decided by k-fold cross-validation over all of them (retriever.training.crossval), not by a 10%
# split: on SciFact with 100 training queries, dev nDCG@10 on the 10 held out rose 0.595 -> 0.640, the model
# was kept, and test nDCG@10 fell 0.665 -> 0.650. Above a few hundred queries a 10% split is tens of queries
# and CV's k extra trainings cost more than they tell.
CV_BELOW_QUERIES = 300
DEFAULT_DEV_MAX_DOCS = 1000  # dev sub-corpus: positives + BM25 top-30 + a sample of the rest
DEFAULT_SEED = 42
CHECKPOINT_DIR = "checkpoint"  # inside the output directory; ignored by model fingerprints


@dataclass
class TrainConfig:
    """Everything that defines a fine-tuning run; recorded in the model card."""

    data: str | Path
    output: str | Path
    model: str = DEFAULT_MODEL
    architecture: str = "twin"
    loss: str = "infonce"
    metric_head: str = "none"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    l2sp: float = DEFAULT_L2SP  # pull toward the starting weights (small data: stay near what already works)
    warmup_ratio: float = DEFAULT_WARMUP_RATIO
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    normalize: bool = True
    cached: bool | None = None  # None: automatic, above CACHED_ABOVE_BATCH
    mini_batch_size: int = DEFAULT_MINI_BATCH_SIZE
    margin: float | None = None  # None: DEFAULT_MARGINS[loss]
    scale: float = DEFAULT_SCALE
    negatives: str = DEFAULT_NEGATIVES
    negatives_per_query: int = DEFAULT_NEGATIVES_PER_QUERY
    negatives_skip: int = DEFAULT_NEGATIVES_SKIP
    negatives_depth: int = DEFAULT_NEGATIVES_DEPTH
    negatives_guard: float | None = None  # drop mined candidates scored >= guard x the positive (None: off)
    keep_margin: float = 0.0  # dev gain over the starting model needed to keep the trained one
    dev_fraction: float | None = None  # None: CV below CV_BELOW_QUERIES training queries, else DEFAULT_DEV_FRACTION
    dev_max_docs: int = DEFAULT_DEV_MAX_DOCS
    eval_steps: int = 0  # 0: evaluate on dev after each epoch
    max_steps: int = 0  # 0: no limit (a cap for smoke runs)
    seed: int = DEFAULT_SEED
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    command: str = "train"  # "train" or "adapt": which command made the model, for messages and the card

    @property
    def tuning_verb(self) -> str:
        return "adaptation" if self.command == "adapt" else "fine-tuning"
    device: str = "auto"  # auto: CUDA or Apple MPS when present, else the CPU (retriever.encoding.devices)

    def __post_init__(self) -> None:
        self.data, self.output = Path(self.data), Path(self.output)
        self.validate()

    def validate(self) -> None:
        """Refuse impossible settings with one line naming the option."""
        choices = {"architecture": ARCHITECTURES, "loss": LOSSES, "metric_head": METRIC_HEADS,
                   "negatives": NEGATIVE_SOURCES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RetrieverError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        positive = ("epochs", "batch_size", "max_seq_length", "mini_batch_size", "dev_max_docs")
        for name in positive:
            if getattr(self, name) < 1:
                raise RetrieverError(f"{name} must be at least 1")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.warmup_ratio < 1:
            raise RetrieverError("lr must be > 0, weight_decay >= 0 and warmup_ratio in [0, 1)")
        if not 0 <= self.negatives_skip < self.negatives_depth:
            raise RetrieverError(
                f"negatives range {self.negatives_skip}:{self.negatives_depth} is empty; use START:END with START < END"
            )
        if self.negatives_per_query < 0 or self.eval_steps < 0 or self.max_steps < 0:
            raise RetrieverError("negatives_per_query, eval_steps and max_steps cannot be negative")
        if self.negatives_guard is not None and not 0 < self.negatives_guard <= 1:
            raise RetrieverError("negatives_guard must be in (0, 1]")
        if self.l2sp < 0:
            raise RetrieverError("l2sp cannot be negative")
        if self.keep_margin < 0:
            raise RetrieverError("keep_margin cannot be negative")
        if self.dev_fraction is not None and not 0 <= self.dev_fraction < 1:
            raise RetrieverError("dev_fraction must be in [0, 1)")
        if self.loss != "infonce" and self.cached:
            raise RetrieverError("--cached (GradCache) applies to the infonce loss only")

    def effective_dev_fraction(self) -> float:
        """The share of training queries held out as dev when a dev split is used (not given: the default)."""
        return DEFAULT_DEV_FRACTION if self.dev_fraction is None else self.dev_fraction

    @property
    def use_cached(self) -> bool:
        """GradCache when asked, or automatically for batches too big to hold in memory at once."""
        if self.loss != "infonce":
            return False
        return self.batch_size > CACHED_ABOVE_BATCH if self.cached is None else self.cached

    @property
    def effective_margin(self) -> float | None:
        return self.margin if self.margin is not None else DEFAULT_MARGINS.get(self.loss)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data"], out["output"] = str(self.data), str(self.output)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
