"""Logs batch systems can read (issue 26 item 9): off a terminal the progress is one plain line per interval,
never carriage-return frames."""
from __future__ import annotations

import io

from ijepa_hub.engine.metrics import MetricsWriter, StepLogger, progress_bar
from ijepa_hub.engine.progress import PlainProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_non_terminal_gets_plain_lines_without_carriage_returns():
    log = io.StringIO()
    bar = progress_bar(6, 2, enabled=True, file=log, interval=0.0)
    assert isinstance(bar, PlainProgress)
    logger = StepLogger(None, bar, log_every=1, end_step=6, steps_per_epoch=2, images_per_step=8)
    for step in range(3, 7):
        bar.set_postfix(loss="0.5000", lr="1.00e-03", refresh=False)
        logger.step(step, 0.5, skipped=0, broken_total=0, fields={}, postfix={})
    logger.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 4
    assert lines[0].startswith("step 3/6 (50%), ") and lines[-1].startswith("step 6/6 (100%), ")
    assert lines[-1].endswith("step/s, loss=0.5000 lr=1.00e-03")


def test_lines_are_spaced_by_the_interval_and_the_last_step_is_always_written():
    log = io.StringIO()
    bar = progress_bar(1000, 0, enabled=True, file=log, interval=3600.0)
    for _ in range(999):
        bar.update(1)
    assert log.getvalue() == ""
    bar.update(1)
    bar.close()
    assert log.getvalue().splitlines()[0].startswith("step 1000/1000 (100%)") and log.getvalue().count("\n") == 1



def test_the_last_line_shows_the_final_probe_logged_after_the_last_step(tmp_path):
    """The run's final probe comes after its last step; the last line must hold it, and be the only 100% line."""
    log = io.StringIO()
    bar = progress_bar(4, 0, enabled=True, file=log, interval=0.0)
    logger = StepLogger(MetricsWriter(tmp_path), bar, log_every=1, end_step=4, steps_per_epoch=4, images_per_step=8,
                        rate=False)
    for step in range(1, 5):
        logger.step(step, 0.5, skipped=0, broken_total=0, fields={}, postfix={})
    logger.event("probe", {"step": 4}, postfix={"probe_step": "4", "knn_shape": "35.2"})
    logger.close()
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["step 1/4 (25%)", "step 2/4 (50%)", "step 3/4 (75%)",
                                                      "step 4/4 (100%)"]
    assert lines[-1].endswith("step/s, loss=0.5000 probe_step=4 knn_shape=35.2")

def test_a_terminal_keeps_the_tqdm_bar_and_a_disabled_bar_writes_nothing():
    terminal, log = _Terminal(), io.StringIO()
    assert not isinstance(progress_bar(5, 0, enabled=True, file=terminal), PlainProgress)
    bar = progress_bar(5, 0, enabled=False, file=log)
    bar.update(5)
    bar.close()
    assert log.getvalue() == ""
