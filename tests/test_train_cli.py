"""``ijepa-train`` as a user runs it: a process that can be killed, preempted and resumed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonargparse
import pytest
import torch

from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME
from ijepa_hub.train import load_checkpoint
from ijepa_hub.train.cli import main, parse_args

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _train_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "ijepa_hub.train", "--no-progress", *args]


def _logged_steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for_step(proc: subprocess.Popen, out: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while max(_logged_steps(out), default=0) < step:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before step {step}: {proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"step {step} not reached in {timeout} s")
        time.sleep(0.01)


def test_overrides_are_validated_and_errors_name_the_key(capsys):
    recipe, args = parse_args(["--recipe", "in1k_vith14", "--optim.lr", "2e-3", "--data", "/data/in1k"])
    assert (recipe.name, recipe.optim.lr, recipe.optim.batch_size, recipe.data.path) == ("in1k_vith14", 2e-3, 2048, "/data/in1k")
    assert recipe.model.name == "vit_huge_patch14" and args.resume is None
    with pytest.raises(jsonargparse.ArgumentError, match="optim.lr"):
        parse_args(["--optim.lr", "fast"])
    with pytest.raises(jsonargparse.ArgumentError, match="mask.mode"):
        parse_args(["--mask.mode", "random"])
    assert main(["--optim.learning_rate", "1"]) == 2
    assert "optim.learning_rate" in capsys.readouterr().err


def test_cli_runs_end_to_end_and_the_loss_falls(tiny_train_args, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        _train_cmd([*tiny_train_args, "--train.max_steps", "25", "--out", str(out)]),
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert len(losses) == 25 and sum(losses[-3:]) < 0.6 * sum(losses[:3]), losses
    assert "ijepa-train: steps 0 -> 25" in done.stdout
    assert f"ijepa-eval knn {out / 'model'}" in done.stdout and f"ijepa-hub push {out / 'model'}" in done.stdout
    assert (out / "model" / "config.json").is_file()


def test_sigkill_then_resume_auto_is_bit_equal_to_an_uninterrupted_run(tiny_train_args, tmp_path):
    args = [*tiny_train_args, "--train.max_steps", "24", "--train.checkpoint_every", "6"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = subprocess.Popen(_train_cmd([*args, "--out", str(straight)]), env=_env(), stdout=subprocess.PIPE, text=True)
    victim = subprocess.Popen(_train_cmd([*args, "--out", str(killed)]), env=_env(), stdout=subprocess.PIPE, text=True)
    _wait_for_step(victim, killed, 9)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    interrupted_at = load_checkpoint(killed / CHECKPOINT_NAME)["step"]
    assert 6 <= interrupted_at < 24
    resumed = subprocess.run(
        _train_cmd([*args, "--out", str(killed), "--resume", "auto"]), env=_env(), capture_output=True, text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"steps {interrupted_at} -> 24" in resumed.stdout
    assert reference.wait(timeout=300) == 0
    a, b = load_checkpoint(straight / CHECKPOINT_NAME), load_checkpoint(killed / CHECKPOINT_NAME)
    assert a["step"] == b["step"] == 24
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _logged_steps(killed) == list(range(1, 25))


def test_sigterm_checkpoints_and_exits_zero(tiny_train_args, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd([*tiny_train_args, "--train.checkpoint_every", "1000", "--out", str(out)]),
        env=_env(), stdout=subprocess.PIPE, text=True,
    )
    _wait_for_step(proc, out, 3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    assert "preempted" in proc.stdout.read()
    step = load_checkpoint(out / CHECKPOINT_NAME)["step"]
    assert 3 <= step < 64 and max(_logged_steps(out)) == step


def _help(capsys, monkeypatch, *argv: str, flag: str = "--help-all", cli=main) -> str:
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping: one option per line
    with pytest.raises(SystemExit) as exit_:
        cli([*argv, flag])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("tool", ["ijepa-train", "ijepa-finetune"])
def test_help_starts_with_what_matters_and_points_to_help_all(capsys, monkeypatch, tool):
    from ijepa_hub.finetune.cli import main as finetune_main

    cli = main if tool == "ijepa-train" else finetune_main
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        cli(["--help"])
    short = capsys.readouterr().out
    lines = short.splitlines()
    assert lines[0] == f"usage: {tool} [options] [--SECTION.KEY VALUE ...]" and lines[2].startswith(("Train", "Fine-tune"))
    assert len(lines) <= 45 and f"{tool} --help-all" in short and "--optim.lr " not in short
    for option in ("--recipe", "--data PATH", "--out DIR", "--resume auto|RUN", "--push-to-hub OWNER/NAME"):
        assert option in short, option
    if tool == "ijepa-train":
        assert "--init SOURCE" in short and "--teacher SOURCE" in short
    full = _help(capsys, monkeypatch, cli=cli)
    assert "--optim.lr " in full and "--train.max_steps " in full and len(full) > 3 * len(" ".join(short.split()))


def test_help_shows_the_selected_recipes_values_and_a_description_per_key(capsys, monkeypatch):
    from ijepa_hub.recipe import recipe_key_help

    text = _help(capsys, monkeypatch)  # the default recipe: 32 images a step for 3 epochs, not 2048 x 300
    assert "--optim.batch_size BATCH_SIZE global batch, whatever the number of devices (type: int, default: 32)" in text
    assert "--optim.epochs EPOCHS schedule length in epochs (type: int, default: 3)" in text
    big = _help(capsys, monkeypatch, "--recipe", "in1k_vith14")
    assert "(type: str, default: vit_huge_patch14)" in big and "(type: int, default: 128)" in big
    assert "--recipe RECIPE a shipped recipe name or a YAML file (type: str, default: in1k_vith14)" in big
    helps = recipe_key_help()
    assert len(helps) > 40 and all(helps.values()), [k for k, v in helps.items() if not v]
    for key, description in helps.items():
        assert f"--{key} " in text and description in text, key
    assert "Path to a configuration file" not in text  # jsonargparse's --data CONFIG, shadowed by the shorthand
    assert "--data PATH short for --data.path PATH" in text and "--optim FILE YAML file with optim keys" in text
    assert "-q, --quiet" in text and "-v, --verbose" in text and "--version" in text


def test_a_missing_data_folder_is_one_line_and_exit_1(tmp_path, capsys):
    rc = main(["--data", str(tmp_path / "nothere"), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err == (f"ijepa-train: error: no image folder at {str(tmp_path / 'nothere')!r}; "
                               "pass a folder of images or .tar shards\n")


def test_end_message_reports_the_centred_rankme_and_the_online_probe(tmp_path):
    """Item 5 of the online-probe issue: the end line must not read as collapse when the run learned."""
    from ijepa_hub.train.cli import _summary
    from ijepa_hub.train.loop import TrainResult

    result = TrainResult(
        tmp_path, 0, 300, 300, losses=[1.04, 0.24],
        monitor=[{"step": 300, "rankme": 1.9, "feature_std": 0.08, "rankme_centered": 12.04}],
        online_probe=[{"step": 0, "knn_shape": 25.0, "knn_count": 34.375}, {"step": 300, "knn_shape": 39.0625, "knn_count": 35.9375}],
        export_dir=tmp_path / "model",
    )
    assert _summary(result) == (
        "steps 0 -> 300 of 300, loss 1.0400 -> 0.2400, RankMe 1.9 (centred 12.0), "
        f"online k-NN (step 0 -> 300) shape 25.0 -> 39.1 %, count 34.4 -> 35.9 %; model in {tmp_path / 'model'}"
    )
    result.online_probe = result.online_probe[1:]  # a resumed run: one probe of its own, no rise to claim
    assert "online k-NN (step 300) shape 39.1 %, count 35.9 %;" in _summary(result)
    result.online_probe, result.monitor = [], [{"step": 5, "rankme": 3.0}]  # older records: no centred figure
    assert "RankMe 3.0;" in _summary(result) and "k-NN" not in _summary(result)
