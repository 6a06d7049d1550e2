"""Resume is bit-exact whatever the load (issue 26 item 1): a run records its intra-op thread count (checkpoint and
recipe.yaml) and a resume reuses it, even when the automatic policy, or an explicit choice, would pick another."""
from __future__ import annotations

import copy
import logging
import os
import sys

import pytest
import torch
import yaml
from conftest import REPO_ROOT, TINY_TRAIN_ARGS, sigkill_after_step
from test_finetune import TINY_AUGMENTED

import ijepa_hub.engine.threads as threads
from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME
from ijepa_hub.finetune import finetune
from ijepa_hub.finetune.cli import parse_args as ft_parse_args
from ijepa_hub.finetune.loop import FinetuneResume
from ijepa_hub.train import load_checkpoint, train
from ijepa_hub.train.cli import parse_args

# The child: the automatic policy sees two idle cores (2 threads), whatever this machine is doing.
_CHILD = """
import sys
import ijepa_hub.engine.threads as threads
threads.available_cores, threads.busy_cores = (lambda: 2), (lambda interval=0.2: 0.0)
from ijepa_hub.train.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def automatic(monkeypatch):
    """No OMP_NUM_THREADS: the automatic policy decides, on 2 cores of which ``busy(n)`` are taken."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    yield lambda n: monkeypatch.setattr(threads, "busy_cores", lambda interval=0.2: float(n))
    torch.set_num_threads(before)


def test_sigkill_then_resume_on_a_busier_machine_keeps_the_recorded_threads(tmp_path, automatic, caplog):
    args = [*TINY_TRAIN_ARGS, "--train.checkpoint_every", "2", "--train.max_steps", "5"]
    recipe = parse_args(args)[0]
    automatic(0)  # quiet: 2 threads
    straight = train(copy.deepcopy(recipe), out_dir=tmp_path / "straight", progress=False, export=False)

    killed = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    sigkill_after_step([sys.executable, "-c", _CHILD, *args, "--out", str(killed), "--no-progress"], killed, 3,
                       env)  # past the checkpoint of step 2
    saved = load_checkpoint(killed / CHECKPOINT_NAME)
    assert saved["step"] in (2, 4) and saved["threads"] == 2
    assert yaml.safe_load((killed / "recipe.yaml").read_text())["train"]["threads"] == 2

    automatic(1)  # a busy-loop now holds one core: the policy alone would pick 1 thread
    with caplog.at_level(logging.INFO, logger="ijepa_hub.engine"):
        resumed = train(copy.deepcopy(recipe), out_dir=killed, resume="auto", progress=False, export=False)
    assert any("intra-op threads: 2 per process, as recorded in" in r.getMessage() for r in caplog.records)
    assert resumed.losses == straight.losses[saved["step"]:]
    a, b = load_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME), load_checkpoint(killed / CHECKPOINT_NAME)
    assert a["step"] == b["step"] == 5 and b["threads"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_an_explicit_other_count_is_warned_about_and_not_applied_when_fine_tuning(tmp_path, automatic, caplog):
    automatic(0)
    recipe = ft_parse_args([*TINY_AUGMENTED, "--train.max_steps", "4"])[0]
    straight = finetune(copy.deepcopy(recipe), out_dir=tmp_path / "straight", progress=False, export=False)
    short = copy.deepcopy(recipe)
    short.train.max_steps = 2
    finetune(short, out_dir=tmp_path / "run", progress=False, export=False)
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["threads"] == 2

    explicit = copy.deepcopy(recipe)
    explicit.train.threads = 1
    with caplog.at_level(logging.INFO, logger="ijepa_hub.engine"):
        resumed = finetune(explicit, out_dir=tmp_path / "run", resume="auto", progress=False, export=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("train.threads 1 is ignored" in w and "used 2 intra-op thread(s)" in w for w in warnings), warnings
    assert resumed.losses == straight.losses[2:]
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["threads"] == 2
    assert yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())["train"]["threads"] == 2
    saved = ft_parse_args(["--recipe", str(tmp_path / "run" / "recipe.yaml")])[0]  # loads, and resumes
    assert saved.train.threads == 2
    FinetuneResume.check_state(load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME), saved, tmp_path / "run")


def test_omp_num_threads_that_differs_is_named_and_an_old_checkpoint_keeps_todays_choice(monkeypatch, caplog):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="ijepa_hub.engine"):
            threads.reuse_recorded_threads(2, None, cpu=True, source="run/checkpoint.pt")
            assert torch.get_num_threads() == 2
            torch.set_num_threads(3)
            threads.reuse_recorded_threads(None, None, cpu=True, source="old/checkpoint.pt")  # written before
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert any("OMP_NUM_THREADS=3 is ignored" in r.getMessage() and "run/checkpoint.pt" in r.getMessage()
               for r in caplog.records)
