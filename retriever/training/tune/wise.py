"""WiSE-FT (Wortsman et al., CVPR 2022): interpolate the fine-tuned weights with the base ones.

``weight`` 1.0 is the fine-tuned model, 0.0 the base: a few judged queries move a model too far, and a
point on the line between the two keeps most of what the base knew while taking the direction learned.
"""

from __future__ import annotations

from typing import Any


def interpolate(base: dict[str, Any], tuned: dict[str, Any], weight: float) -> dict[str, Any]:
    """``(1 - weight) * base + weight * tuned`` for every floating-point tensor; others from ``tuned``."""
    mixed = {}
    for name, value in tuned.items():
        start = base.get(name)
        if start is not None and value.is_floating_point() and start.shape == value.shape:
            mixed[name] = start.to(value.dtype) * (1.0 - weight) + value * weight
        else:
            mixed[name] = value
    return mixed


def snapshot_weights(model: Any) -> dict[str, Any]:
    """A detached copy of a model's weights (to interpolate from later)."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}
