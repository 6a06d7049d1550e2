"""What the training loop does when the data or the numbers go wrong.

* Unreadable images are skipped by :class:`~ijepa_hub.data.TrainingSamples` and counted here; past
  ``data.max_broken_fraction`` of the images read since the run started or resumed (counting at least
  :data:`MIN_IMAGES_FOR_BROKEN_FRACTION`) the run checkpoints and stops with
  :class:`~ijepa_hub.errors.TooManyBrokenImagesError`.
* A NaN or infinite loss, or non-finite weights about to be checkpointed, stop the run with
  :class:`~ijepa_hub.errors.TrainingDivergedError` before anything overwrites the last good checkpoint.
* SIGTERM / SIGUSR1 (preemption) and SIGINT (Ctrl-C) set :class:`StopSignal`'s flag: the loop finishes
  the step, checkpoints and returns; a second one stops at once. DataLoader workers ignore them
  (:func:`ignore_stop_signals`), so a signal sent to the whole process group (Slurm, ``timeout``, a
  container stop, Ctrl-C in a terminal) reaches the main process only and kills no worker.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TooManyBrokenImagesError, TrainingDivergedError

__all__ = ["MIN_IMAGES_FOR_BROKEN_FRACTION", "BrokenImageCounter", "diverged", "StopSignal", "ignore_stop_signals"]

MIN_IMAGES_FOR_BROKEN_FRACTION = 1000


@dataclass
class BrokenImageCounter:
    """Skipped images over the run (saved in checkpoints) and since this start (what the limit applies to).

    Counting from the start or resume means that a run resumed after the files were repaired is not
    stopped again by the old count.
    """

    max_fraction: float
    total: int = 0  # over the run
    read_total: int = 0  # images read, the skipped ones included
    now: int = 0  # since this start or resume
    read_now: int = 0
    names: list[str] = field(default_factory=list)  # the first few seen by this process

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_fraction <= 1.0:
            raise ValueError(f"data.max_broken_fraction must be in [0, 1], got {self.max_fraction}")

    def add(self, broken: int, used: int, names: list[str]) -> None:
        """``broken`` skipped images (all processes) while ``used`` images were trained on; ``names``: ours."""
        self.total, self.now = self.total + broken, self.now + broken
        self.read_total, self.read_now = self.read_total + used + broken, self.read_now + used + broken
        self.names = (self.names + names)[:10]

    @property
    def exceeded(self) -> bool:
        return self.now > self.max_fraction * max(self.read_now, MIN_IMAGES_FOR_BROKEN_FRACTION)

    def state_dict(self) -> dict[str, int]:
        return {"broken_images": self.total, "images_read": self.read_total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total, self.read_total = int(state.get("broken_images", 0)), int(state.get("images_read", 0))

    def error(self, step: int, checkpoint: Path) -> TooManyBrokenImagesError:
        return TooManyBrokenImagesError(
            f"step {step}: {self.now} of the {self.read_now} images read since this run started or resumed could "
            f"not be decoded and were skipped, more than data.max_broken_fraction = {self.max_fraction} allows (of "
            f"at least {MIN_IMAGES_FOR_BROKEN_FRACTION} images). First ones: "
            f"{', '.join(self.names) or 'on other ranks'} (the log names them all). A checkpoint of step {step} "
            f"was written to {checkpoint}. Fix: repair or replace the files (keep their number: the sample order "
            "depends on it) and run again with --resume auto, or raise --data.max_broken_fraction."
        )


def diverged(step: int, what: str, last_good: Path | None, last_good_step: int) -> TrainingDivergedError:
    """The error for a NaN / inf at ``step``, naming the checkpoint that is kept and what to change."""
    kept = (
        f"The last good checkpoint, {last_good} (step {last_good_step}), is intact."
        if last_good is not None else "No checkpoint had been written yet."
    )
    return TrainingDivergedError(
        f"step {step}: {what}; training stopped without writing a checkpoint. {kept} The run is deterministic, "
        "so resuming with the same recipe repeats this step. Fix: start a new run (another --out) with a lower "
        "--optim.lr, a longer --optim.warmup_epochs or --optim.clip_grad 1.0, and check the data."
    )


_STOP_SIGNALS = tuple(
    s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGUSR1", "SIGINT")) if s is not None
)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: workers leave the stop signals to the main process, which checkpoints
    and then shuts them down (a worker killed by a group-wide SIGTERM would crash the run)."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class StopSignal:
    """SIGTERM / SIGUSR1 (preemption) and SIGINT (Ctrl-C) set a flag; the loop checkpoints after the current
    step and exits. A second signal (more than :attr:`REPEAT_WINDOW_S` after the first) stops the process
    at once (the signal's default action)."""

    SIGNALS = _STOP_SIGNALS
    # A repeat this soon is the first signal delivered twice (to the process group, then forwarded by
    # torchrun's agent), not a user asking to stop now.
    REPEAT_WINDOW_S = 1.0

    def __init__(self, prog: str) -> None:
        self.prog = prog  # the command its lines name: ``ijepa-train``, ``ijepa-finetune``
        self.received: int | None = None
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            if time.monotonic() - self._first < self.REPEAT_WINDOW_S:
                return  # the same event twice: torchrun forwards the group's signal to its workers
            os.write(2, f"{self.prog}: second stop signal ({name}): stopping at once\n".encode())
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received, self._first = signum, time.monotonic()
        os.write(2, f"{self.prog}: {name} received: finishing the step and writing a checkpoint "
                    "(send it again to stop at once)\n".encode())

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
