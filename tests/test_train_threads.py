"""The CPU thread policy: leave the cores other programs keep busy, one core to each DataLoader worker,
share the rest between processes, at least one thread; train.threads, then OMP_NUM_THREADS, win over the
automatic choice."""
from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
import time

import pytest
import torch

from ijepa_hub.engine.threads import busy_cores, choose_threads
from ijepa_hub.train import train


@pytest.mark.parametrize("cores, workers, processes, expected", [
    (2, 1, 1, 1),  # the default run on 2 cores: one for the worker, one for the model
    (2, 0, 1, 2),  # no workers: every core
    (16, 8, 1, 8),
    (16, 2, 2, 6),  # torchrun, 2 processes: (16 - 2 x 2) / 2
    (64, 8, 8, 1),  # more workers than cores: still one thread
    (3, 0, 2, 1),  # cores do not divide: round down, never 0
])
def test_automatic_threads_leave_cores_to_workers_and_share_the_rest(cores, workers, processes, expected):
    assert choose_threads(cores=cores, workers=workers, processes=processes) == (expected, "automatic")


@pytest.mark.parametrize("cores, workers, busy, expected", [
    (2, 0, 0.1, 2),  # the default run (no workers) on 2 idle cores: both
    (2, 0, 1.3, 1),  # another job holds a core: leave it
    (2, 0, 2.0, 1),  # every core busy: still one thread
    (16, 2, 5.6, 8),  # 16 - 6 busy - 2 workers
])
def test_automatic_threads_leave_the_cores_other_programs_use(cores, workers, busy, expected):
    assert choose_threads(cores=cores, workers=workers, busy=busy) == (expected, "automatic")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat")
def test_busy_cores_sees_a_spinning_process():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = busy_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and 0.6 <= busy <= len(os.sched_getaffinity(0)) + 1e-6


def test_explicit_choices_win():
    assert choose_threads(cores=16, workers=8, requested=3, omp_num_threads="5") == (3, "train.threads")
    assert choose_threads(cores=16, workers=8, omp_num_threads="5") == (5, "OMP_NUM_THREADS")
    assert choose_threads(cores=16, workers=8, omp_num_threads="") == (8, "automatic")
    assert choose_threads(cores=16, workers=8, omp_num_threads="auto") == (8, "automatic")
    with pytest.raises(ValueError, match="train.threads must be at least 1"):
        choose_threads(cores=2, workers=0, requested=0)


def test_train_applies_logs_and_restores_the_thread_count(tiny_recipe, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("ijepa_hub.engine.threads.available_cores", lambda: 4)
    monkeypatch.setattr("ijepa_hub.engine.threads.busy_cores", lambda: 0.2)
    recipe = copy.deepcopy(tiny_recipe)
    recipe.train.max_steps, recipe.train.num_workers = 1, 1
    seen = []
    monkeypatch.setattr("ijepa_hub.train.loop._train", lambda *args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    with caplog.at_level(logging.INFO, logger="ijepa_hub.engine"):
        train(recipe, out_dir=tmp_path, progress=False)
    assert seen == [3] and torch.get_num_threads() == before
    assert "intra-op threads: 3 per process (automatic; 4 cores, 0.2 busy with other programs, 1 DataLoader worker(s) per process, 1 process(es))" in caplog.text
    monkeypatch.setattr("ijepa_hub.engine.threads.busy_cores", lambda: 1.7)  # another job holds 2 of the 4 cores
    train(recipe, out_dir=tmp_path, progress=False)
    recipe.train.threads = 2
    train(recipe, out_dir=tmp_path, progress=False)
    assert seen == [3, 1, 2]
