"""Attentive probe on frozen patch tokens (V-JEPA's frozen-evaluation protocol, scaled down).

A learned query cross-attends over the last block's normed patch tokens
(:class:`~ijepa_hub.models.heads.AttentivePooler`), a linear layer classifies; only the probe trains.
The linear probe on the mean of the same tokens (the paper's pooled feature) runs beside it, so the
two top-1 figures compare pooling, not features.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..features import extract_features
from ..models.heads import AttentivePooler
from .cache import cached_tensors, computed_on, weights_digest
from .checks import check_classes, check_epochs, check_heads
from .data import LabelledSplits
from .fit import fit_probe
from .linear import _standardise, linear_probe

__all__ = ["AttentiveProbeResult", "train_attentive", "attentive_probe", "split_tokens", "evaluate_attentive"]


@dataclass
class AttentiveProbeResult:
    top1: float  # percent, on the test split
    train_top1: float  # percent, on the training split (how well the probe fits)


def train_attentive(
    tokens: torch.Tensor, labels: torch.Tensor, num_classes: int, *, num_heads: int = 8, epochs: int = 20,
    batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.05, seed: int = 0, progress: bool = False,
) -> AttentivePooler:
    """An :class:`AttentivePooler` trained on frozen ``tokens`` [N, T, D] (AdamW, cosine, cross-entropy)."""
    check_heads(num_heads, tokens.shape[-1], what="attentive probe")
    check_epochs(epochs, what="attentive probe")
    check_classes(labels, what="attentive probe")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = AttentivePooler(tokens.shape[-1], num_heads=num_heads, num_classes=num_classes)
    return fit_probe(probe, lambda idx: F.cross_entropy(probe(tokens[idx]), labels[idx].long()), len(tokens),
                     epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                     desc="attentive probe", progress=progress)


@torch.no_grad()
def _top1(probe: nn.Module, tokens: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    pred = torch.cat([probe(t).argmax(1) for t in tokens.split(batch_size)])
    return 100.0 * (pred == labels).float().mean().item()


def attentive_probe(
    train_tokens: torch.Tensor, train_labels: torch.Tensor, test_tokens: torch.Tensor, test_labels: torch.Tensor,
    **train_kwargs: Any,
) -> AttentiveProbeResult:
    """Train on the training tokens, report top-1 on the test tokens (see :func:`train_attentive`).

    Tokens are standardised per channel with the training tokens' mean and std, as the linear probe
    standardises its features: a component shared by all tokens would otherwise drown the differences.
    """
    num_classes = int(max(train_labels.max(), test_labels.max()) + 1)
    d = train_tokens.shape[-1]
    train_x, test_x = (x.reshape(t.shape) for x, t in zip(
        _standardise(train_tokens.float().reshape(-1, d), test_tokens.float().reshape(-1, d)), (train_tokens, test_tokens)))
    probe = train_attentive(train_x, train_labels, num_classes, **train_kwargs)
    return AttentiveProbeResult(_top1(probe, test_x, test_labels), _top1(probe, train_x, train_labels))


def split_tokens(
    encoder: nn.Module, splits: LabelledSplits, *, cache_dir: str | os.PathLike | None = None, batch_size: int = 64,
    device: str | torch.device | None = None, progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last block's normed patch tokens [N, T, D] of the train and test images (cached)."""
    weights_key = weights_digest(encoder) if cache_dir != "" else "uncached"

    def tokens(images: list[Any], fingerprint: str) -> torch.Tensor:
        def compute() -> dict[str, torch.Tensor]:
            return {"tokens": extract_features(encoder, images, crop_pct=splits.crop_pct, batch_size=batch_size,
                                               device=device, progress=progress).patch_tokens}

        options = {"kind": "patch_tokens", "crop_pct": splits.crop_pct, "n": len(images), **computed_on(encoder, device)}
        return cached_tensors(compute, key=[weights_key, fingerprint, options], cache_dir=cache_dir,
                              metadata=options, shapes={"tokens": (len(images), None, None)})["tokens"]

    return (tokens(splits.train_images, splits.fingerprint + ":train"),
            tokens(splits.test_images, splits.fingerprint + ":test"))


def evaluate_attentive(
    encoder: nn.Module, splits: LabelledSplits, *, epochs: int = 20, lr: float = 1e-3, num_heads: int = 8,
    seed: int = 0, progress: bool = False, **feature_kwargs: Any,
) -> dict[str, Any]:
    """Attentive probe and, on the mean of the same tokens, the linear probe: top-1 of each on the test split."""
    what = f"attentive probe on {splits.name}"
    check_classes(splits.train_labels, what=what)  # before extracting anything
    check_epochs(epochs, what=what)
    check_heads(num_heads, getattr(encoder, "embed_dim", num_heads), what=what)
    start = time.perf_counter()
    train, test = split_tokens(encoder, splits, progress=progress, **feature_kwargs)
    extracted = time.perf_counter()
    att = attentive_probe(train, splits.train_labels, test, splits.test_labels, epochs=epochs, lr=lr,
                          num_heads=num_heads, seed=seed, progress=progress)
    probed = time.perf_counter()
    lin = linear_probe(train.mean(1), splits.train_labels, test.mean(1), splits.test_labels, seed=seed)
    return {
        "data": splits.name, "protocol": "attentive", "top1": att.top1, "train_top1": att.train_top1,
        "linear_top1": lin.top1, "epochs": epochs, "lr": lr, "num_heads": num_heads,
        "num_train": len(train), "num_test": len(test), "num_classes": len(splits.classes),
        "seconds": {"features": extracted - start, "attentive": probed - extracted,
                    "linear": time.perf_counter() - probed},
    }
