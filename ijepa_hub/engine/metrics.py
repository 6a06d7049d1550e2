"""A run's records: ``metrics.jsonl`` (optionally mirrored to TensorBoard), cut back on resume to the resumed
step, the progress bar over optimiser steps, and the step logger that feeds both. Every task writes through
them."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ..errors import RunFolderError
from .files import check_entry, open_run_file, write_run_file
from .progress import LOG_INTERVAL_S, PlainProgress

__all__ = ["MetricsWriter", "progress_bar", "StepLogger"]

logger = logging.getLogger("ijepa_hub.engine")


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``; optionally mirrors scalars to TensorBoard."""

    def __init__(self, out_dir: Path, *, tensorboard: bool = False, resume_step: int | None = None) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = check_entry(self.path)  # never written through a link
        if resume_step is not None and exists:
            self._truncate_after(resume_step)
        elif resume_step is None:
            self.path.unlink(missing_ok=True)
        self._file = os.fdopen(open_run_file(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a", buffering=1)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "train.tensorboard=true needs the tensorboard package: pip install tensorboard"
                ) from err
            self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def _truncate_after(self, step: int) -> None:
        """Drop records a killed run wrote after its last checkpoint, so the file matches the resumed run.

        A torn last line (the run was killed while writing it) is dropped too; a damaged line before it is
        an error naming the file and the line.
        """
        with os.fdopen(open_run_file(self.path, os.O_RDONLY), errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line]
        kept = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines):
                    break  # torn by a kill mid-write
                raise RunFolderError(
                    f"{self.path}, line {number}: not a JSON record ({err}); the metrics of this run are damaged. "
                    "Fix: delete that line (or the file, losing the curves), then resume again."
                ) from None
            if record.get("step", 0) <= step:
                kept.append(line)
        tmp = write_run_file(self.path.with_suffix(".tmp"), "".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def progress_bar(total: int, initial: int, *, enabled: bool, file: TextIO | None = None,
                 interval: float = LOG_INTERVAL_S):
    """A tqdm bar over optimiser steps on ``file`` (default stderr; its rate is steps/s; images/s, loss, lr... go in
    the postfix). When ``file`` is not a terminal (a batch system's log), a :class:`PlainProgress` writing one plain
    line every ``interval`` seconds instead of carriage-return frames."""
    from tqdm.auto import tqdm

    file = sys.stderr if file is None else file
    if enabled and not _is_terminal(file):
        return PlainProgress(total, initial, file=file, interval=interval)
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, smoothing=0.1,
                file=file)


def _is_terminal(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class StepLogger:
    """What a task's loop reports: a metrics record every ``log_every`` steps, at ``end_step`` and whenever
    images were skipped (the mean loss since the previous record, the task's fields, with ``rate`` the images/s),
    the progress bar and its postfix, and the task's own events (``kind``: monitor, probe, eval...).
    Only the process that has a ``writer`` (rank 0) writes."""

    def __init__(
        self, writer: MetricsWriter | None, bar: Any, *, log_every: int, end_step: int, steps_per_epoch: int,
        images_per_step: int, rate: bool = True,
    ) -> None:
        self.writer, self.bar = writer, bar
        self.log_every, self.end_step = log_every, end_step
        self.steps_per_epoch, self.images_per_step, self.rate = steps_per_epoch, images_per_step, rate
        self._losses: list[float] = []
        self._tick, self._images = time.perf_counter(), 0
        self._postfix: dict[str, str] = {}  # the latest event's figures, shown on the bar
        self._shown: dict[str, str] = {}  # the latest logged step's figures

    def step(self, step: int, loss: float, *, skipped: int, broken_total: int, fields: dict[str, float],
             postfix: dict[str, Any]) -> None:
        """After optimiser step ``step``: its mean ``loss`` over ranks, images ``skipped``, the task's ``fields``
        for the record (the values the step used) and ``postfix`` for the bar."""
        if self.writer is not None:
            self._losses.append(loss)
            self._images += self.images_per_step
            if step % self.log_every == 0 or step == self.end_step or skipped:
                self._record(step, skipped, broken_total, fields, postfix)
        self.bar.update(1)

    def _record(self, step: int, skipped: int, broken_total: int, fields: dict[str, float],
                postfix: dict[str, Any]) -> None:
        now = time.perf_counter()
        record = {"step": step, "epoch": step / self.steps_per_epoch, "loss": sum(self._losses) / len(self._losses),
                  **fields}
        rate = {"images_per_s": self._images / max(now - self._tick, 1e-9)} if self.rate else {}
        record.update(rate, broken_images=skipped, broken_images_total=broken_total)
        self.writer.write(record)
        shown = {"img_s": f"{rate['images_per_s']:.0f}"} if rate else {}
        self._shown = {"loss": f"{record['loss']:.4f}", **postfix, **shown}
        self.bar.set_postfix(**self._shown, **self._postfix, refresh=False)
        if skipped:
            logger.warning("step %d: %d unreadable image(s) skipped (named above)", step, skipped)
        self._losses, self._tick, self._images = [], now, 0

    def event(self, kind: str, record: dict[str, Any], *, postfix: dict[str, str] | None = None) -> dict[str, Any]:
        """Write a task's own record (``{"kind": kind, ...}``); ``postfix`` replaces the figures shown on the bar.
        Returns ``record``."""
        if self.writer is not None:
            self.writer.write({"kind": kind, **record})
        if postfix is not None:  # shown now, so the last frame holds the last event (the run's final probe)
            self._postfix = postfix
            if self.writer is not None:
                self.bar.set_postfix(**self._shown, **postfix, refresh=False)
        return record

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
