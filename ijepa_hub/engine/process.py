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

from ..errors import RunFolderError, RunLockedError
from ..recipe import RunRecipe, RunSection
from .checkpoint import CHECKPOINT_NAME, remove_partial_checkpoints
from .distributed import DistEnv, any_rank, init_distributed
from .files import check_entry, make_run_folder, write_run_file
from .lock import RunLock
from .metrics import MetricsWriter
from .threads import set_training_threads, threads_in_use

__all__ = ["RunResult", "training_process", "open_run_folder"]

logger = logging.getLogger("ijepa_hub.engine")
_RECORDS = ("recipe.yaml", "metrics.jsonl")  # what open_run_folder writes
_FRESH: set[str] = set()  # run folders this process opened for a fresh run (written by this run alone)


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
            try:
                yield env
            except BaseException:
                if env.is_main:
                    _remove_unfinished(out_dir)
                raise
            finally:
                _FRESH.discard(str(out_dir.resolve()))
    finally:
        if previous_threads is not None:
            torch.set_num_threads(previous_threads)
        if created_group and dist.is_initialized():
            dist.destroy_process_group()


def _remove_unfinished(out_dir: Path) -> None:
    """A fresh run that fails before its first checkpoint removes the records it wrote (``recipe.yaml``,
    ``metrics.jsonl``), so that the same command can run again in the folder; a resumed run's are kept."""
    if str(out_dir.resolve()) not in _FRESH or (out_dir / CHECKPOINT_NAME).exists():
        return
    try:
        removed = [name for name in _RECORDS if check_entry(out_dir / name)]
    except RunFolderError:  # a link planted there: left as it is, the run's own error goes on
        return
    for name in removed:
        (out_dir / name).unlink()
    if removed:
        logger.info("removed %s: the run failed before its first checkpoint, and %s can be used again",
                    ", ".join(removed), out_dir)


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
    """Rank 0 prepares the run folder: stale partial checkpoints removed, ``recipe.yaml`` written (with the
    intra-op thread count in use as ``train.threads``: a run from it repeats this one bit for bit),
    ``metrics.jsonl`` opened (cut back to ``resume_step`` when resuming). Other ranks get None."""
    if not env.is_main:
        return None
    make_run_folder(out_dir)
    for partial in remove_partial_checkpoints(out_dir):
        logger.warning("removed %s, left by a checkpoint write that was interrupted", partial)
    if resume_step is None:
        _FRESH.add(str(out_dir.resolve()))
    saved = recipe.to_dict()
    threads = threads_in_use(recipe.train.threads, cpu=env.device.type == "cpu")
    if threads is not None:
        saved["train"]["threads"] = threads
    write_run_file(out_dir / _RECORDS[0], yaml.safe_dump(saved, sort_keys=False))
    return MetricsWriter(out_dir, tensorboard=tensorboard, resume_step=resume_step)
