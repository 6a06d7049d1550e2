"""What one call of a task (``train``, ``finetune``...) runs: the batch plan, the schedules and the steps, fixed
before the loop."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..data import BatchPlan
from ..recipe import AdamWSection, RunRecipe
from .distributed import DistEnv

__all__ = ["Run"]


@dataclass(frozen=True)
class Run:
    """The run's shape, shared by the loop's helpers (checkpoints, logging, export)."""

    recipe: RunRecipe
    env: DistEnv
    plan: BatchPlan
    schedules: Any  # the task's schedules (ijepa_hub.engine.schedules): a frozen dataclass with total_steps
    num_samples: int  # images in the dataset
    start_step: int  # optimiser steps done before this call (a resumed run's checkpoint step)
    end_step: int  # where this call stops: the end of the schedules, or train.max_steps
    data_fingerprint: str | None = None  # the data's identity (ijepa_hub.data.identity), saved in checkpoints

    @classmethod
    def create(
        cls, recipe: RunRecipe, env: DistEnv, num_samples: int, start_step: int = 0, *,
        schedules_from: Callable[[AdamWSection, int], Any], data_fingerprint: str | None = None,
    ) -> Run:
        """Schedules span ``optim.epochs`` of ``num_samples // global batch`` steps; ``train.max_steps`` cuts short.

        ``schedules_from(recipe.optim, steps_per_epoch)`` builds them: the task's ``from_recipe`` of
        :mod:`ijepa_hub.engine.schedules`."""
        plan = BatchPlan(recipe.optim.batch_size, recipe.data.batch_size_per_device, env.world_size)
        schedules = schedules_from(recipe.optim, max(1, num_samples // plan.global_batch))
        max_steps = recipe.train.max_steps
        end_step = schedules.total_steps if max_steps is None else min(max_steps, schedules.total_steps)
        return cls(recipe, env, plan, schedules, num_samples, start_step, end_step, data_fingerprint)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.num_samples // self.plan.global_batch)

    def position(self, step: int) -> dict[str, Any]:
        """Where the data stands after ``step`` optimiser steps (saved in checkpoints)."""
        return {
            "step": step, "epoch": step // self.steps_per_epoch, "images_seen": step * self.plan.global_batch,
            "num_samples": self.num_samples, "micro_batches_per_step": self.plan.micro_batches_per_step,
            "fingerprint": self.data_fingerprint, "source": self.recipe.data.path,
        }

    def describe(self, model_name: str, resumed_from: object = None) -> str:
        """One log line: data, batch split and steps."""
        plan = self.plan
        return (
            f"{self.recipe.name}: {model_name}, {self.num_samples} images, global batch {plan.global_batch} = "
            f"{self.env.world_size} process(es) x {plan.accumulation} micro-batch(es) x {plan.micro_batch}, "
            f"steps {self.start_step} -> {self.end_step} of {self.schedules.total_steps}"
            + (f" (resumed from {resumed_from})" if resumed_from is not None else "")
        )
