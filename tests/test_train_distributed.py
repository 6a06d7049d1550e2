"""torchrun: 2 processes (gloo) reproduce 1 process with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ijepa_hub.train import load_checkpoint
from ijepa_hub.train.checkpoint import CHECKPOINT_NAME

ROOT = Path(__file__).resolve().parents[1]


def _losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")
def test_two_process_gloo_run_matches_one_process_with_the_same_global_batch(tiny_train_args, tmp_path):
    # global batch 8 = micro-batches of 4: 2 processes x 1, or 1 process x 2 (gradient accumulation);
    # sample order, crops, masks and schedules are the same in both.
    args = [*tiny_train_args, "--data.batch_size_per_device", "4", "--train.max_steps", "6", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    one = subprocess.run(
        [sys.executable, "-m", "ijepa_hub.train", *args, "--out", str(tmp_path / "one")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [*torchrun, "-m", "ijepa_hub.train", *args, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es) x 1 micro-batch(es) x 4" in two.stderr
    assert "1 process(es) x 2 micro-batch(es) x 4" in one.stderr
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (a, b)
    wa = load_checkpoint(tmp_path / "one" / CHECKPOINT_NAME)["model"]
    wb = load_checkpoint(tmp_path / "two" / CHECKPOINT_NAME)["model"]
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5)
