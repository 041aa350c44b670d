"""Search defaults that travel with a model: ``retriever_search.json`` in the model directory.

``retriever adapt`` re-chooses the hybrid fusion weight for the model it makes (its dense side is
stronger than the base model's, so the best balance moves). The file is read when an index is
built (``Encoder.describe`` copies it into the manifest's model entry as ``search_defaults``), so
an index keeps the weight its model came with even if the model directory moves; an explicit
``alpha`` in a search still wins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEARCH_DEFAULTS_FILE = "retriever_search.json"


def read_search_defaults(model_dir: str | Path) -> dict[str, Any]:
    """The model's search defaults (``{"alpha": 0.6}``), or {} when it has none or the file is unusable."""
    path = Path(model_dir) / SEARCH_DEFAULTS_FILE
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    alpha = values.get("alpha") if isinstance(values, dict) else None
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0.0 <= alpha <= 1.0:
        return {"alpha": float(alpha)}
    return {}


def write_search_defaults(model_dir: str | Path, alpha: float, how: dict[str, Any]) -> Path:
    """Store the fusion weight chosen for this model, with how it was chosen."""
    path = Path(model_dir) / SEARCH_DEFAULTS_FILE
    path.write_text(json.dumps({"alpha": round(float(alpha), 3), "chosen_by": how}, indent=2) + "\n")
    return path
