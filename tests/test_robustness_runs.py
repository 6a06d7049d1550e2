"""Run folders that cannot be clobbered, mask settings that cannot hang, stop signals that checkpoint (issue 17)."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TINY_TRAIN_ARGS

from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME
from ijepa_hub.errors import MaskError, RunFolderError, RunLockedError
from ijepa_hub.masks import MaskCollator
from ijepa_hub.recipe import MaskSection
from ijepa_hub.train import load_checkpoint, train
from ijepa_hub.train.cli import main as train_cli

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _run(recipe, out, steps, **kwargs):
    recipe = copy.deepcopy(recipe)
    recipe.train.max_steps = steps
    return train(recipe, out_dir=out, progress=False, **kwargs)


def _metric_steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(x)["step"] for x in lines if '"loss"' in x]


# --- 1. --resume PATH continues that run, in its folder ----------------------------------------------------

def test_resume_path_continues_in_that_runs_folder_and_a_different_out_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "exp2"
    args = [*TINY_TRAIN_ARGS, "--no-progress", "--train.checkpoint_every", "1"]
    assert train_cli([*args, "--train.max_steps", "2", "--out", str(run)]) == 0
    assert train_cli([*args, "--train.max_steps", "3", "--resume", str(run)]) == 0
    assert not (tmp_path / "runs").exists()  # nothing went to the default folder
    assert load_checkpoint(run / CHECKPOINT_NAME)["step"] == 3 and _metric_steps(run) == [1, 2, 3]
    capsys.readouterr()
    other = tmp_path / "other"
    assert train_cli([*args, "--train.max_steps", "4", "--resume", str(run / CHECKPOINT_NAME), "--out", str(other)]) == 1
    assert f"continues the run in {run}" in capsys.readouterr().err and not other.exists()


# --- 2. one run per folder ---------------------------------------------------------------------------------

_HOLDER = """
import sys, time
from ijepa_hub.engine.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_locked_run_folder_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        partial = out / f".{CHECKPOINT_NAME}.abc.tmp"  # the holder's checkpoint being written
        partial.write_bytes(b"in progress")
        with pytest.raises(RunLockedError, match=f"in use by process {holder.pid}") as caught:
            _run(tiny_recipe, out, 1, resume="auto")
        assert caught.value.pid == holder.pid
        assert partial.read_bytes() == b"in progress" and not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
    holder.wait(timeout=30)
    partial.unlink()
    assert _run(tiny_recipe, out, 1).step == 1  # the crashed holder's lock went with it


def test_a_second_run_from_the_same_process_is_refused(tiny_recipe, tmp_path, monkeypatch):
    import ijepa_hub.train.loop as loop

    out, real, seen = tmp_path / "run", loop.train_step, []

    def step(*args, **kwargs):
        if not seen:
            with pytest.raises(RunLockedError, match=f"in use by process {os.getpid()}"):
                _run(tiny_recipe, out, 1, resume="auto")
            seen.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)
    assert _run(tiny_recipe, out, 1).step == 1 and seen


# --- 3. a new run never writes over a previous run's output -------------------------------------------------

def test_a_new_run_refuses_a_folder_holding_a_previous_runs_output(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    _run(tiny_recipe, out, 2)
    (out / CHECKPOINT_NAME).unlink()
    metrics, weights = (out / "metrics.jsonl").read_bytes(), (out / "model" / "model.safetensors").read_bytes()
    for resume in (None, "auto"):
        with pytest.raises(RunFolderError, match="previous run's output .*model.*another --out"):
            _run(tiny_recipe, out, 1, resume=resume)
    assert (out / "metrics.jsonl").read_bytes() == metrics
    assert (out / "model" / "model.safetensors").read_bytes() == weights


# --- 6 and 9. mask settings are checked before the first step; no sampling loop is unbounded ------------------

def test_mask_settings_that_leave_no_context_are_refused_before_the_first_step(tiny_recipe, tmp_path, monkeypatch):
    import ijepa_hub.train.loop as loop

    recipe = copy.deepcopy(tiny_recipe)
    recipe.mask.context_scale, recipe.mask.min_keep = (0.05, 0.05), 10
    monkeypatch.setattr(loop, "train_step", lambda *a, **k: pytest.fail("a step ran"))
    with pytest.raises(MaskError, match=r"context blocks hold at most 1 patches.*context_scale=\[0.05, 0.05\].*min_keep=10.*4x4 patch grid"):
        _run(recipe, tmp_path / "run", 2)
    assert not (tmp_path / "run").exists()  # refused before writing: no folder, no empty .lock left behind
    (tmp_path / "mine").mkdir()
    with pytest.raises(MaskError):
        _run(recipe, tmp_path / "mine", 2)
    assert list((tmp_path / "mine").iterdir()) == []  # a folder the user made stays, empty


def _alarm(seconds: int):
    def fire(*_):
        raise TimeoutError(f"still sampling after {seconds} s")

    signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)


