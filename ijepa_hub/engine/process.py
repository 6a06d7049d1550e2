"""A training process around a task's loop: the process group, CPU threads and the run folder's lock; the
run folder prepared on rank 0; and what every task's call returns."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from ..errors import RunLockedError
from ..recipe import RunRecipe, RunSection
from .checkpoint import remove_partial_checkpoints
from .distributed import DistEnv, any_rank, init_distributed
from .lock import RunLock
from .metrics import MetricsWriter
from .threads import set_training_threads

__all__ = ["RunResult", "training_process", "open_run_folder"]

logger = logging.getLogger("ijepa_hub.engine")


@dataclass
class RunResult:
    """What a call to a task (``train``, ``finetune``...) did; each task's result adds its own records."""

    out_dir: Path
    start_step: int
    step: int  # optimiser steps completed
    total_steps: int  # length of the schedules
    losses: list[float] = field(default_factory=list)  # one per step run in this call (mean over ranks)
    preempted: bool = False
    checkpoint: Path | None = None
    export_dir: Path | None = None
    hub_url: str | None = None


@contextmanager
def training_process(cfg: RunSection, out_dir: Path) -> Iterator[DistEnv]:
    """This process set up for a run writing to ``out_dir`` (``cfg``: the recipe's train section): the process
    group torchrun describes joined, the CPU threads set, the folder's lock held by rank 0; all undone on exit."""
    env = init_distributed(cfg.device)
    created_group = env.distributed
    previous_threads = set_training_threads(cfg.threads, workers=cfg.num_workers, cpu=env.device.type == "cpu")
    try:
        with _folder_lock(out_dir, env):
            yield env
    finally:
        if previous_threads is not None:
            torch.set_num_threads(previous_threads)
        if created_group and dist.is_initialized():
            dist.destroy_process_group()


@contextmanager
def _folder_lock(out_dir: Path, env: DistEnv) -> Iterator[None]:
    """Rank 0 holds the run folder's lock for the whole run; every rank stops when it cannot be taken."""
    lock, error = RunLock(out_dir), None
    if env.is_main:
        try:
            lock.acquire()
        except RunLockedError as err:
            error = err
    if any_rank(error is not None, env):
        raise error or RunLockedError(f"run folder {out_dir} is in use by another run (rank 0's error names it)")
    try:
        yield
    finally:
        lock.release()


def open_run_folder(
    out_dir: Path, recipe: RunRecipe, env: DistEnv, *, resume_step: int | None, tensorboard: bool = False
) -> MetricsWriter | None:
    """Rank 0 prepares the run folder: stale partial checkpoints removed, ``recipe.yaml`` written,
    ``metrics.jsonl`` opened (cut back to ``resume_step`` when resuming). Other ranks get None."""
    if not env.is_main:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    for partial in remove_partial_checkpoints(out_dir):
        logger.warning("removed %s, left by a checkpoint write that was interrupted", partial)
    (out_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    return MetricsWriter(out_dir, tensorboard=tensorboard, resume_step=resume_step)
