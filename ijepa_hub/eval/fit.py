"""The training loop the frozen-feature probes share: AdamW, a cosine schedule, shuffled mini-batches."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from huggingface_hub.utils import tqdm

from .checks import check_epochs

__all__ = ["fit_probe"]


def fit_probe(
    probe: nn.Module, loss_of: Callable[[torch.Tensor], torch.Tensor], num_samples: int, *, epochs: int,
    batch_size: int, lr: float, weight_decay: float, seed: int = 0, min_batch: int = 1, desc: str = "probe",
    progress: bool = False,
) -> nn.Module:
    """Train ``probe`` for ``epochs`` over ``num_samples`` samples; ``loss_of(indices)`` is a batch's loss.

    Batches smaller than ``min_batch`` are skipped (BatchNorm needs two samples). Returns ``probe`` in
    eval mode.
    """
    check_epochs(epochs, what=desc)
    gen = torch.Generator().manual_seed(seed)
    steps = max(1, epochs * -(-num_samples // batch_size))
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    probe.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress):
        for idx in torch.randperm(num_samples, generator=gen).split(batch_size):
            if len(idx) < min(min_batch, num_samples):
                continue
            loss = loss_of(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return probe.eval()
