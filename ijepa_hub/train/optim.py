"""AdamW as released: no weight decay on biases and 1-D parameters; frozen tables excluded."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..recipe import OptimSection

__all__ = ["param_groups", "build_optimizer", "set_hyperparams"]


def param_groups(model: nn.Module) -> list[dict]:
    """Two AdamW groups over trainable parameters: decayed weights, and biases / 1-D params without decay.

    ``mask_token`` ([1, 1, d]) is decayed, as released; frozen ``pos_embed`` tables are left out.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    return [
        {"params": decay, "apply_weight_decay": True},
        {"params": no_decay, "apply_weight_decay": False, "weight_decay": 0.0},
    ]


# devices with a fused AdamW kernel: one pass over each tensor instead of a dozen (4x faster on CPU)
_FUSED_DEVICES = ("cuda", "cpu")


def build_optimizer(model: nn.Module, optim: OptimSection, *, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; ``fused`` defaults to True when the parameters are on CUDA or CPU."""
    groups = param_groups(model)
    if fused is None:
        fused = all(p.device.type in _FUSED_DEVICES for g in groups for p in g["params"])
    return torch.optim.AdamW(
        groups, lr=optim.start_lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay, fused=fused
    )


def set_hyperparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Set the step's learning rate on every group and weight decay on the decayed groups."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_weight_decay", True):
            group["weight_decay"] = weight_decay
