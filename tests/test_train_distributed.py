"""torchrun: 2 processes (gloo) reproduce 1 process with the same global batch; FSDP2 trains and resumes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME
from ijepa_hub.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def _losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / CHECKPOINT_NAME)["model"]


def _train(args: list[str], out: Path, nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    done = subprocess.run(
        [*launcher, "-m", "ijepa_hub.train", *args, "--no-progress", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def micro4_args(tiny_train_args) -> list[str]:
    # global batch 8 = micro-batches of 4: 2 processes x 1, or 1 process x 2 (gradient accumulation);
    # sample order, crops, masks and schedules are the same in both.
    return [*tiny_train_args, "--data.batch_size_per_device", "4", "--train.max_steps", "6"]


def test_two_process_gloo_run_matches_one_process_with_the_same_global_batch(micro4_args, tmp_path):
    one = _train(micro4_args, tmp_path / "one")
    two = _train(micro4_args, tmp_path / "two", nproc=2)
    assert "1 process(es) x 2 micro-batch(es) x 4" in one.stderr
    assert "2 process(es) x 1 micro-batch(es) x 4" in two.stderr
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (a, b)
    wa, wb = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fsdp2_run_matches_one_process_and_resumes_exactly(micro4_args, tmp_path):
    fsdp = [*micro4_args, "--train.fsdp", "true", "--train.monitor_every", "3", "--train.checkpoint_every", "3"]
    _train(micro4_args, tmp_path / "one")
    _train(fsdp, tmp_path / "fsdp", nproc=2)
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "fsdp")
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3, (a, b)  # reduce-scatter sums in another order
    # the EMA ran on local shards: the exported target encoder is the gathered one
    _train([*fsdp, "--train.max_steps", "3"], tmp_path / "split", nproc=2)
    _train([*fsdp, "--resume", "auto"], tmp_path / "split", nproc=2)
    wa, wb = _weights(tmp_path / "fsdp"), _weights(tmp_path / "split")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    from safetensors.torch import load_file

    exported = load_file(tmp_path / "fsdp" / "model" / "model.safetensors")
    assert all(torch.equal(exported[k], wa["target_encoder." + k]) for k in exported)
