"""One training loop for every torch model (U-Net now; Mask R-CNN and DETR reuse it).

What is model-specific lives in a :class:`TrainTask` (how to compute the loss of a batch and how to
score the validation set); the loop owns the rest: AdamW, the learning-rate schedule, bf16
autocast / channels_last, early stopping on the validation loss, best/last checkpoints, exact resume,
a time budget, a cancel flag, and :class:`TrainReport` objects sent to a callback (the CLI's progress
bar and the training widget listen to them).

Reproducibility: the DataLoader order of epoch ``e`` is drawn from ``(seed, e)`` and patch datasets
draw their patches from ``(seed, epoch, index)``, so a run resumed from ``last.pt`` continues exactly
as the uninterrupted run would have (checked in tests/test_training_loop.py).
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from .._duration import format_duration
from ..progress import Cancelled, is_cancelled
from ..settings import RunOptions, TrainConfig
from . import device as dev
from .checkpoints import BEST, LAST, load_checkpoint, save_checkpoint

__all__ = ["Cancelled", "TrainConfig", "TrainReport", "TrainResult", "TrainTask", "fit", "lr_at", "stop_reason"]

#: with a time budget, an epoch ends early once it has used its share of the budget (what is left of
#: it over the epochs still to come, less the last epoch's validation and checkpoint time): a run the
#: clock ends has validated — drawn a point of every curve — about this many times however slow a
#: step is, rather than once or twice
BUDGET_VALIDATIONS = 12
#: an epochs cap this high is no cap (`galseg train --minutes` without --epochs: the clock ends the run)
UNCAPPED_EPOCHS = 100_000

def check_config(config: TrainConfig) -> None:
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1 (got {config.epochs}, {config.batch_size})")
    if not config.lr > 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")


@dataclass
class TrainReport:
    """What a progress listener gets: after every step (``kind="step"``) and epoch (``"epoch"``)."""

    kind: str
    epoch: int  # 1-based
    n_epochs: int
    step: int  # step within the epoch, 1-based
    n_steps: int
    global_step: int
    train_loss: float  # running mean over the epoch so far
    lr: float
    elapsed: float
    val_loss: float | None = None
    val_iou: float | None = None
    val_dice: float | None = None
    best_epoch: int | None = None
    stopped: str | None = None
    #: on epoch reports of methods that can show their progress: a callable returning a copy of the
    #: segmenter with the weights of this moment (a job saves it as a preview; the widget predicts with it)
    snapshot: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    def line(self) -> str:
        """One human line per epoch (the CLI prints it)."""
        epoch = f"epoch {self.epoch}" + ("" if self.n_epochs >= UNCAPPED_EPOCHS else f"/{self.n_epochs}")
        parts = [epoch, f"train loss {self.train_loss:.4f}"]
        if self.val_loss is not None:
            parts.append(f"val loss {self.val_loss:.4f}")
        if self.val_iou is not None:
            parts.append(f"val IoU {self.val_iou:.3f}")
        if self.val_dice is not None:
            parts.append(f"val Dice {self.val_dice:.3f}")
        parts.append(f"lr {self.lr:.2e}")
        parts.append(format_duration(self.elapsed))
        if self.best_epoch == self.epoch:
            parts.append("(best)")
        return ", ".join(parts)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_metrics: dict = field(default_factory=dict)
    stopped: str = "completed"  # completed | early_stopping | time_budget | cancelled
    epochs_run: int = 0
    global_step: int = 0
    elapsed: float = 0.0
    device: str = "cpu"
    bf16: bool = False
    channels_last: bool = False


class TrainTask(Protocol):
    """The model-specific part of training."""

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device, channels_last: bool) -> torch.Tensor:
        """Scalar training loss of one batch (computed inside the loop's autocast context)."""

    def validate(self, model: torch.nn.Module, loader, device: torch.device, channels_last: bool,
                 autocast: Callable) -> dict:
        """Scores on the validation loader: must hold ``loss``; may hold ``iou``, ``dice``..."""


def lr_at(progress: float, config: TrainConfig) -> float:
    """Learning rate at training progress in [0, 1] (by steps, or by time with ``max_minutes``)."""
    p = min(max(progress, 0.0), 1.0)
    lr, warm = config.lr, min(max(config.warmup_fraction, 0.0), 0.99)
    if config.schedule == "constant":
        return lr
    if config.schedule == "onecycle":  # cosine warm-up from lr/25, cosine decay to lr/1e4
        start, end = lr / 25, lr / 1e4
        if warm > 0 and p < warm:
            return start + (lr - start) * (1 - math.cos(math.pi * p / warm)) / 2
        q = (p - warm) / (1 - warm)
        return end + (lr - end) * (1 + math.cos(math.pi * q)) / 2
    # cosine: linear warm-up, then cosine decay to lr/100
    if warm > 0 and p < warm:
        return lr * (0.01 + 0.99 * p / warm)
    q = (p - warm) / (1 - warm)
    return lr * (0.01 + 0.99 * (1 + math.cos(math.pi * q)) / 2)


def stop_reason(stopped: str, epochs_run: int, elapsed_s: float, max_minutes: float = 0.0) -> str:
    """Which limit ended a training run, in words (the CLI prints it, a job logs it): a time budget
    cut short by the epochs cap must say so, not pass for the budget."""
    ran = format_duration(elapsed_s)
    if stopped == "time_budget":
        return f"stopped by the time budget ({format_duration(60 * max_minutes)}) after {epochs_run} epochs"
    if stopped == "early_stopping":
        return f"stopped early: the validation loss stopped improving (epoch {epochs_run}, {ran})"
    if stopped == "cancelled":
        return f"stopped on request after {epochs_run} epochs ({ran})"
    if max_minutes:
        return (f"stopped by the epochs cap ({epochs_run} epochs) after {ran} of the {format_duration(60 * max_minutes)} "
                "budget; raise epochs to use the whole budget")
    return f"ran all {epochs_run} epochs ({ran})"


def _epoch_loader(dataset: Dataset, config: TrainConfig, epoch: int, shuffle: bool, collate_fn) -> DataLoader:
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle, generator=generator,
                      num_workers=config.num_workers, collate_fn=collate_fn, drop_last=False)


