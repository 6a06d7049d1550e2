"""How many intra-op threads a CPU training process uses.

torch's default (one per core) fights whatever else runs on the same cores: on cores busy with other jobs
the default run goes several times slower than with one thread, while on idle cores one thread leaves half
the machine unused. The automatic choice counts the cores other programs keep
busy (a 0.2 s sample of ``/proc/stat`` before training, on Linux, for a single process), leaves one core
to each DataLoader worker and shares the rest between the processes on this machine (torchrun's
``LOCAL_WORLD_SIZE``), at least one thread each. ``train.threads`` or an ``OMP_NUM_THREADS`` the user
set win over it.

The count changes fp32 reductions, so a run records it (checkpoint and ``recipe.yaml``) and a resume reuses the
recorded count (:func:`reuse_recorded_threads`): an explicit choice that differs is warned about, not applied.
"""
from __future__ import annotations

import logging
import os
import time

import torch

__all__ = [
    "choose_threads", "available_cores", "busy_cores", "set_training_threads", "threads_in_use",
    "reuse_recorded_threads",
]

logger = logging.getLogger("ijepa_hub.engine")


def choose_threads(
    *, cores: int, workers: int, processes: int = 1, requested: int | None = None, omp_num_threads: str | None = None,
    busy: float = 0.0,
) -> tuple[int, str]:
    """Intra-op threads for one process, and where the number comes from (``train.threads``,
    ``OMP_NUM_THREADS`` or ``automatic``). ``workers``: DataLoader workers per process; ``processes``:
    training processes sharing the ``cores``; ``busy``: cores other programs are using (rounded)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"train.threads must be at least 1 (or null for automatic), got {requested}")
        return requested, "train.threads"
    if omp_num_threads and omp_num_threads.strip().isdigit() and int(omp_num_threads) > 0:
        return int(omp_num_threads), "OMP_NUM_THREADS"
    processes = max(1, processes)
    free = cores - round(max(0.0, busy))
    return max(1, (free - processes * workers) // processes), "automatic"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_times(cpus: set[int]) -> tuple[int, int]:
    """(busy, total) jiffies summed over ``cpus``, from ``/proc/stat``."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
                continue
            values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(values)
            busy += sum(values) - values[3] - values[4]
    return busy, total


def busy_cores(interval: float = 0.2) -> float | None:
    """How many of this process's cores other programs keep busy, sampled over ``interval`` seconds while
    this process sleeps; None where ``/proc/stat`` or CPU affinity is not available (not Linux)."""
    if not hasattr(os, "sched_getaffinity") or not os.path.exists("/proc/stat"):
        return None
    cpus = os.sched_getaffinity(0)
    busy0, total0 = _cpu_times(cpus)
    time.sleep(interval)
    busy1, total1 = _cpu_times(cpus)
    if total1 <= total0:
        return None
    return len(cpus) * (busy1 - busy0) / (total1 - total0)


def set_training_threads(requested: int | None, *, workers: int, cpu: bool) -> int | None:
    """Apply :func:`choose_threads` with ``torch.set_num_threads`` and log it; returns the previous count
    (to restore), or None when nothing was changed (GPU training without ``train.threads``)."""
    if not cpu and requested is None:
        return None
    cores, processes = available_cores(), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    omp = os.environ.get("OMP_NUM_THREADS")
    # under torchrun the sibling ranks start at the same moment and would count each other as busy
    sample = requested is None and not (omp and omp.strip().isdigit()) and processes == 1
    busy = busy_cores() if sample else None
    threads, source = choose_threads(
        cores=cores, workers=workers, processes=processes, requested=requested, omp_num_threads=omp,
        busy=busy or 0.0,
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    logger.info(
        "intra-op threads: %d per process (%s; %d cores%s, %d DataLoader worker(s) per process, %d process(es))",
        threads, source, cores, "" if busy is None else f", {busy:.1f} busy with other programs", workers, processes,
    )
    return previous


def _explicit(requested: int | None) -> tuple[int, str] | None:
    """The count the user chose (``train.threads``, else ``OMP_NUM_THREADS``) and its name, or None."""
    if requested is not None:
        return requested, f"train.threads {requested}"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    return (int(omp), f"OMP_NUM_THREADS={omp}") if omp.isdigit() and int(omp) > 0 else None


def threads_in_use(requested: int | None, *, cpu: bool) -> int | None:
    """The intra-op count a run records: this process's count where the policy set it (a CPU run, or
    ``train.threads`` given), else None (a GPU run leaves torch's own)."""
    return torch.get_num_threads() if cpu or requested is not None else None


def reuse_recorded_threads(recorded: int | None, requested: int | None, *, cpu: bool, source: str) -> None:
    """Resume with the count the run recorded in ``source`` (its checkpoint), so that it continues bit for bit.
    An explicit ``train.threads`` / ``OMP_NUM_THREADS`` that differs is warned about and not applied; a checkpoint
    without the record (written before it existed), or a GPU run without one, keeps the count chosen now."""
    if recorded is None or threads_in_use(requested, cpu=cpu) is None:
        return
    explicit = _explicit(requested)
    if explicit is not None and explicit[0] != recorded:
        logger.warning(
            "%s is ignored: this run used %d intra-op thread(s) (recorded in %s), and another count would change "
            "its fp32 results; it resumes with %d. To use another count, start a new run.",
            explicit[1], recorded, source, recorded,
        )
    torch.set_num_threads(recorded)
    logger.info("intra-op threads: %d per process, as recorded in %s (a resume continues bit for bit)", recorded, source)
