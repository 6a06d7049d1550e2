"""Training faults: broken images past a threshold, NaN / inf, a full disk, a kill or SIGTERM during a
checkpoint write, and a resume with another recipe. Each ends in an error that says what to do, or in a
checkpoint to resume from; none loses the last good checkpoint."""
from __future__ import annotations

import copy
import errno
import inspect
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_TRAIN_ARGS
from PIL import Image
from test_robustness_images import BROKEN, NOISE, UNUSUAL

import ijepa_hub
import ijepa_hub.train.loop as loop
from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME, FORMAT
from ijepa_hub.errors import (
    CheckpointError,
    CheckpointWriteError,
    TooManyBrokenImagesError,
    TrainingDivergedError,
)
from ijepa_hub.train import load_checkpoint, train
from ijepa_hub.train.cli import main as train_cli
from ijepa_hub.train.cli import parse_args

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _run(recipe, out, steps, **kwargs):
    recipe = copy.deepcopy(recipe)
    recipe.train.max_steps = steps
    return train(recipe, out_dir=out, progress=False, **kwargs)


def _partials(out: Path) -> list[Path]:
    return sorted(out.glob(f".{CHECKPOINT_NAME}.*.tmp"))


def _metric_steps(out: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- broken images ----------------------------------------------------------------------------------------

def _hostile_folder(root: Path) -> list[Path]:
    """16 images: the 4 broken kinds at sorted positions 1, 5, 9, 13 (each followed by a readable one),
    the 6 unusual ones and plain noise. Returns the broken files."""
    root.mkdir()
    unusual, broken = iter(sorted(UNUSUAL)), []
    for i in range(16):
        if i % 4 == 1:
            name, write, _ = BROKEN[sorted(BROKEN)[i // 4]]
            path = root / f"{i:02d}_{name}"
            write(path)
            broken.append(path)
        elif (kind := next(unusual, None)) is not None:
            name, write, _ = UNUSUAL[kind]
            write(root / f"{i:02d}_{name}")
        else:
            Image.fromarray(np.roll(NOISE, i, axis=0)).save(root / f"{i:02d}_noise.png")
    return broken


@pytest.fixture
def hostile_recipe(tiny_recipe, tmp_path):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.data.path = str(tmp_path / "images")
    recipe.optim.epochs = 2  # 16 images / batch 8: 2 steps per epoch, 4 in all
    return recipe, _hostile_folder(tmp_path / "images")


def test_broken_images_are_skipped_and_counted_below_the_threshold(hostile_recipe, tmp_path, caplog):
    recipe, broken = hostile_recipe
    recipe.data.max_broken_fraction = 0.5
    with caplog.at_level(logging.WARNING):
        result = _run(recipe, tmp_path / "run", 2)  # one epoch: every file is drawn once
    assert result.step == 2 and result.export_dir is not None and all(np.isfinite(result.losses))
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["broken_images"] for r in records) == 4 and records[-1]["broken_images_total"] == 4
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["data"]["broken_images"] == 4
    skipped = [r.getMessage() for r in caplog.records if r.name == "ijepa_hub.data.pipeline"]
    assert sorted(m.split(": ")[1] for m in skipped) == sorted(str(p) for p in broken)


def test_too_many_broken_images_stop_the_run_after_a_checkpoint_and_repair_resumes(hostile_recipe, tmp_path):
    recipe, broken = hostile_recipe
    recipe.data.max_broken_fraction = 0.001  # at most 1 of (at least) 1000 images
    with pytest.raises(TooManyBrokenImagesError, match=r"data\.max_broken_fraction = 0\.001.*Fix:") as err:
        _run(recipe, tmp_path / "run", 4)
    step = int(str(err.value).split(":")[0].removeprefix("step "))
    assert any(str(p) in str(err.value) for p in broken)
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["step"] == step < 4  # the work is kept
    assert not (tmp_path / "run" / "model").exists()
    for path in broken:  # repair the files in place, then continue
        Image.fromarray(NOISE).save(path, format="PNG")
    result = _run(recipe, tmp_path / "run", 4, resume="auto")
    assert (result.start_step, result.step) == (step, 4) and result.export_dir is not None


# --- NaN / inf --------------------------------------------------------------------------------------------

def _poison_step(monkeypatch, at: int, *, loss: float | None = None, weights: bool = False) -> None:
    """Make call ``at`` of train_step return ``loss`` and/or leave NaN in the predictor's weights."""
    real, calls = loop.train_step, []

    def step(module, *args, **kwargs):
        calls.append(1)
        value = real(module, *args, **kwargs)
        if len(calls) == at:
            if weights:
                with torch.no_grad():
                    next(module.predictor.parameters()).fill_(float("nan"))
            if loss is not None:
                value = torch.full_like(value, loss)
        return value

    monkeypatch.setattr(loop, "train_step", step)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_without_touching_the_last_good_checkpoint(bad, tiny_recipe, tmp_path, monkeypatch):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.train.checkpoint_every = 2
    _poison_step(monkeypatch, 5, loss=bad, weights=True)
    with pytest.raises(TrainingDivergedError, match=f"step 5: the loss is {bad}") as err:
        _run(recipe, tmp_path, 8)
    path = tmp_path / CHECKPOINT_NAME
    assert f"{path} (step 4), is intact" in str(err.value) and "Fix:" in str(err.value)
    state = load_checkpoint(path)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert _metric_steps(tmp_path) == [1, 2, 3, 4] and not (tmp_path / "model").exists()
    assert _partials(tmp_path) == []


def test_non_finite_weights_are_never_checkpointed(tiny_recipe, tmp_path, monkeypatch):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.train.checkpoint_every = 2
    _poison_step(monkeypatch, 4, weights=True)  # the loss of step 4 is still finite
    with pytest.raises(TrainingDivergedError, match=r"step 4: the weights hold NaN.*\(step 2\), is intact"):
        _run(recipe, tmp_path, 8)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 2


# --- disk full, kill, SIGTERM -----------------------------------------------------------------------------

def _half_then(fail_on_call: int, action):
    """A torch.save that, on call ``fail_on_call``, writes half of the bytes and then runs ``action()``."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) != fail_on_call:
            return real(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        action()
        f.write(data[len(data) // 2:])

    return save


def test_disk_full_during_a_checkpoint_keeps_the_previous_one_and_resume_is_exact(tiny_recipe, tmp_path, monkeypatch):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.train.checkpoint_every = 2
    out = tmp_path / "run"
    before = {}

    def disk_full():
        before["bytes"] = (out / CHECKPOINT_NAME).read_bytes()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", _half_then(2, disk_full))  # the step-4 checkpoint
    with pytest.raises(CheckpointWriteError, match="No space left on device.*intact.*--resume auto") as err:
        _run(recipe, out, 6)
    assert str(out / CHECKPOINT_NAME) in str(err.value) and err.value.__cause__.errno == errno.ENOSPC
    assert (out / CHECKPOINT_NAME).read_bytes() == before["bytes"] and _partials(out) == []
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 2
    monkeypatch.undo()  # space freed
    resumed = _run(recipe, out, 6, resume="auto")
    straight = _run(recipe, tmp_path / "straight", 6)
    assert (resumed.start_step, resumed.step) == (2, 6)
    assert resumed.losses == straight.losses[2:]
    assert _same_weights(out / CHECKPOINT_NAME, tmp_path / "straight" / CHECKPOINT_NAME)


_KILLED_CHILD = """
import io, sys, time, torch
from pathlib import Path
{half_then}
marker = Path(sys.argv[1])
torch.save = _half_then(2, lambda: (marker.touch(), time.sleep(600)))  # hang inside the 2nd checkpoint write
from ijepa_hub.train.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_kill_during_a_checkpoint_write_resumes_from_the_previous_one(tiny_recipe, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "writing"
    args = [*TINY_TRAIN_ARGS, "--train.checkpoint_every", "3", "--train.max_steps", "9", "--out", str(out),
            "--no-progress"]
    path = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    script = _KILLED_CHILD.format(half_then=inspect.getsource(_half_then))
    child = subprocess.Popen([sys.executable, "-c", script, str(marker), *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "the child never reached its second checkpoint write"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 3  # the partial step-6 file never replaced it
    assert len(_partials(out)) == 1
    recipe = parse_args(args)[0]
    resumed = train(recipe, out_dir=out, resume="auto", progress=False)
    assert (resumed.start_step, resumed.step) == (3, 9) and _partials(out) == []
    straight = train(recipe, out_dir=tmp_path / "straight", progress=False)
    assert resumed.losses == straight.losses[3:]
    assert _same_weights(out / CHECKPOINT_NAME, tmp_path / "straight" / CHECKPOINT_NAME)


@pytest.mark.parametrize("when", ["after_a_step", "during_a_checkpoint_write"])
def test_sigterm_checkpoints_and_exits_zero(when, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    terminate = lambda: os.kill(os.getpid(), signal.SIGTERM)  # noqa: E731
    if when == "after_a_step":
        real, calls = loop.train_step, []

        def step(*args, **kwargs):
            calls.append(1)
            value = real(*args, **kwargs)
            if len(calls) == 3:
                terminate()
            return value

        monkeypatch.setattr(loop, "train_step", step)
        expected = 3
    else:
        monkeypatch.setattr(torch, "save", _half_then(1, terminate))  # the step-2 checkpoint
        expected = 2
    rc = train_cli([*TINY_TRAIN_ARGS, "--train.checkpoint_every", "2", "--out", str(out), "--no-progress"])
    assert rc == 0 and "preempted: checkpoint written" in capsys.readouterr().out
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == expected  # complete and readable
    assert _metric_steps(out) == list(range(1, expected + 1)) and not (out / "model").exists()


# --- resuming something else ------------------------------------------------------------------------------

def test_resume_with_a_different_recipe_is_refused_listing_every_difference(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*TINY_TRAIN_ARGS, "--train.max_steps", "2", "--out", str(out), "--no-progress"]
    assert train_cli(args) == 0
    before = (out / CHECKPOINT_NAME).read_bytes()
    capsys.readouterr()
    rc = train_cli([*args, "--resume", "auto", "--optim.lr", "0.01", "--mask.mode", "legacy",
                    "--train.log_every", "5"])
    assert rc == 1  # a run-time error (2 is for bad options, as in every ijepa_hub CLI)
    message = capsys.readouterr().err  # one line, as every CLI error
    assert message.startswith("ijepa-train: error: ") and message.count("\n") == 1
    assert f"optim.lr: checkpoint {ijepa_hub.load_recipe('default').optim.lr}, now 0.01" in message
    assert "mask.mode: checkpoint 'corrected', now 'legacy'" in message
    assert "log_every" not in message and "Fix:" in message
    assert (out / CHECKPOINT_NAME).read_bytes() == before


def test_resume_after_the_image_folder_changed_size_is_refused(hostile_recipe, tmp_path):
    recipe, _ = hostile_recipe
    recipe.data.max_broken_fraction = 1.0
    _run(recipe, tmp_path / "run", 1)
    for i in range(8):
        Image.fromarray(NOISE).save(Path(recipe.data.path) / f"new{i}.png")
    with pytest.raises(CheckpointError, match="the dataset size changed"):
        _run(recipe, tmp_path / "run", 4, resume="auto")


class _Payload:
    """Unpickling this would create a file; a refused pickle never does."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def test_checkpoint_carrying_pickled_code_is_refused_and_never_run(tiny_recipe, tmp_path):
    sentinel = tmp_path / "code-ran"
    torch.save({"format": FORMAT, "step": 1, "recipe": {}, "model": {}, "optimizer": {}, "schedules": {}, "rng": [],
                "data": {}, "extra": _Payload(sentinel)}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="refused to unpickle.*never executes pickled code"):
        _run(tiny_recipe, tmp_path, 2, resume="auto")
    assert not sentinel.exists()
