"""AdamW as released: no weight decay on biases and 1-D parameters; frozen tables excluded."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..engine.optim import adamw, set_hyperparams
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


def build_optimizer(model: nn.Module, optim: OptimSection, *, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; ``fused`` defaults to True when the parameters are on CUDA or CPU."""
    return adamw(param_groups(model), optim, fused=fused)