def fit(
    model: torch.nn.Module,
    task: TrainTask,
    train_data: Dataset,
    val_data: Dataset | None,
    config: TrainConfig | None = None,
    run: RunOptions | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    callback: Callable[[TrainReport], None] | None = None,
    cancel=None,
    collate_fn=None,
    shuffle: bool = True,
) -> TrainResult:
    """Train ``model`` in place and return what happened.

    ``cancel`` is a ``threading.Event`` (or any object with ``is_set()``, or a callable returning
    True): it is checked after every step; the run then stops, keeps ``last.pt`` of the last finished
    epoch, and leaves the current weights in ``model``. ``resume=True`` continues from
    ``checkpoint_dir/last.pt``.
    """
    config = config or TrainConfig()
    run = run or RunOptions()
    check_config(config)
    device = dev.resolve_device(run.device)
    if device.type == "cpu":
        dev.configure_threads(run.n_threads or None)
    bf16 = dev.use_bf16(device, run.bf16, training=True)
    channels_last = dev.use_channels_last(device, run.channels_last)
    dev.seed_everything(config.seed)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if len(train_data) == 0:
        raise ValueError("the training set is empty")
    n_steps = math.ceil(len(train_data) / config.batch_size)
    total_steps = config.epochs * n_steps
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    result = TrainResult(device=str(device), bf16=bf16, channels_last=channels_last)
    start_epoch, global_step, elapsed_before = 0, 0, 0.0
    best_val, bad_epochs, best_state = math.inf, 0, None
    if resume:
        if ckpt_dir is None:
            raise ValueError("resume needs a checkpoint folder")
        state = load_checkpoint(ckpt_dir / LAST, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        elapsed_before = float(state["elapsed"])
        best_val = float(state["best_val"])
        bad_epochs = int(state["bad_epochs"])
        result.best_epoch = state["best_epoch"]
        result.best_metrics = dict(state.get("best_metrics") or {})
        result.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if (ckpt_dir / BEST).exists():
            best_state = load_checkpoint(ckpt_dir / BEST, map_location=device)["model"]
        if start_epoch >= config.epochs:
            result.stopped = "completed"
    autocast = lambda: dev.autocast(device, bf16)
    t0 = time.perf_counter() - elapsed_before
    budget = config.max_minutes * 60 if config.max_minutes else None  # 0 = no budget

    def elapsed() -> float:
        return time.perf_counter() - t0

    def progress_fraction(step: int) -> float:
        p = step / max(total_steps, 1)
        if budget:
            p = max(p, elapsed() / budget)
        return p

    stopped = "completed"
    epoch = start_epoch
    steps_ended = None
    for epoch in range(start_epoch, config.epochs):
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(epoch)
        model.train()
        loss_sum, seen = 0.0, 0
        lr = config.lr
        epoch_end = None
        if budget:
            now = elapsed()
            overhead = now - steps_ended if steps_ended is not None else 0.0  # validation, checkpoints, callbacks
            share = (budget - now) / max(BUDGET_VALIDATIONS - epoch, 1)
            epoch_end = now + max(share - overhead, 0.0)
        for step, batch in enumerate(_epoch_loader(train_data, config, epoch, shuffle, collate_fn), start=1):
            lr = lr_at(progress_fraction(global_step), config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast():
                loss = task.loss(model, batch, device, channels_last)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch + 1} step {step}; lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            global_step += 1
            loss_sum += float(loss.detach())
            seen += 1
            if callback:
                callback(TrainReport("step", epoch + 1, config.epochs, step, n_steps, global_step,
                                     loss_sum / seen, lr, elapsed(), best_epoch=result.best_epoch))
            if is_cancelled(cancel):
                stopped = "cancelled"
                break
            if budget and elapsed() >= budget:
                stopped = "time_budget"
                break
            if epoch_end is not None and elapsed() >= epoch_end:
                break  # this epoch's share of the budget is used: validate now
        steps_ended = elapsed()
        if stopped == "cancelled":
            break
        scores = {}
        if val_data is not None and len(val_data):
            model.eval()
            loader = _epoch_loader(val_data, config, 0, False, collate_fn)
            with torch.no_grad():
                scores = task.validate(model, loader, device, channels_last, autocast)
        val_loss = scores.get("loss")
        monitored = val_loss if val_loss is not None else loss_sum / max(seen, 1)
        improved = monitored < best_val - config.min_delta
        if improved:
            best_val, bad_epochs = monitored, 0
            result.best_epoch = epoch + 1
            result.best_metrics = {k: float(v) for k, v in scores.items()}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "lr": lr,
                  "elapsed": elapsed(), **{f"val_{k}": float(v) for k, v in scores.items()}}
        result.history.append(record)
        if config.patience and bad_epochs >= config.patience and stopped == "completed":
            stopped = "early_stopping"
        report = TrainReport("epoch", epoch + 1, config.epochs, seen, n_steps, global_step,
                             record["train_loss"], lr, elapsed(), val_loss=val_loss,
                             val_iou=scores.get("iou"), val_dice=scores.get("dice"),
                             best_epoch=result.best_epoch, stopped=None if stopped == "completed" else stopped)
        if ckpt_dir is not None:
            if improved:
                save_checkpoint(ckpt_dir / BEST, {"model": best_state, "epoch": epoch + 1})
            save_checkpoint(ckpt_dir / LAST, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1, "global_step": global_step, "elapsed": elapsed(),
                "best_val": best_val, "best_epoch": result.best_epoch, "best_metrics": result.best_metrics,
                "bad_epochs": bad_epochs, "history": result.history, "torch_rng": torch.get_rng_state(),
                "config": dataclasses.asdict(config),
            })
        if callback:
            callback(report)
        if stopped != "completed":
            break
        if is_cancelled(cancel):
            stopped = "cancelled"
            break
    result.stopped = stopped
    result.epochs_run = len(result.history)
    result.global_step = global_step
    result.elapsed = elapsed()
    result.best_val_loss = None if math.isinf(best_val) else best_val
    if config.restore_best and best_state is not None and stopped != "cancelled":
        model.load_state_dict(best_state)
    model.eval()
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    return result
