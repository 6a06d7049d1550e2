"""A run's records: ``metrics.jsonl`` (optionally mirrored to TensorBoard), cut back on resume to the resumed
step, and the progress bar over optimiser steps. Every task writes through them."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import RunFolderError

__all__ = ["MetricsWriter", "progress_bar"]


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``; optionally mirrors scalars to TensorBoard."""

    def __init__(self, out_dir: Path, *, tensorboard: bool = False, resume_step: int | None = None) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)
        elif resume_step is None:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "a", buffering=1)
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
        lines = [line for line in self.path.read_text(errors="replace").splitlines() if line]
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
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
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


def progress_bar(total: int, initial: int, *, enabled: bool):
    """A tqdm bar over optimiser steps (its rate is steps/s; images/s, loss, lr... go in the postfix)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, smoothing=0.1)
