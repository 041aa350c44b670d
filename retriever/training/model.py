"""Building the model to train from a base model: twin or half-twin, optional learned metric.

* twin: the base model as it is, one set of weights for queries and documents;
* half-twin: a sentence-transformers ``Router`` with a "query" and a "document" route, each a
  copy of the base model's modules, so ``encode_query``/``encode_document`` (and a plain
  ``SentenceTransformer(DIR)`` load) use the right tower; both start equal and drift apart;
* metric head: one bias-free, identity-initialised ``Dense`` layer W after pooling, shared by
  both towers, so that ||W f(q) - W f(d)||^2 = (f(q) - f(d))^T W^T W (f(q) - f(d)) is a learned
  Mahalanobis distance. The index stores W f(d) like any other embedding, so search stays an
  ordinary (ANN-compatible) nearest-neighbour search.

``Normalize`` comes last when embeddings are normalised, as the index expects unit vectors.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from retriever.encoding.encoder import _quiet_transformers, resolve_model_path
from retriever.errors import ModelLoadError, RetrieverError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn


def load_model(path: str) -> SentenceTransformer:
    """A sentence-transformers model from a local directory, on CPU, never downloading."""
    _quiet_transformers()
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported the same way
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"model at {path} could not be loaded: {reason}") from None


def build_model(
    base: str, architecture: str, metric_head: str, normalize: bool, max_seq_length: int
) -> SentenceTransformer:
    """The model to train, made of the base model's modules."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Router

    base_model = load_model(str(resolve_model_path(base)))
    modules = [m for m in base_model if not isinstance(m, Normalize)]
    routed = any(isinstance(m, Router) for m in modules)
    if routed and architecture == "twin":
        raise RetrieverError(f"model {base!r} is a half-twin (separate query and document towers); "
                             "train it with --architecture half-twin")
    if architecture == "half-twin" and not routed:
        tower = [m for m in modules]
        router = Router.for_query_document(query_modules=copy.deepcopy(tower), document_modules=tower)
        modules = [router]
    dimension = base_model.get_embedding_dimension()
    if metric_head == "linear":
        import torch

        modules.append(Dense(dimension, dimension, bias=False, activation_function=None,
                             init_weight=torch.eye(dimension)))
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    model.max_seq_length = min(max_seq_length, position_limit(model) or max_seq_length)
    return model


def position_limit(model: SentenceTransformer) -> int | None:
    """The longest input the transformer's position embeddings allow, if it says."""
    limits = []
    for module in model.modules():
        config = getattr(getattr(module, "auto_model", None), "config", None) or getattr(
            getattr(module, "model", None), "config", None)
        if config is not None and getattr(config, "max_position_embeddings", None):
            limits.append(int(config.max_position_embeddings))
    return min(limits) if limits else None


def is_half_twin(model: nn.Module) -> bool:
    from sentence_transformers.sentence_transformer.modules import Router

    return any(isinstance(m, Router) for m in model.modules())


def tower_parameters(model: SentenceTransformer, task: str) -> list[nn.Parameter]:
    """The parameters that encode a ``task`` ("query" or "document") input, in module order."""
    from sentence_transformers.sentence_transformer.modules import Router

    params: list[nn.Parameter] = []
    for module in model:
        if isinstance(module, Router):
            for sub in module.sub_modules[task]:
                params += list(sub.parameters())
        else:
            params += list(module.parameters())
    return params
