"""The collapse monitor's numbers: RankMe and feature spread, and its warning."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn as nn

from ijepa_hub.train.monitor import CollapseMonitor, effective_rank, feature_std


def test_effective_rank_counts_equal_directions():
    assert effective_rank(torch.eye(16)) == pytest.approx(16, rel=1e-5)
    assert effective_rank(torch.cat([torch.eye(4), torch.zeros(4, 12)], 1)) == pytest.approx(4, rel=1e-5)
    rank_one = torch.randn(64, 1) @ torch.randn(1, 32)
    assert effective_rank(rank_one) == pytest.approx(1, abs=1e-3)


def test_feature_std_is_zero_when_collapsed():
    assert feature_std(torch.ones(50, 8) * torch.randn(1, 8)) == pytest.approx(0, abs=1e-9)
    assert feature_std(torch.randn(4096, 64)) == pytest.approx(1, rel=0.05)


class _Scaled(nn.Module):
    """Tokens [B, 4, D] whose spread over the batch is multiplied by ``gain``."""

    def __init__(self) -> None:
        super().__init__()
        self.gain, self.proj = 1.0, torch.randn(12, 8)

    def forward(self, x):
        features = x.flatten(1) @ self.proj
        mean = features.mean(0, keepdim=True)
        features = mean + self.gain * (features - mean) + 5.0
        return features[:, None, :].expand(-1, 4, -1)


def test_monitor_warns_when_the_rank_falls(caplog):
    monitor = CollapseMonitor(torch.randn(64, 3, 2, 2))  # one chunk: _Scaled centres on the whole batch
    encoder, cpu = _Scaled(), torch.device("cpu")
    first = monitor.measure(encoder, 0, device=cpu, autocast=torch.autograd.grad_mode.no_grad)
    assert first["collapse_warning"] == "" and first["rankme"] > 4
    encoder.gain = 1e-4  # every image maps to almost the same feature
    with caplog.at_level(logging.WARNING):
        second = monitor.measure(encoder, 10, device=cpu, autocast=torch.autograd.grad_mode.no_grad)
    assert second["rankme"] < 1.5 and second["feature_std"] < 0.2 * first["feature_std"]
    assert "feature_std" in second["collapse_warning"]
    assert "collapse" in caplog.text
    restored = CollapseMonitor(monitor.images)
    restored.load_state_dict(monitor.state_dict())
    assert restored.history == monitor.history


def test_a_growing_shared_component_is_not_collapse_but_lost_directions_are():
    monitor = CollapseMonitor(torch.randn(64, 3, 2, 2))  # one chunk: _Scaled centres on the whole batch
    encoder, cpu = _Scaled(), torch.device("cpu")
    first = monitor.measure(encoder, 0, device=cpu, autocast=torch.autograd.grad_mode.no_grad)
    encoder.gain = 1e-2  # a shared component dominates; the image-dependent part keeps its directions
    second = monitor.measure(encoder, 10, device=cpu, autocast=torch.autograd.grad_mode.no_grad)
    assert second["rankme"] < 0.5 * first["rankme"] and second["feature_std"] < 0.1 * first["feature_std"]
    assert second["rankme_centered"] == pytest.approx(first["rankme_centered"], rel=1e-2) and first["rankme_centered"] > 4
    assert second["collapse_warning"] == ""
    encoder.gain = 1.0
    encoder.proj[:, 1:] = encoder.proj[:, :1]  # dimensional collapse: every feature along one direction
    third = monitor.measure(encoder, 20, device=cpu, autocast=torch.autograd.grad_mode.no_grad)
    assert third["rankme_centered"] < 1.5 and "rankme_centered" in third["collapse_warning"]
