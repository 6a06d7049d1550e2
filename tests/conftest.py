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
