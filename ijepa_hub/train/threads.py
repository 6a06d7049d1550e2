"""How many intra-op threads a CPU training process uses.

torch's default (one per core) fights the DataLoader workers for the same cores: on 2 busy cores the
default run went 14x slower than with one thread. The automatic choice leaves one core to each
DataLoader worker and shares the rest between the processes on this machine (torchrun's
``LOCAL_WORLD_SIZE``), at least one thread each. ``train.threads`` or an ``OMP_NUM_THREADS`` the user
set win over it.
"""
from __future__ import annotations

import logging
import os

import torch

__all__ = ["choose_threads", "available_cores", "set_training_threads"]

logger = logging.getLogger("ijepa_hub.train")


def choose_threads(
    *, cores: int, workers: int, processes: int = 1, requested: int | None = None, omp_num_threads: str | None = None
) -> tuple[int, str]:
    """Intra-op threads for one process, and where the number comes from (``train.threads``,
    ``OMP_NUM_THREADS`` or ``automatic``). ``workers``: DataLoader workers per process; ``processes``:
    training processes sharing the ``cores``."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"train.threads must be at least 1 (or null for automatic), got {requested}")
        return requested, "train.threads"
    if omp_num_threads and omp_num_threads.strip().isdigit() and int(omp_num_threads) > 0:
        return int(omp_num_threads), "OMP_NUM_THREADS"
    processes = max(1, processes)
    return max(1, (cores - processes * workers) // processes), "automatic"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_training_threads(requested: int | None, *, workers: int, cpu: bool) -> int | None:
    """Apply :func:`choose_threads` with ``torch.set_num_threads`` and log it; returns the previous count
    (to restore), or None when nothing was changed (GPU training without ``train.threads``)."""
    if not cpu and requested is None:
        return None
    cores, processes = available_cores(), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads, source = choose_threads(
        cores=cores, workers=workers, processes=processes, requested=requested,
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    logger.info(
        "intra-op threads: %d per process (%s; %d cores, %d DataLoader worker(s) per process, %d process(es))",
        threads, source, cores, workers, processes,
    )
    return previous
