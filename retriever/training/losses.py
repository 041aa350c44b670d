"""The training objectives, one class each, with the sentence-transformers loss signature.

Every loss takes the model at construction and is called as ``loss(sentence_features, labels)``
with one feature dict per input column (query first), like sentence-transformers' own losses;
``compute_loss_from_embeddings`` does the arithmetic on already computed embeddings, so the
formula can be checked by hand. Embeddings are what the model outputs: unit vectors when the
model ends with ``Normalize`` (the default), so Euclidean distances lie in [0, 2].
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from sentence_transformers.util import cos_sim
from torch import Tensor, nn

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retriever.training.config import TrainConfig


class InfoNCELoss(MultipleNegativesRankingLoss):
    r"""InfoNCE with in-batch and hard negatives (sentence-transformers' MultipleNegativesRankingLoss).

    For a batch of B queries q_i, each with its positive d_i+ and optional hard negatives, every
    document d_j of the batch (all positives and all hard negatives) is a candidate::

        L = -1/B * sum_i log( exp(s(q_i, d_i+) / tau) / sum_j exp(s(q_i, d_j) / tau) )

    with s the cosine similarity and tau = 1 / scale (scale 20, tau 0.05). It is a softmax
    cross-entropy that ranks the positive first among the batch's documents.

    References: van den Oord, Li & Vinyals 2018, "Representation Learning with Contrastive
    Predictive Coding" (InfoNCE); Henderson et al. 2017, "Efficient Natural Language Response
    Suggestion for Smart Reply" (in-batch negatives, multiple negatives ranking loss).
    """

    def __init__(self, model: SentenceTransformer, scale: float = 20.0) -> None:
        super().__init__(model, scale=scale, similarity_fct=cos_sim)


class CachedInfoNCELoss(CachedMultipleNegativesRankingLoss):
    r"""The same InfoNCE loss as ``InfoNCELoss``, computed with GradCache so big batches fit in memory::

        L = -1/B * sum_i log( exp(s(q_i, d_i+) / tau) / sum_j exp(s(q_i, d_j) / tau) )

    The batch is embedded in chunks of ``mini_batch_size`` without gradients, the loss and its
    gradient with respect to the embeddings are computed over the whole batch, then each chunk is
    re-embedded with gradients and back-propagated. Memory is that of one chunk; the value and
    the gradients are those of the full batch (up to dropout), so more in-batch negatives are
    affordable on a CPU at the cost of a second forward pass.

    References: van den Oord et al. 2018 (InfoNCE); Henderson et al. 2017 (in-batch negatives);
    Gao, Zhang, Han & Callan 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
    Limited Setup" (GradCache).
    """

    def __init__(self, model: SentenceTransformer, scale: float = 20.0, mini_batch_size: int = 16) -> None:
        super().__init__(model, scale=scale, similarity_fct=cos_sim, mini_batch_size=mini_batch_size)


class ContrastiveLoss(nn.Module):
    r"""Pairwise contrastive loss with a margin over labelled (query, document) pairs.

    For a pair with label y (1 = relevant, 0 = not) and d = ||f(q) - f(x)||_2 the Euclidean
    distance between their (normalised) embeddings::

        L = 1/N * sum ( y * d^2 + (1 - y) * max(0, m - d)^2 )

    Relevant pairs are pulled together; irrelevant ones are pushed apart until they are at least
    the margin m apart, and then left alone. Unlike InfoNCE it needs explicit negatives.

    Reference: Hadsell, Chopra & LeCun 2006, "Dimensionality Reduction by Learning an Invariant
    Mapping" (CVPR).
    """

    def __init__(self, model: SentenceTransformer, margin: float = 1.0) -> None:
        super().__init__()
        self.model, self.margin = model, margin

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        return self.compute_loss_from_embeddings(_embed(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        anchors, others = embeddings
        squared = (anchors - others).pow(2).sum(dim=-1)
        distance = squared.clamp_min(1e-12).sqrt()  # no NaN gradient at d = 0
        y = labels.to(squared.dtype)
        return (y * squared + (1 - y) * F.relu(self.margin - distance).pow(2)).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "distance": "euclidean"}


class TripletLoss(nn.Module):
    r"""Triplet loss on squared Euclidean distances with a margin, over (query, positive, negative).

    With a = f(query), p = f(positive) and n = f(negative)::

        L = 1/N * sum max(0, ||a - p||^2 - ||a - n||^2 + m)

    The positive must be closer to the query than the negative by at least m; satisfied triplets
    contribute nothing. On unit vectors ||a - p||^2 - ||a - n||^2 = 2 (cos(a, n) - cos(a, p)).

    Reference: Schroff, Kalenichenko & Philbin 2015, "FaceNet: A Unified Embedding for Face
    Recognition and Clustering" (CVPR), which uses m = 0.2 on normalised embeddings.
    """

    def __init__(self, model: SentenceTransformer, margin: float = 0.2) -> None:
        super().__init__()
        self.model, self.margin = model, margin

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        return self.compute_loss_from_embeddings(_embed(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        anchors, positives, negatives = embeddings
        to_positive = (anchors - positives).pow(2).sum(dim=-1)
        to_negative = (anchors - negatives).pow(2).sum(dim=-1)
        return F.relu(to_positive - to_negative + self.margin).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "distance": "squared euclidean"}


def _embed(model: nn.Module, sentence_features: Iterable[dict[str, Tensor]]) -> list[Tensor]:
    return [model(features)["sentence_embedding"] for features in sentence_features]


def make_loss(config: TrainConfig, model: SentenceTransformer) -> nn.Module:
    """The loss object a configuration asks for."""
    if config.loss == "contrastive":
        return ContrastiveLoss(model, margin=config.effective_margin)
    if config.loss == "triplet":
        return TripletLoss(model, margin=config.effective_margin)
    if config.use_cached:
        return CachedInfoNCELoss(model, scale=config.scale, mini_batch_size=config.mini_batch_size)
    return InfoNCELoss(model, scale=config.scale)


def describe_loss(loss: nn.Module) -> dict[str, Any]:
    """Name, formula line and parameters of a loss, for the model card."""
    doc = (type(loss).__doc__ or "").strip().splitlines()
    formula = next((line.strip() for line in doc if line.strip().startswith("L =")), "")
    config = loss.get_config_dict() if hasattr(loss, "get_config_dict") else {}
    return {"class": type(loss).__name__, "summary": doc[0] if doc else "", "formula": formula,
            "parameters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}}


__all__ = ["InfoNCELoss", "CachedInfoNCELoss", "ContrastiveLoss", "TripletLoss", "make_loss", "describe_loss"]
