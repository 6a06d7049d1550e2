"""Shared test fixtures. The Hub environment is set here, before anything imports huggingface_hub
(which reads HF_ENDPOINT, HF_HOME, HF_HUB_DISABLE_XET once, at import): tests never reach the network.
Every cache the package writes (Hugging Face's, torch hub's for released checkpoints, ijepa_hub's own
``IJEPA_HUB_CACHE`` for features) points into one temporary folder, never into the user's ~/.cache."""
import atexit
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_HUB_PORT = _free_port()
CACHE_ROOT = Path(tempfile.mkdtemp(prefix="ijepa_hub-tests-cache-"))
atexit.register(shutil.rmtree, CACHE_ROOT, ignore_errors=True)
os.environ.update(
    HF_ENDPOINT=f"http://127.0.0.1:{_HUB_PORT}",
    HF_HOME=str(CACHE_ROOT / "hf"),
    TORCH_HOME=str(CACHE_ROOT / "torch"),
    IJEPA_HUB_CACHE=str(CACHE_ROOT / "ijepa_hub"),
    HF_HUB_DISABLE_XET="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    HF_TOKEN="hf_loopback_test_token",
)
os.environ.pop("HF_HUB_OFFLINE", None)
# One intra-op thread unless the caller chose: the suite runs on 2 shared cores, and torch's default (a
# thread per core) beside DataLoader workers and subprocesses oversubscribes them (issue 11, part 4).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Feature extraction's dtype="auto" picks bf16 on CPUs with native bf16: the suite's exact comparisons assume fp32
# on every machine, so it runs as on a CPU without; tests of the bf16 choice set the variable themselves.
os.environ.setdefault("IJEPA_HUB_CPU_BF16", "0")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # in case torch was imported before this file

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY = dict(img_size=32)  # vit_tiny_patch16 at 32 px: 4 patches, ~5.5M parameters per encoder


@pytest.fixture(scope="session")
def hub_server():
    """The loopback test Hub (tests/hub_server.py) on the port HF_ENDPOINT names."""
    from hub_server import HubServer

    server = HubServer(_HUB_PORT, lifetime_s=3 * 3600).start()  # outlives any CI run (90 min); stopped below
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_model():
    """A random tiny IJepa whose two encoders differ (so tests can tell them apart)."""
    import ijepa_hub

    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch16", **TINY).eval()
    with torch.no_grad():
        for p in model.target_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


@pytest.fixture(scope="session")
def images():
    """Four deterministic uint8 RGB images of different sizes (HWC numpy)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in ((40, 48), (64, 36), (32, 32), (50, 70))]


@pytest.fixture
def tiny_ijepa():
    """A fresh vit_tiny at 32 px with 8 px patches (a 4x4 grid), predictor 96 wide and 2 deep."""
    import ijepa_hub

    torch.manual_seed(0)
    return ijepa_hub.create_model("vit_tiny_patch16", img_size=32, patch_size=8, pred_depth=2)


@pytest.fixture
def image_batch() -> torch.Tensor:
    """Two random normalised 32 px images [2, 3, 32, 32]."""
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# The default recipe shrunk for tests: 32 px (4x4 grid), predictor depth 2, 256 synthetic images, global
# batch 8, no workers, no monitor, no online probe, no VCReg or SIGReg (batch statistics: the accumulation and
# world-size tests need a loss that is a mean over images); schedules span 64 steps (tests stop earlier with --train.max_steps).
TINY_TRAIN_ARGS = [
    "--model.img_size", "32", "--model.pred_depth", "2", "--data.num_samples", "256", "--data.source_size", "32",
    "--data.batch_size_per_device", "8", "--mask.min_keep", "2", "--optim.batch_size", "8", "--optim.epochs", "2",
    "--train.num_workers", "0", "--train.monitor_every", "0", "--train.monitor_batch", "32", "--train.log_every", "1",
    "--train.eval_every", "0", "--loss.vcreg_variance", "0", "--loss.vcreg_covariance", "0", "--loss.sigreg_weight", "0",
]


@pytest.fixture
def tiny_train_args() -> list[str]:
    """Command-line overrides that make any trainer run take seconds (see ``TINY_TRAIN_ARGS``)."""
    return list(TINY_TRAIN_ARGS)


@pytest.fixture
def tiny_recipe(tiny_train_args):
    """The recipe ``ijepa-train <tiny_train_args>`` runs."""
    from ijepa_hub.train.cli import parse_args

    return parse_args(tiny_train_args)[0]


@pytest.fixture
def torch_single_thread():
    """One intra-op thread: faster on a shared 2-core machine, and the same reductions in every run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def metric_steps(out: Path) -> list[int]:
    """The steps of the loss records in ``<out>/metrics.jsonl`` (a torn last line left out)."""
    import json

    path = out / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(x)["step"] for x in lines if x.endswith("}") and '"loss"' in x]


def sigkill_after_step(cmd: list[str], out: Path, step: int, env: dict[str, str], timeout: float = 180) -> None:
    """Run ``cmd`` (a trainer writing to ``out``) and SIGKILL it once ``metrics.jsonl`` records ``step``."""
    import signal
    import subprocess
    import time

    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while max(metric_steps(out), default=0) < step:
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, f"step {step} not reached"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
