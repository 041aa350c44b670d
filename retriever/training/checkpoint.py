"""Saving and restoring an interrupted run, in ``OUTPUT/checkpoint``.

A checkpoint holds everything a run needs to go on as if never stopped: the prepared examples
and dev set (so negatives are not mined again), the model, the optimiser and scheduler state,
the position in the epoch, the best weights so far and the random state. It is written to a
sibling folder and then renamed, so a second Ctrl-C while saving cannot leave half of one.
Model fingerprints ignore ``checkpoint*`` paths, so it never changes the trained model's identity.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retriever.errors import RetrieverError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PREPARED = "prepared.json"
STATE = "state.pt"
MODEL = "model"


@dataclass
class LoopState:
    """Where a run is, and what it has seen so far."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    total_steps: int = 0
    seconds: float = 0.0  # training-loop time, summed over resumed sessions
    best_score: float | None = None
    best_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # dev evaluations
    losses: list[float] = field(default_factory=list)  # loss of each step


def save_checkpoint(
    directory: Path,
    model: SentenceTransformer,
    training_state: dict[str, Any],
    state: LoopState,
    prepared: dict[str, Any],
) -> None:
    """Write the checkpoint atomically (``directory`` is replaced as a whole)."""
    import torch

    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(str(partial / MODEL), create_model_card=False)
    (partial / PREPARED).write_text(json.dumps(prepared))
    torch.save({**training_state, "loop": asdict(state), "rng": torch.get_rng_state()}, partial / STATE)
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)


@dataclass
class Checkpoint:
    directory: Path
    prepared: dict[str, Any]
    state: LoopState
    training_state: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL


def load_checkpoint(directory: Path) -> Checkpoint:
    """The checkpoint in ``directory``, or an error saying there is none to resume from."""
    import torch

    if not (directory / STATE).exists() or not (directory / PREPARED).exists():
        raise RetrieverError(f"no checkpoint to resume from in {directory}; start a new run without --resume")
    try:
        prepared = json.loads((directory / PREPARED).read_text())
        saved = torch.load(directory / STATE, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any damage means the same thing to the user
        raise RetrieverError(f"checkpoint in {directory} is damaged ({type(exc).__name__}); start a new run") from None
    state = LoopState(**saved.pop("loop"))
    return Checkpoint(directory, prepared, state, saved)
