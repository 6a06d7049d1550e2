"""One optimiser step, the same in every task: gradient accumulation over micro-batches, then the end of the
step (the loss over ranks, divergence, unreadable images, checkpoints and stop signals)."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn as nn

from ..precision import autocast_context
from .checkpointer import Checkpointer
from .distributed import all_reduce_mean, any_rank
from .faults import BrokenImageCounter, StopSignal
from .process import RunResult
from .run import Run

__all__ = ["accumulated_step", "autocast_factory", "StepEnd"]

logger = logging.getLogger("ijepa_hub.engine")


def autocast_factory(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """A fresh autocast context per use for ``train.precision`` on ``device``: the one policy of
    :func:`ijepa_hub.precision.autocast_context` (``auto``: bf16 on CUDA, fp32 elsewhere)."""
    return lambda: autocast_context(device, precision)


def accumulated_step(
    module: nn.Module,
    micro_batches: Sequence[Any],
    optimizer: torch.optim.Optimizer,
    loss_of: Callable[[nn.Module, Any], torch.Tensor],
    *,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    clip_grad: float | None = None,
    no_sync: Callable[[], AbstractContextManager] | None = None,
) -> torch.Tensor:
    """One optimiser step over ``k`` micro-batches (gradient accumulation); returns the mean loss.

    ``loss_of(module, micro_batch)`` is a micro-batch's mean loss; each is scaled by ``1/k`` so the gradient
    equals that of the whole batch (every micro-batch has the same size). ``no_sync`` (DDP/FSDP) skips the
    gradient all-reduce on all but the last micro-batch.
    """
    optimizer.zero_grad(set_to_none=True)
    k = len(micro_batches)
    total = torch.zeros((), device=device)
    for i, mb in enumerate(micro_batches):
        with no_sync() if (no_sync is not None and i < k - 1) else nullcontext():
            with autocast():
                loss = loss_of(module, mb)
            (loss / k).backward()
        total += loss.detach().float()
    if clip_grad is not None:
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], clip_grad)
    optimizer.step()
    return total / k


class StepEnd:
    """What every task does after optimiser step ``step``: :meth:`record` its loss, :meth:`close` it.

    ``record`` averages the loss and the count of skipped images over ranks, stops a diverged run (naming the
    last good checkpoint), counts the unreadable images and adds the step to ``result``. ``close`` writes the
    checkpoint when due, stops past ``data.max_broken_fraction`` (after a checkpoint), and on a stop signal
    received by any rank writes a checkpoint and answers True: the loop breaks, ``result.preempted`` is set.
    """

    def __init__(
        self, run: Run, checkpointer: Checkpointer, broken: BrokenImageCounter, stop: StopSignal, result: RunResult
    ) -> None:
        self.run, self.checkpointer, self.broken, self.stop, self.result = run, checkpointer, broken, stop, result

    def record(self, step: int, loss: torch.Tensor, skipped: int, broken_files: list[str]) -> tuple[float, int]:
        """The step's loss averaged over processes and the unreadable images all processes skipped."""
        env = self.run.env
        stats = all_reduce_mean(torch.stack([loss.float(), loss.new_tensor(float(skipped))]), env)
        loss_value, skipped_all = float(stats[0]), round(float(stats[1]) * env.world_size)
        if not math.isfinite(loss_value):
            raise self.checkpointer.diverged(step, f"the loss is {loss_value}")
        self.broken.add(skipped_all, self.run.plan.global_batch, broken_files)
        self.result.step = step
        self.result.losses.append(loss_value)
        return loss_value, skipped_all

    def close(self, step: int) -> bool:
        """Checkpoint when due; raise past the broken-image limit; True when a stop signal ends the run."""
        self.checkpointer.save(step)
        if self.broken.exceeded:
            self.checkpointer.save(step, force=True)
            raise self.broken.error(step, self.checkpointer.path)
        if any_rank(self.stop.received is not None, self.run.env):
            self.checkpointer.save(step, force=True)
            self.result.preempted = True
            logger.warning("step %d: stop signal received; checkpoint written, exiting", step)
            return True
        return False
