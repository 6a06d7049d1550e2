"""Progress for logs that are not a terminal (a Slurm log, ``> file``): one plain line per interval.

tqdm redraws its bar with carriage returns, which a terminal overwrites in place but a log file keeps: thousands
of frames on one line. :class:`PlainProgress` has the calls the step logger makes on a bar (``update``,
``set_postfix``, ``close``) and writes ``step 120/5000 (2%), 3.1 step/s, loss=0.4213 lr=1.2e-04`` lines instead.
"""
from __future__ import annotations

import time
from typing import Any, TextIO

__all__ = ["PlainProgress", "LOG_INTERVAL_S"]

LOG_INTERVAL_S = 30.0  # seconds between two lines of a non-terminal log


class PlainProgress:
    """Counts steps from ``initial`` to ``total`` and writes a line to ``file`` at most every ``interval``
    seconds, and a last one at :meth:`close`, so that it shows what was set after the last step (the run's
    final probe), as tqdm's last frame does."""

    def __init__(self, total: int, initial: int, *, file: TextIO, interval: float = LOG_INTERVAL_S) -> None:
        self.total, self.n, self.file, self.interval = total, initial, file, interval
        self._postfix: dict[str, Any] = {}
        self._since_n, self._since_t = initial, time.monotonic()
        self._updated_t = self._since_t  # the rate is over steps, not the work done after the last one
        self._last_written = -1

    def update(self, n: int = 1) -> None:
        self.n += n
        self._updated_t = time.monotonic()
        if self.n < self.total and self._updated_t - self._since_t >= self.interval:
            self._write()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self._postfix = dict(values)

    def _write(self) -> None:
        now = self._updated_t
        rate = (self.n - self._since_n) / max(now - self._since_t, 1e-9)
        shown = " ".join(f"{k}={v}" for k, v in self._postfix.items())
        percent = 100 * self.n // max(self.total, 1)
        self.file.write(f"step {self.n}/{self.total} ({percent}%), {rate:.2f} step/s" + (f", {shown}" if shown else "")
                        + "\n")
        self.file.flush()
        self._since_n, self._since_t, self._last_written = self.n, now, self.n

    def close(self) -> None:
        if self.n != self._last_written and self.n > self._since_n:
            self._write()
