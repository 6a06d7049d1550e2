"""The run's checkpoint as the loop sees it: when to write it, what goes in, and which one is known good."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from ..errors import TrainingDivergedError
from ..state_dict import nonfinite_keys
from .checkpoint import CHECKPOINT_NAME, rng_state, save_checkpoint
from .distributed import any_rank, full_state, gather_objects
from .faults import BrokenImageCounter, diverged
from .resume import Resume
from .run import Run
from .threads import threads_in_use

__all__ = ["Checkpointer", "Stateful"]


class Stateful(Protocol):
    """A piece of a task's run state saved in checkpoints (a monitor's history, a validation record...)."""

    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Checkpointer:
    """Writes ``<out>/checkpoint.pt`` for ``run`` and remembers the last good one.

    :meth:`save` writes every ``train.checkpoint_every`` steps and at the last step, or at any step with
    ``force`` (a stop signal, too many broken images); a step is written once. Non-finite weights are
    never written: the run stops with the error of :meth:`diverged`, which names the last good checkpoint.
    """

    def __init__(
        self, out_dir: Path, run: Run, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
        broken: BrokenImageCounter, extra: Mapping[str, Stateful], resumed: Resume | None, fsdp: bool = False,
    ) -> None:
        self.path = Path(out_dir) / CHECKPOINT_NAME
        self.run, self.model, self.optimizer, self.broken = run, model, optimizer, broken
        self.extra, self.fsdp = dict(extra), fsdp  # the task's own state, saved under these keys
        self.last_good: Path | None = resumed.source if resumed else None  # newest known to hold finite weights
        self.last_saved = resumed.step if resumed else -1  # its step
        self.written: Path | None = None  # set once this call wrote a checkpoint

    def due(self, step: int) -> bool:
        return step % self.run.recipe.train.checkpoint_every == 0 or step == self.run.end_step

    def save(self, step: int, *, force: bool = False) -> None:
        """Check the weights, gather every rank's RNG state, write (rank 0, atomically), wait for all ranks."""
        if step == self.last_saved or not (force or self.due(step)):
            return
        run, env = self.run, self.run.env
        model_state, optim_state = full_state(self.model, self.optimizer, self.fsdp)
        if any_rank(env.is_main and bool(nonfinite_keys(model_state)), env):
            raise self.diverged(step, "the weights hold NaN or infinite values")
        rngs = gather_objects(rng_state(), env)
        if env.is_main:
            save_checkpoint(self.path, {
                "step": step,
                "recipe": run.recipe.to_dict(),
                "model": model_state,
                "optimizer": optim_state,
                "scaler": None,  # bf16 autocast needs no loss scaling
                "schedules": dataclasses.asdict(run.schedules),
                "rng": rngs,
                "data": {**run.position(step), **self.broken.state_dict()},
                **{key: part.state_dict() for key, part in self.extra.items()},
                "world_size": env.world_size,
                "threads": threads_in_use(run.recipe.train.threads, cpu=env.device.type == "cpu"),
                "torch_version": str(torch.__version__),
            })
        if env.distributed:
            dist.barrier()
        self.last_good = self.written = self.path
        self.last_saved = step

    def diverged(self, step: int, what: str) -> TrainingDivergedError:
        """The error for a NaN / inf at ``step``, naming the last good checkpoint (left untouched)."""
        return diverged(step, what, self.last_good, self.last_saved)
