"""AdamW for every task: built over a task's parameter groups, and each step's values applied to them."""
from __future__ import annotations

import torch

from ..recipe import AdamWSection
from .schedules import Hyperparams

__all__ = ["adamw", "set_hyperparams"]

# devices with a fused AdamW kernel: one pass over each tensor instead of a dozen (4x faster on CPU)
_FUSED_DEVICES = ("cuda", "cpu")


def adamw(groups: list[dict], optim: AdamWSection, *, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over ``groups`` with the section's betas and epsilon, starting at ``optim.start_lr``; ``fused``
    defaults to True when every parameter is on CUDA or CPU."""
    if fused is None:
        fused = all(p.device.type in _FUSED_DEVICES for g in groups for p in g["params"])
    return torch.optim.AdamW(
        groups, lr=optim.start_lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay, fused=fused
    )


def set_hyperparams(optimizer: torch.optim.Optimizer, values: Hyperparams) -> None:
    """The step's learning rate on every group (times a group's ``lr_scale``: timm's layer-wise decay) and its
    weight decay on the groups that decay (not those marked ``apply_weight_decay: False``)."""
    for group in optimizer.param_groups:
        group["lr"] = values.lr * group.get("lr_scale", 1.0)
        if group.get("apply_weight_decay", True):
            group["weight_decay"] = values.weight_decay
