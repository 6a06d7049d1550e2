"""Shared fixtures: tiny models that run in milliseconds on a CPU."""
from __future__ import annotations

import pytest
import torch

import ijepa_hub


@pytest.fixture
def tiny_model() -> ijepa_hub.IJepa:
    """vit_tiny at 32 px, patch 8: a 4x4 grid, predictor 96 wide and 2 deep."""
    torch.manual_seed(0)
    return ijepa_hub.create_model("vit_tiny_patch16", img_size=32, patch_size=8, pred_depth=2)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu``-marked tests on machines without CUDA."""
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


# The default recipe shrunk for tests: 32 px (4x4 grid), predictor depth 2, 256 synthetic images, global
# batch 8, no workers, no monitor; schedules span 64 steps (tests stop earlier with --train.max_steps).
TINY_TRAIN_ARGS = [
    "--model.img_size", "32", "--model.pred_depth", "2", "--data.num_samples", "256", "--data.source_size", "32",
    "--data.batch_size_per_device", "8", "--mask.min_keep", "2", "--optim.batch_size", "8", "--optim.epochs", "2",
    "--train.num_workers", "0", "--train.monitor_every", "0", "--train.monitor_batch", "32", "--train.log_every", "1",
]


@pytest.fixture
def tiny_train_args() -> list[str]:
    """Command-line overrides that make any trainer run take seconds (see ``TINY_TRAIN_ARGS``)."""
    return list(TINY_TRAIN_ARGS)


@pytest.fixture
def tiny_recipe(tiny_train_args) -> ijepa_hub.Recipe:
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
