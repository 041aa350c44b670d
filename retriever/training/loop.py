"""The optimisation loop: AdamW, linear warm-up and decay, dev checks, best weights, Ctrl-C.

A plain torch loop rather than the Hugging Face trainer: on a CPU it has no overhead to pay for,
it needs no ``accelerate``, and interrupting and resuming are a few lines here. The first Ctrl-C
lets the current step finish, saves a checkpoint and raises ``TrainingInterrupted``; a second
one stops at once without saving.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retriever.eval.metrics import Run
from retriever.training.batching import collate, epoch_batches
from retriever.training.checkpoint import LoopState, save_checkpoint
from retriever.training.dev import DEV_METRIC, DevSet, dev_run, score_run
from retriever.training.examples import column_tasks
from retriever.training.model import is_half_twin

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from retriever.training.config import TrainConfig

MAX_GRAD_NORM = 1.0


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C after saving a checkpoint that ``resume`` continues from."""

    def __init__(self, checkpoint: Path, step: int, total: int) -> None:
        super().__init__(f"interrupted at step {step} of {total}; checkpoint saved in {checkpoint}")
        self.checkpoint, self.step, self.total = checkpoint, step, total


class Trainer:
    """Runs the steps of a ``TrainConfig`` over prepared examples, keeping the best dev weights."""

    def __init__(
        self,
        model: SentenceTransformer,
        loss: nn.Module,
        dataset: Dataset,
        dev: DevSet | None,
        config: TrainConfig,
        prepared: dict[str, Any],
        checkpoint_dir: Path,
        state: LoopState | None = None,
        saved: dict[str, Any] | None = None,
        log: Callable[[str], None] = lambda message: None,
        on_step: Callable[[LoopState], None] | None = None,
    ) -> None:
        from transformers import get_linear_schedule_with_warmup

        self.model, self.loss, self.dataset, self.dev, self.config = model, loss, dataset, dev, config
        self.prepared, self.checkpoint_dir, self.log, self.on_step = prepared, checkpoint_dir, log, on_step
        self.routed = is_half_twin(model)
        self.tasks = column_tasks(dataset.column_names)
        distinct = config.loss == "infonce"
        self.batches = [
            epoch_batches(dataset, config.batch_size, config.seed, epoch, distinct) for epoch in range(config.epochs)
        ]
        total = sum(len(b) for b in self.batches)
        self.state = state or LoopState(total_steps=min(total, config.max_steps) if config.max_steps else total)
        self.optimizer = make_optimizer(model, config.lr, config.weight_decay)
        warmup = math.ceil(config.warmup_ratio * self.state.total_steps)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, max(self.state.total_steps, 1))
        self.best_weights: dict[str, Any] | None = None
        # L2-SP's anchor: the starting weights (saved with a checkpoint, so a resumed run pulls toward them too)
        self.anchor: dict[str, Any] | None = None
        if config.l2sp > 0:
            self.anchor = starting_weights(model, (saved or {}).get("anchor"))
        self.start_run: Run | None = None  # dev runs of the starting and of the best weights (this session)
        self.best_run: Run | None = None
        if saved:
            import torch

            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.best_weights = saved.get("best")
            torch.set_rng_state(saved["rng"])  # last: building the model drew random numbers
        self._stop_requested = False
        self._session_start = time.perf_counter()

    # the loop --------------------------------------------------------------------------------
    def run(self) -> LoopState:
        """Train to the end (or to ``max_steps``); returns the final state."""
        from tqdm.auto import tqdm

        state, config = self.state, self.config
        previous = self._install_interrupt_handler()
        bar = tqdm(total=state.total_steps, initial=state.global_step, desc="training", unit="step",
                   disable=not config.progress, dynamic_ncols=True)
        try:
            if self.dev is not None and not state.history:
                self._evaluate("before training")
            self.model.train()
            while state.epoch < config.epochs and not self._done():
                batches = self.batches[state.epoch]
                while state.step_in_epoch < len(batches) and not self._done():
                    loss = self._step(batches[state.step_in_epoch])
                    state.step_in_epoch += 1
                    state.global_step += 1
                    state.losses.append(loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{running_mean(state.losses):.4f}", epoch=state.epoch + 1)
                    if self.on_step is not None:
                        self.on_step(state)
                    if config.eval_steps and state.global_step % config.eval_steps == 0 and not self._at_end():
                        self._evaluate(f"step {state.global_step}")
                    self._stop_if_requested()
                if state.step_in_epoch >= len(batches):
                    state.epoch += 1
                    state.step_in_epoch = 0
                    if not self._at_end():
                        self._evaluate(f"epoch {state.epoch}")
                        self._save()  # so that a crash loses at most one epoch
                        self._stop_if_requested()
            if not state.history or state.history[-1]["step"] != state.global_step:
                self._evaluate("end of training")
        finally:
            bar.close()
            self._restore_interrupt_handler(previous)
            state.seconds += time.perf_counter() - self._session_start
            self._session_start = time.perf_counter()
        return state

    def _step(self, indices: list[int]) -> float:
        import torch

        features, labels = collate(self.model, self.dataset[indices], self.tasks, self.routed)
        value = self.loss(features, labels)
        if self.anchor is not None and self.config.l2sp > 0:
            value = value + self.config.l2sp * l2sp_penalty(self.model, self.anchor)
        value.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(value.detach())

    def _done(self) -> bool:
        return bool(self.config.max_steps) and self.state.global_step >= self.config.max_steps

    def _at_end(self) -> bool:
        return self._done() or self.state.epoch >= self.config.epochs

    # dev and best weights --------------------------------------------------------------------
    def _evaluate(self, label: str) -> None:
        if self.dev is None:
            if not self.state.history:
                self.state.history.append({"step": 0, "label": label, "scores": None})
            return
        run = dev_run(self.model, self.dev, batch_size=self.config.batch_size)
        if self.state.global_step == 0:
            self.start_run = run
        scores = score_run(run, self.dev)
        self.model.train()
        state = self.state
        state.history.append({"step": state.global_step, "epoch": state.epoch, "label": label, "scores": scores})
        score = scores[DEV_METRIC]
        improved = state.best_score is None or score > state.best_score
        if improved:
            state.best_score, state.best_step = score, state.global_step
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best_run = run
        mark = " (best so far)" if improved and state.global_step else ""
        self.log(f"dev {DEV_METRIC} {label}: {score:.4f}{mark}")

    # interruption ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to save a checkpoint and stop after the current step."""
        self._stop_requested = True

    def _stop_if_requested(self) -> None:
        if not self._stop_requested:
            return
        self._save()
        raise TrainingInterrupted(self.checkpoint_dir, self.state.global_step, self.state.total_steps)

    def _save(self) -> None:
        self.state.seconds += time.perf_counter() - self._session_start
        self._session_start = time.perf_counter()
        saved = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "best": self.best_weights, "anchor": self.anchor}
        save_checkpoint(self.checkpoint_dir, self.model, saved, self.state, self.prepared)

    def _install_interrupt_handler(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            self.request_stop()
            self.log("interrupt: saving a checkpoint after this step (Ctrl-C again to stop without one)")
            signal.signal(signal.SIGINT, signal.default_int_handler)

        return signal.signal(signal.SIGINT, handler)

    @staticmethod
    def _restore_interrupt_handler(previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> Any:
    """AdamW; biases and normalisation weights (1-D parameters) get no weight decay."""
    import torch

    decay, no_decay = [], []
    for _, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def starting_weights(model: nn.Module, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the trainable weights (or of ``saved``, a resumed run's), the point L2-SP pulls back to."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if saved is not None:
        return {name: saved[name].to(params[name].device) for name in params if name in saved}
    return {name: p.detach().clone() for name, p in params.items()}


def l2sp_penalty(model: nn.Module, anchor: dict[str, Any]) -> Any:
    """sum((theta - theta0)^2) over the anchored weights (Li et al. 2018, without their head term: none is new)."""
    terms = [(p - anchor[name]).pow(2).sum() for name, p in model.named_parameters() if name in anchor]
    return sum(terms[1:], terms[0])


def running_mean(values: list[float], window: int = 20) -> float:
    recent = values[-window:]
    return sum(recent) / len(recent) if recent else float("nan")
