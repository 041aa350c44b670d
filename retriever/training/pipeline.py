"""``train(config)``: data -> negatives -> examples -> model -> loop -> best model + card.

Each step lives in its own module; this one only puts them in order, decides which weights are
saved (the best on dev, and never silently worse than the starting model) and reports.
"""

from __future__ import annotations

import random
import resource
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retriever.encoding.devices import resolve_device
from retriever.errors import RetrieverError
from retriever.eval.metrics import Run
from retriever.training.card import CARD_JSON, write_card
from retriever.training.checkpoint import LoopState, load_checkpoint
from retriever.training.config import CHECKPOINT_DIR, TrainConfig
from retriever.training.dev import DEV_METRIC, DevSet
from retriever.training.prepare import prepare

if TYPE_CHECKING:

    from retriever.training.data import TrainingData
    from retriever.training.loop import Trainer


@dataclass
class TrainResult:
    """What a run produced: where the model is, how it scored on dev, how long it took."""

    output: Path
    dev_before: dict[str, float] | None
    dev_after: dict[str, float] | None
    seconds: float
    steps: int
    kept_starting_model: bool
    peak_memory_mb: float
    warnings: list[str] = field(default_factory=list)
    card: dict[str, Any] = field(default_factory=dict)
    # dev runs (query -> document -> score) of the starting and the saved model, when there is a dev
    # set and the run was not resumed (retriever adapt chooses its fusion weight on them)
    dev_run_start: Run | None = None
    dev_run_saved: Run | None = None
    dev: DevSet | None = None
    # k-fold cross-validation's keep-or-discard verdict (retriever.training.crossval), when it decided
    cv: dict[str, Any] | None = None


