"""Linear probe on frozen features, with a small learning-rate / weight-decay sweep on a held-out split."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_classes

__all__ = ["LinearProbeResult", "linear_probe", "train_linear"]


@dataclass
class LinearProbeResult:
    top1: float  # percent, on the test split, with the selected hyper-parameters
    lr: float
    weight_decay: float
    val_top1: float  # percent, on the held-out part of the training split
    sweep: list[dict] = field(default_factory=list)


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(x - mean) / std for x in (train, *others)]


def train_linear(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, lr: float, weight_decay: float,
    steps: int = 300, batch_size: int = 256, seed: int = 0,
) -> nn.Linear:
    """A linear classifier trained with AdamW and a cosine schedule on (already standardised) features."""
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=gen)
        head.bias.zero_()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < min(batch_size, len(features)):  # reshuffle once an epoch is used up
            order = torch.randperm(len(features), generator=gen)
        idx, order = order[:batch_size], order[batch_size:]
        loss = F.cross_entropy(head(features[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return head


@torch.no_grad()
def _accuracy(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * (head(features).argmax(1) == labels).float().mean().item()


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    lrs: tuple[float, ...] = (1e-3, 1e-2, 1e-1),
    weight_decays: tuple[float, ...] = (0.0, 1e-2),
    val_fraction: float = 0.2,
    steps: int = 300,
    seed: int = 0,
) -> LinearProbeResult:
    """Select lr and weight decay on a held-out part of the training split, retrain on all of it, test.

    Features are standardised with the training split's statistics.
    """
    train_labels, test_labels = train_labels.long(), test_labels.long()
    check_classes(train_labels, what="linear probe")
    num_classes = int(max(train_labels.max(), test_labels.max()) + 1)
    train_x, test_x = _standardise(train_features.float(), test_features.float())
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(len(train_x) * val_fraction))
    val_idx, fit_idx = order[:n_val], order[n_val:]
    sweep = []
    for lr, wd in itertools.product(lrs, weight_decays):
        head = train_linear(train_x[fit_idx], train_labels[fit_idx], num_classes, lr=lr, weight_decay=wd,
                            steps=steps, seed=seed)
        sweep.append({"lr": lr, "weight_decay": wd, "val_top1": _accuracy(head, train_x[val_idx], train_labels[val_idx])})
    best = max(sweep, key=lambda r: r["val_top1"])
    head = train_linear(train_x, train_labels, num_classes, lr=best["lr"], weight_decay=best["weight_decay"],
                        steps=steps, seed=seed)
    return LinearProbeResult(_accuracy(head, test_x, test_labels), best["lr"], best["weight_decay"], best["val_top1"], sweep)