def test_legacy_masks_that_can_never_be_drawn_raise_instead_of_looping(monkeypatch):
    settings = MaskSection(mode="legacy", context_scale=(0.1, 0.1))  # 8x8 grid: 2x2 context blocks, min_keep 10
    collator = MaskCollator(settings, img_size=64, patch_size=8)
    with pytest.raises(MaskError, match=r"context blocks can be 4 patches.*context_scale=\[0.1, 0.1\]"):
        collator.validate()
    previous = signal.getsignal(signal.SIGALRM)
    try:
        _alarm(20)
        with pytest.raises(MaskError, match=r"a 2x2 block can never keep more than min_keep=10.*mode=legacy"):
            collator.sample(4, step=0)  # unchecked: the sampler itself stops
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- 10b. stop signals: whole process group, Ctrl-C, a second signal --------------------------------------------

def test_sigterm_to_the_process_group_with_two_workers_checkpoints_and_exits_zero(tmp_path):
    out = tmp_path / "run"
    args = [*TINY_TRAIN_ARGS, "--train.num_workers", "2", "--optim.epochs", "200", "--train.checkpoint_every", "100000",
            "--out", str(out), "--no-progress"]
    child = subprocess.Popen([sys.executable, "-m", "ijepa_hub.train", *args], env=_env(), start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_metric_steps(out)) < 2:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run never logged two steps"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGTERM)  # what Slurm, `timeout` and a container stop do
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    assert "preempted: checkpoint written" in stdout and "killed by signal" not in stderr
    step = load_checkpoint(out / CHECKPOINT_NAME)["step"]
    assert step >= 2 and _metric_steps(out) == list(range(1, step + 1))


def test_sigterm_to_a_torchrun_process_group_checkpoints_every_rank(tmp_path):
    out = tmp_path / "run"
    args = [*TINY_TRAIN_ARGS, "--train.num_workers", "2", "--optim.epochs", "200", "--train.checkpoint_every", "100000",
            "--data.batch_size_per_device", "4", "--train.device", "cpu", "--out", str(out), "--no-progress"]
    child = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ijepa_hub.train",
         *args], env=_env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while len(_metric_steps(out)) < 2:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run never logged two steps"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGTERM)  # the workers get it, then torchrun's agent forwards it: one event
    _, stderr = child.communicate(timeout=120)
    # torchrun itself exits 1 on a signal (its SignalException); every rank checkpointed and exited 0
    assert stderr.count("stop signal received; checkpoint written") == 2, stderr
    assert "ChildFailedError" not in stderr and "killed by signal" not in stderr
    step = load_checkpoint(out / CHECKPOINT_NAME)["step"]
    assert step >= 2 and _metric_steps(out) == list(range(1, step + 1))