def train(
    config: TrainConfig,
    on_step: Callable[[LoopState], None] | None = None,
    log: Callable[[str], None] | None = None,
    data: TrainingData | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` and save it in ``config.output``.

    ``data`` gives the pairs directly (``retriever adapt`` makes them from the corpus); otherwise they are
    read from ``config.data``. Raises ``TrainingInterrupted`` (a KeyboardInterrupt) after saving a checkpoint
    on Ctrl-C; ``TrainConfig(..., resume=True)`` continues from it. With ``overwrite``, the run is written
    beside the previous model and replaces it only once it has succeeded.
    """
    from retriever.training.loop import TrainingInterrupted

    log = log or (_stderr if config.progress else (lambda message: None))
    work = _resume_folder(config.output) if config.resume else _prepare_output(config.output, config.overwrite)
    try:
        result = _train_into(work, config, on_step, log, data)
    except TrainingInterrupted:
        raise  # its checkpoint in ``work`` is what --resume continues from
    except BaseException:
        if work != config.output:
            shutil.rmtree(work, ignore_errors=True)  # the previous model stays as it was
        raise
    if work != config.output:
        _swap_in(work, config.output)
    return result


def _train_into(work: Path, config: TrainConfig, on_step: Callable[[LoopState], None] | None,
                log: Callable[[str], None], data: TrainingData | None = None) -> TrainResult:
    """The run itself, writing its checkpoint, model and card into ``work``."""
    from datasets import Dataset

    from retriever.training.loop import Trainer
    from retriever.training.losses import make_loss
    from retriever.training.model import load_model

    checkpoint_dir = work / CHECKPOINT_DIR
    state = saved = None
    if config.resume:
        checkpoint = load_checkpoint(checkpoint_dir)
        prepared = checkpoint.prepared
        config = TrainConfig.from_dict(
            {**prepared["config"], "output": str(config.output), "progress": config.progress, "resume": True,
             "device": config.device}
        )
        state, saved = checkpoint.state, checkpoint.training_state
        model = load_model(str(checkpoint.model_path)).to(resolve_device(config.device, "torch"))
        dataset = Dataset.from_list(prepared["examples"])
        dev = DevSet.from_dict(prepared["dev"]) if prepared["dev"] else None
        log(f"resuming at step {state.global_step} of {state.total_steps}")
    else:
        cv = None
        if data is None and config.command == "train":
            from retriever.training import crossval
            from retriever.training.data import hold_out_dev, read_training_data

            data = read_training_data(config.data)
            if crossval.uses_cv(config, data):
                cv = crossval.cross_validate(config, data, log, _seed)
                data.dev_source = f"none: {cv['folds']}-fold cross-validation over the training queries"
            else:
                data = hold_out_dev(data, config.effective_dev_fraction(), config.seed)
        _seed(config.seed)  # a resumed run restores the random state saved with its checkpoint instead
        model, dataset, dev, prepared = prepare(config, log, data)
        prepared["cv"] = cv
    cv = prepared.get("cv")
    trainer = Trainer(model, make_loss(config, model), dataset, dev, config, prepared, checkpoint_dir,
                      state=state, saved=saved, log=log, on_step=on_step)
    if cv is None or cv["kept"]:  # CV that discards: the model just built is the starting model, saved as is
        trainer.run()
    state = trainer.state
    kept_start, warnings = (not cv["kept"], []) if cv else _choose_weights(trainer, dev is not None, config)
    for warning in warnings:  # printed even when quiet; also in result.warnings and the model card
        _stderr(f"warning: {warning}")
    model.save(str(work), create_model_card=False)
    # summed over resumed sessions, with the cross-validation's trainings
    seconds = prepared.get("prepare_seconds", 0.0) + (cv["seconds"] if cv else 0.0) + state.seconds
    result = TrainResult(
        output=config.output,
        dev_before=_scores_at(state, 0) if dev else None,
        dev_after=_scores_at(state, state.best_step) if dev else None,
        seconds=seconds,
        steps=state.global_step,
        kept_starting_model=kept_start,
        peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        warnings=warnings,
        dev_run_start=trainer.start_run,
        dev_run_saved=trainer.start_run if kept_start else trainer.best_run,
        dev=dev,
        cv=cv,
    )
    result.card = _card(config, prepared, state, result, trainer.loss)
    write_card(work, result.card)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return result


def _choose_weights(trainer: Trainer, has_dev: bool, config: TrainConfig) -> tuple[bool, list[str]]:
    """Load the best dev weights into the model; say so when that is the starting model.

    With ``config.keep_margin`` the best weights must beat the starting model's dev score by that
    much, or the starting model (rebuilt from ``config.model``) is saved instead.
    """
    state = trainer.state
    if not has_dev:
        return False, ["no dev queries: the final model is saved without checking it against the starting model"]
    trainer.model.load_state_dict(trainer.best_weights)
    if state.global_step == 0:
        return False, []
    before, best = state.history[0]["scores"][DEV_METRIC], state.best_score
    if state.best_step > 0 and best - before >= config.keep_margin:
        return False, []
    if state.best_step > 0:  # better, but not by the margin: back to the starting weights
        from retriever.training.model import build_model

        start = build_model(config.model, config.architecture, config.metric_head, config.normalize,
                            config.max_seq_length)
        trainer.model.load_state_dict(start.state_dict())
        return True, [f"{config.tuning_verb} raised dev {DEV_METRIC} by only {best - before:+.4f} ({before:.4f} "
                      f"-> {best:.4f}), less than the {config.keep_margin:.4f} required: the starting model is "
                      "saved instead"]
    last = state.history[-1]["scores"][DEV_METRIC]
    return True, [f"{config.tuning_verb} did not improve dev {DEV_METRIC} ({before:.4f} before, {last:.4f} after): "
                  "the starting model is saved instead"]


def _staging(output: Path) -> Path:
    """Where an ``--overwrite`` run is written until it succeeds: a hidden sibling of ``output``."""
    resolved = output.resolve()
    return resolved.with_name(f".{resolved.name}.training")


def _resume_folder(output: Path) -> Path:
    """The folder holding the checkpoint to resume: ``output``, or the staging folder of an --overwrite run."""
    staging = _staging(output)
    if not (output / CHECKPOINT_DIR).exists() and (staging / CHECKPOINT_DIR).exists():
        return staging
    return output


def _swap_in(staging: Path, output: Path) -> None:
    """Replace the previous model in ``output`` by the finished run; the old one is deleted only now."""
    old = staging.with_name(f".{output.resolve().name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    if output.exists():
        output.rename(old)
    staging.rename(output)
    shutil.rmtree(old, ignore_errors=True)


def check_output(output: Path, overwrite: bool) -> bool:
    """Refuse an output that is a file or holds something not ours to replace; True if it holds a model to replace.

    Checked before any work starts, so that minutes of training are not spent on an output that is refused.
    """
    if output.exists() and not output.is_dir():
        raise RetrieverError(f"output {output} is a file; give a directory for the trained model")
    if output.is_dir() and any(output.iterdir()):
        ours = (output / CARD_JSON).exists() or (output / CHECKPOINT_DIR).exists()
        if not overwrite or not ours:
            hint = ("pass --resume to continue its interrupted run, or --overwrite to replace it"
                    if (output / CHECKPOINT_DIR).exists()
                    else "pass --overwrite to replace it" if ours else "choose a new or empty directory")
            raise RetrieverError(f"output directory {output} is not empty; {hint}")
        return True
    return False


def _prepare_output(output: Path, overwrite: bool) -> Path:
    """The folder to train into: ``output`` if new or empty, a staging folder if it holds a model to replace."""
    if check_output(output, overwrite):
        staging = _staging(output)
        shutil.rmtree(staging, ignore_errors=True)  # what an earlier --overwrite run left: ours to remove
        staging.mkdir(parents=True)
        return staging
    output.mkdir(parents=True, exist_ok=True)
    return output


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _scores_at(state: LoopState, step: int) -> dict[str, float] | None:
    return next((h["scores"] for h in state.history if h["step"] == step), None)


def _card(config: TrainConfig, prepared: dict, state: LoopState, result: TrainResult, loss: Any) -> dict[str, Any]:
    import sentence_transformers
    import torch

    from retriever.training.losses import describe_loss

    hyper = {k: v for k, v in config.to_dict().items() if k not in ("data", "output", "model", "architecture",
                                                                      "loss", "metric_head", "resume", "overwrite",
                                                                      "progress", "command")}
    hyper["cached"] = config.use_cached
    hyper["margin"] = config.effective_margin
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": config.command,
        "output": str(config.output),
        "base_model": prepared["base_model"],
        "data": prepared["data"],
        "examples": len(prepared["examples"]),
        "architecture": config.architecture,
        "metric_head": config.metric_head,
        "normalize": config.normalize,
        "loss": describe_loss(loss),
        "hyperparameters": hyper,
        "dev_metric": DEV_METRIC,
        "dev_docs": len(prepared["dev"]["docs"]) if prepared["dev"] else 0,
        "dev_before": result.dev_before,
        "dev_after": result.dev_after,
        "dev_history": state.history,
        "best_step": state.best_step,
        "kept_starting_model": result.kept_starting_model,
        "cross_validation": result.cv,
        "steps": state.global_step,
        "final_loss": state.losses[-1] if state.losses else None,
        "seconds": round(result.seconds, 1),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "warnings": result.warnings,
        "versions": {"sentence_transformers": sentence_transformers.__version__, "torch": torch.__version__,
                     "python": sys.version.split()[0]},
    }


def _stderr(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
