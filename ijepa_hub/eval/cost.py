"""The accuracy cost of a fast path (bf16 autocast, int8, an exported model): how far its pooled features
and probe top-1 are from the fp32 encoder's on the same labelled images.

Reported by ``ijepa-hub export --quantize/--dtype`` (in ``export.json``) and tested against the bounds of
issue 24: pooled-feature cosine to fp32 at least 0.999 (bf16) or 0.99 (int8), k-NN and linear-probe top-1
within 0.5 (bf16) or 1.0 (int8) points.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.synthetic import STYLES
from ..features import extract_features
from ..models.extract import Quantize, compute_dtype
from ..precision import Precision
from .data import LabelledSplits, synthetic_splits
from .knn import knn_classify
from .linear import linear_probe

__all__ = ["FeatureFn", "accuracy_cost", "extraction_cost", "default_cost_splits", "feature_cosine"]

FeatureFn = Callable[[Sequence[Any]], torch.Tensor]  # images -> pooled features [N, D]


def feature_cosine(candidate: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Per-image cosine similarity of two feature sets [N, D]: its mean and its minimum."""
    cos = F.cosine_similarity(candidate.float(), reference.float(), dim=-1)
    return {"mean": float(cos.mean()), "min": float(cos.min())}


def default_cost_splits(*, num_train: int = 200, num_test: int = 200, size: int = 96, seed: int = 0,
                        style: str = STYLES[0]) -> LabelledSplits:
    """The labelled set a cost is measured on when none is given: held-out synthetic shapes in ``style``, by shape."""
    return synthetic_splits("shape", num_train=num_train, num_test=num_test, size=size, seed=seed, style=style)


def accuracy_cost(reference: FeatureFn, candidate: FeatureFn, splits: LabelledSplits, *, k: int = 20,
                  seed: int = 0) -> dict[str, Any]:
    """Cosine of ``candidate``'s pooled features to ``reference``'s on every image of ``splits``, and the k-NN and
    linear-probe top-1 of both (probes fit on each one's train features, tested on its test features).

    ``*_top1_change`` is candidate minus reference, in points (negative: the fast path loses accuracy).
    """
    ref = {s: reference(getattr(splits, f"{s}_images")) for s in ("train", "test")}
    got = {s: candidate(getattr(splits, f"{s}_images")) for s in ("train", "test")}
    out: dict[str, Any] = {"data": splits.name, "num_train": len(splits.train_images), "num_test": len(splits.test_images),
                           "cosine": feature_cosine(torch.cat([got["train"], got["test"]]),
                                                    torch.cat([ref["train"], ref["test"]]))}
    n = len(splits.classes)
    for name, feats in (("reference", ref), ("candidate", got)):
        knn = knn_classify(feats["train"], splits.train_labels, feats["test"], splits.test_labels, k=k, num_classes=n)
        lin = linear_probe(feats["train"], splits.train_labels, feats["test"], splits.test_labels, seed=seed)
        out[name] = {"knn_top1": knn.top1, "linear_top1": lin.top1}
    for metric in ("knn_top1", "linear_top1"):
        out[f"{metric}_change"] = out["candidate"][metric] - out["reference"][metric]
    return out


def extraction_cost(encoder: nn.Module, splits: LabelledSplits | None = None, *, dtype: Precision | None = "auto",
                    quantize: Quantize | None = None, batch_size: int = 64, **kwargs: Any) -> dict[str, Any]:
    """:func:`accuracy_cost` of :func:`~ijepa_hub.extract_features` with ``dtype`` / ``quantize`` against fp32 on
    the same encoder (``splits``: :func:`default_cost_splits` when None); adds ``compute_dtype``."""
    splits = splits or default_cost_splits()
    device = next(encoder.parameters()).device

    def features(**how: Any) -> FeatureFn:
        return lambda images: extract_features(encoder, list(images), crop_pct=splits.crop_pct, batch_size=batch_size,
                                               **how).pooled

    cost = accuracy_cost(features(dtype="fp32"), features(dtype=dtype, quantize=quantize), splits, **kwargs)
    return {"compute_dtype": compute_dtype(dtype, device, quantize), **cost}
