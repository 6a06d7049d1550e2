"""Linear segmentation probe on frozen patch features (DINOv2's "linear" protocol, scaled down).

The head is BatchNorm + a 1x1 convolution over the patch map of one block or the last few blocks
(channels concatenated); its logits are upsampled bilinearly to the label size and trained with
cross-entropy, pixels labelled 255 ignored. Reported: mIoU (over the classes present in the val labels
or predicted), per-class IoU and pixel accuracy, as fractions in [0, 1], next to the same numbers for
predicting the training split's majority class everywhere.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..features import extract_features
from .cache import cached_tensors, computed_on, weights_digest
from .checks import check_classes, check_epochs, check_probe_size
from .fit import fit_probe
from .segdata import IGNORE_INDEX, SegmentationSplits, read_mask, resize_masks

__all__ = ["LinearSegmentationHead", "SegmentationScores", "segmentation_scores", "train_segmentation_head",
           "segmentation_features", "evaluate_segmentation", "predict_segmentation"]


class LinearSegmentationHead(nn.Module):
    """BatchNorm + 1x1 conv: patch maps [B, C, h, w] -> class logits [B, K, h, w]."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, maps: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits, upsampled bilinearly to ``size`` (the labels' H, W) when given."""
        logits = self.conv(self.bn(maps))
        return logits if size is None else F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


@dataclass
class SegmentationScores:
    miou: float  # mean IoU over the classes that occur in the labels or the predictions
    pixel_accuracy: float
    per_class_iou: list[float | None]  # None: the class is absent from both labels and predictions

    def as_dict(self, classes: Sequence[str]) -> dict[str, Any]:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy,
                "per_class_iou": dict(zip(classes, self.per_class_iou))}