def test_ctrl_c_checkpoints_like_sigterm(tmp_path, monkeypatch, capsys):
    import ijepa_hub.train.loop as loop

    out, real, calls = tmp_path / "run", loop.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        value = real(*args, **kwargs)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return value

    monkeypatch.setattr(loop, "train_step", step)
    rc = train_cli([*TINY_TRAIN_ARGS, "--train.checkpoint_every", "100", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0 and "preempted: checkpoint written" in captured.out and "--resume auto" in captured.out
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 3


_TWICE = """
import os, signal, sys, time
from ijepa_hub.engine.faults import StopSignal
sig = getattr(signal, sys.argv[1])
with StopSignal("ijepa-finetune") as stop:
    os.kill(os.getpid(), sig)
    assert stop.received == sig
    os.kill(os.getpid(), sig)  # the same signal again at once (torchrun forwarding it): still one event
    print("first: flagged", flush=True)
    time.sleep(StopSignal.REPEAT_WINDOW_S + 0.2)
    os.kill(os.getpid(), sig)  # a second request: stop now
    time.sleep(5)
    print("second: ignored", flush=True)
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_second_stop_signal_stops_at_once(name):
    done = subprocess.run([sys.executable, "-c", _TWICE, name], env=_env(), capture_output=True, text=True, timeout=60)
    assert done.stdout == "first: flagged\n" and done.returncode == -getattr(signal, name), done.stderr
    assert done.stderr.splitlines() == [  # named by the command that got them (ijepa-finetune's said ijepa-train)
        f"ijepa-finetune: {name} received: finishing the step and writing a checkpoint (send it again to stop at once)",
        f"ijepa-finetune: second stop signal ({name}): stopping at once"]


# --- 16. one clear line, --debug for the traceback; a torn metrics line does not block a resume ------------------

def test_a_bad_setting_is_one_line_and_debug_adds_the_traceback(tmp_path, capsys):
    args = [*TINY_TRAIN_ARGS, "--train.checkpoint_every", "0", "--out", str(tmp_path / "run"), "--no-progress"]
    assert train_cli(args) == 2
    err = capsys.readouterr().err
    assert err == "ijepa-train: error: train.checkpoint_every=0 is out of range: it must be 1 <= an integer <= 1e+12. Fix: set train.checkpoint_every within it.\n"
    assert train_cli([*args, "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.endswith(
        "ijepa-train: error: train.checkpoint_every=0 is out of range: it must be 1 <= an integer <= 1e+12. Fix: set train.checkpoint_every within it.\n")


def test_a_torn_last_line_in_metrics_does_not_block_resume(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    _run(tiny_recipe, out, 2)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # killed while writing step 3's record
    assert _run(tiny_recipe, out, 3, resume="auto").step == 3
    assert _metric_steps(out) == [1, 2, 3]


# --- 11c. arguments are checked before anything is built ----------------------------------------------------------

def test_a_recipe_without_its_data_is_refused_before_the_model_is_built(tmp_path, monkeypatch, capsys):
    import ijepa_hub.train.loop as loop

    monkeypatch.setattr(loop, "IJepa", lambda *a, **k: pytest.fail("a ViT-H was built before the data was checked"))
    rc = train_cli(["--recipe", "in1k_vith14", "--train.device", "cpu", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc in (1, 2) and err.startswith("ijepa-train: error: ") and "data" in err and err.count("\n") == 1


def _cli_case(case: str, tmp_path: Path, monkeypatch) -> tuple[object, list[str]]:
    if case == "out_is_a_file":
        (tmp_path / "afile").touch()
        return train_cli, [*TINY_TRAIN_ARGS, "--out", str(tmp_path / "afile")]
    if case == "recipe_yaml_syntax":
        (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
        return train_cli, ["--recipe", str(tmp_path / "bad.yaml")]
    if case == "tensorboard_missing":
        import importlib.util

        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
        return train_cli, [*TINY_TRAIN_ARGS, "--train.tensorboard", "true", "--out", str(tmp_path / "run")]
    from ijepa_hub.eval.cli import main as eval_cli

    return eval_cli, ["masks", "--num", "0", str(tmp_path / "masks.png")]


@pytest.mark.parametrize("case", ["out_is_a_file", "recipe_yaml_syntax", "tensorboard_missing", "masks_num_0"])
def test_cli_errors_are_one_line_without_a_traceback(case, tmp_path, monkeypatch, capsys):
    main, argv = _cli_case(case, tmp_path, monkeypatch)
    assert main([*argv, "--no-progress"] if main is train_cli else argv) in (1, 2)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and ": error: " in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
