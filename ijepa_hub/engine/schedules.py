"""Every task's per-step schedules, pure functions of the step so that resuming needs only the step.

:class:`Schedules`: pretraining as released (warm-up + cosine learning rate, cosine weight-decay increase,
linear EMA momentum ramp). :class:`WarmupCosineSchedules`: fine-tuning (warm-up + cosine learning rate,
constant weight decay, as in MAE / BEiT). Both answer :meth:`at_iteration` with the :class:`Hyperparams` an
iteration trains with, which :func:`ijepa_hub.engine.optim.set_hyperparams` applies.

Which value an iteration uses follows the released trainer (:meth:`Schedules.at_iteration`): its lr and
weight-decay schedulers are stepped (increment, then compute) at the start of each iteration, so
iteration ``t`` (from 0) trains with their values at ``t + 1``; the EMA momentum is drawn after the
optimiser step, value at ``t``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..recipe import AdamWSection, OptimSection

__all__ = [
    "warmup_cosine", "cosine_increase", "linear_ramp", "Schedules", "WarmupCosineSchedules", "Hyperparams",
]


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, start: float, peak: float, final: float) -> float:
    """Linear ``start -> peak`` over ``warmup_steps``, then cosine ``peak -> final`` until ``total_steps``."""
    if step < warmup_steps:
        return start + (peak - start) * step / warmup_steps
    progress = min((step - warmup_steps) / max(1, total_steps - warmup_steps), 1.0)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_increase(step: int, *, total_steps: int, start: float, final: float) -> float:
    """Cosine from ``start`` (step 0) to ``final`` (``total_steps``), held there afterwards."""
    progress = min(step / max(1, total_steps), 1.0)
    return final + (start - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_ramp(step: int, *, total_steps: int, start: float, final: float) -> float:
    """Linear from ``start`` to ``final`` over ``total_steps``, held there afterwards."""
    return start + (final - start) * min(step / max(1, total_steps), 1.0)


@dataclass(frozen=True)
class Hyperparams:
    """The values one iteration trains with."""

    lr: float
    weight_decay: float
    momentum: float | None = None  # of the EMA update after the optimiser step (tasks with an EMA target)


@dataclass(frozen=True)
class Schedules:
    """The three schedules of a run, in optimiser steps."""

    total_steps: int
    warmup_steps: int
    start_lr: float
    peak_lr: float
    final_lr: float
    start_wd: float
    final_wd: float
    start_ema: float
    final_ema: float

    @classmethod
    def from_recipe(cls, optim: OptimSection, steps_per_epoch: int) -> Schedules:
        """Steps as released: ``total = ipe_scale * epochs * steps_per_epoch``, warmup in epochs."""
        return cls(
            total_steps=int(optim.ipe_scale * optim.epochs * steps_per_epoch),
            warmup_steps=int(optim.warmup_epochs * steps_per_epoch),
            start_lr=optim.start_lr,
            peak_lr=optim.lr,
            final_lr=optim.final_lr,
            start_wd=optim.weight_decay,
            final_wd=optim.final_weight_decay,
            start_ema=optim.ema[0],
            final_ema=optim.ema[1],
        )

    def lr(self, step: int) -> float:
        return warmup_cosine(
            step, warmup_steps=self.warmup_steps, total_steps=self.total_steps,
            start=self.start_lr, peak=self.peak_lr, final=self.final_lr,
        )

    def weight_decay(self, step: int) -> float:
        return cosine_increase(step, total_steps=self.total_steps, start=self.start_wd, final=self.final_wd)

    def momentum(self, step: int) -> float:
        return linear_ramp(step, total_steps=self.total_steps, start=self.start_ema, final=self.final_ema)

    def at_iteration(self, step: int) -> Hyperparams:
        """What iteration ``step`` (from 0) uses, as released: lr and weight decay at ``step + 1``
        (their schedulers step before the forward pass), EMA momentum at ``step`` (drawn after it)."""
        return Hyperparams(self.lr(step + 1), self.weight_decay(step + 1), self.momentum(step))


@dataclass(frozen=True)
class WarmupCosineSchedules:
    """Warm-up + cosine learning rate and a constant weight decay (fine-tuning, as in MAE / BEiT)."""

    total_steps: int
    warmup_steps: int
    start_lr: float
    peak_lr: float
    final_lr: float
    weight_decay: float

    @classmethod
    def from_recipe(cls, optim: AdamWSection, steps_per_epoch: int) -> WarmupCosineSchedules:
        return cls(optim.epochs * steps_per_epoch, int(optim.warmup_epochs * steps_per_epoch), optim.start_lr,
                   optim.lr, optim.final_lr, optim.weight_decay)

    def lr(self, step: int) -> float:
        """The learning rate iteration ``step`` (from 0) trains with: the schedule's value at ``step + 1``, as
        in pretraining (so a warm-up from 0 does not waste the first step)."""
        return warmup_cosine(step + 1, warmup_steps=self.warmup_steps, total_steps=self.total_steps,
                             start=self.start_lr, peak=self.peak_lr, final=self.final_lr)

    def at_iteration(self, step: int) -> Hyperparams:
        return Hyperparams(self.lr(step), self.weight_decay)