def segmentation_scores(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> SegmentationScores:
    """mIoU, per-class IoU and pixel accuracy of ``pred`` against ``labels`` (same shape; 255 ignored)."""
    valid = labels != IGNORE_INDEX
    y, p = labels[valid].long(), pred[valid].long()
    if not y.numel():
        raise ValueError("no labelled pixels to score (every pixel is 255 = ignore)")
    confusion = torch.bincount(y * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)
    hits = confusion.diag().double()
    union = confusion.sum(0).double() + confusion.sum(1).double() - hits
    iou = [float(h / u) if u > 0 else None for h, u in zip(hits, union)]
    present = [v for v in iou if v is not None]
    return SegmentationScores(sum(present) / len(present), float(hits.sum() / y.numel()), iou)


def train_segmentation_head(
    maps: torch.Tensor, labels: torch.Tensor, num_classes: int, *, epochs: int = 20, batch_size: int = 32,
    lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0, progress: bool = False,
) -> LinearSegmentationHead:
    """Train a :class:`LinearSegmentationHead` on frozen ``maps`` [N, C, h, w] for ``labels`` [N, H, W]
    (AdamW, cosine schedule, cross-entropy with 255 ignored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = LinearSegmentationHead(maps.shape[1], num_classes)
    size = tuple(labels.shape[-2:])

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(head(maps[idx], size), labels[idx].long(), ignore_index=IGNORE_INDEX)

    return fit_probe(head, loss_of, len(maps), epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                     seed=seed, min_batch=2, desc="segmentation head", progress=progress)


@torch.no_grad()
def predict_segmentation(head: LinearSegmentationHead, maps: torch.Tensor, size: tuple[int, int],
                         batch_size: int = 64) -> torch.Tensor:
    """Per-pixel class predictions [N, H, W] (uint8) of ``head`` on ``maps``."""
    head.eval()
    return torch.cat([head(m, size).argmax(1).to(torch.uint8) for m in maps.split(batch_size)])


def segmentation_features(
    encoder: nn.Module, images: Sequence[Any], *, layers: int | Sequence[int] = 1, img_size: int | None = None,
    fingerprint: str, weights_key: str | None = None, cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64, device: str | torch.device | None = None, progress: bool = False,
) -> torch.Tensor:
    """Patch maps [N, L*D, h, w] of ``images`` (the blocks ``layers`` concatenated along channels), cached."""

    def compute() -> dict[str, torch.Tensor]:
        feats = extract_features(encoder, list(images), layers=layers, per_layer=True, crop_pct=1.0,
                                 img_size=img_size, batch_size=batch_size, device=device, progress=progress)
        return {"maps": torch.cat(feats.layer_maps, dim=1)}

    options = {"kind": "patch_maps", "layers": layers, "img_size": img_size, "crop_pct": 1.0, "n": len(images),
               **computed_on(encoder, device)}
    key = [weights_key or weights_digest(encoder), fingerprint, options]
    return cached_tensors(compute, key=key, cache_dir=cache_dir, metadata=options,
                          shapes={"maps": (len(images), None, None, None)})["maps"]


def _labels(masks: Sequence[Any], size: int, num_classes: int, where: Sequence[Any]) -> torch.Tensor:
    return resize_masks([read_mask(m, num_classes=num_classes, where=str(w)) for m, w in zip(masks, where)], size)


def evaluate_segmentation(
    encoder: nn.Module,
    splits: SegmentationSplits,
    *,
    layers: int | Sequence[int] = 1,
    img_size: int | None = None,
    epochs: int = 20,
    lr: float = 1e-2,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
    keep_predictions: bool = False,
) -> dict[str, Any]:
    """Train the linear segmentation head on the train split's frozen patch maps, score it on val.

    ``layers``: 1 (last block, the default), 4 (the last four concatenated) or block indices. Images and
    masks are resized to ``img_size`` (default: the encoder's) with no crop of the shorter side; the
    logits are upsampled to that size. Returns a JSON-ready dict (``predictions`` [N, H, W] and
    ``labels`` tensors added with ``keep_predictions``, for pictures).
    """
    size = img_size or encoder.patch_embed.img_size[0]
    check_probe_size(size, encoder.patch_embed.patch_size[0])
    check_epochs(epochs, what="segmentation probe")
    k = len(splits.classes)
    train_y = _labels(splits.train_masks, size, k, splits.train_images)
    check_classes(train_y, what=f"segmentation probe on {splits.name}", ignore=IGNORE_INDEX)
    test_y = _labels(splits.test_masks, size, k, splits.test_images)
    common = dict(layers=layers, img_size=size, cache_dir=cache_dir, batch_size=batch_size, device=device,
                  progress=progress, weights_key=weights_digest(encoder) if cache_dir != "" else "uncached")
    start = time.perf_counter()
    train_x = segmentation_features(encoder, splits.train_images, fingerprint=splits.fingerprint + ":train", **common)
    test_x = segmentation_features(encoder, splits.test_images, fingerprint=splits.fingerprint + ":test", **common)
    extracted = time.perf_counter()
    head = train_segmentation_head(train_x, train_y, k, epochs=epochs, lr=lr, seed=seed, progress=progress)
    pred = predict_segmentation(head, test_x, (size, size))
    scores = segmentation_scores(pred, test_y, k)
    counts = torch.bincount(train_y[train_y != IGNORE_INDEX].long(), minlength=k)
    majority = segmentation_scores(torch.full_like(test_y, int(counts.argmax())), test_y, k)
    result = {
        "data": splits.name, "protocol": "segmentation", "layers": layers if isinstance(layers, int) else list(layers),
        **scores.as_dict(splits.classes),
        "majority": {"class": splits.classes[int(counts.argmax())], "miou": majority.miou,
                     "pixel_accuracy": majority.pixel_accuracy},
        "num_train": len(train_x), "num_test": len(test_x), "num_classes": k, "img_size": size,
        "feature_grid": list(train_x.shape[-2:]), "epochs": epochs, "lr": lr,
        "seconds": {"features": extracted - start, "probe": time.perf_counter() - extracted},
    }
    if keep_predictions:
        result["predictions"], result["labels"] = pred, test_y
    return result
