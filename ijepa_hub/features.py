"""Image features from an I-JEPA encoder: ``preprocess`` and ``extract_features``.

Follow an image: :func:`~ijepa_hub.data.images.load_image` (any input -> float RGB tensor in [0, 1], the
reader the trainer shares) -> :func:`preprocess` (resize, centre crop, normalise) -> the encoder ->
:class:`Features`.

Preprocessing is the standard ImageNet evaluation transform that timm's data config describes for the
repos this package writes (``pretrained_cfg``: ``crop_pct`` 0.875, bicubic, ImageNet mean/std; the
numbers live in :mod:`ijepa_hub.data.transforms`): resize the shorter side to
``floor(img_size / crop_pct)``, centre-crop ``img_size``, normalise. The resize runs on float tensors
(antialiased bicubic, clamped to [0, 1]) instead of on 8-bit PIL images, so that PIL, numpy, tensor and
16-bit inputs all take one path. Values differ from timm's PIL pipeline by rounding only.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from huggingface_hub.utils import tqdm  # honours HF_HUB_DISABLE_PROGRESS_BARS
from torchvision.transforms import v2

from .data.images import ImageInput, list_images, load_image
from .data.transforms import CROP_PCT, MEAN, STD
from .errors import DataError, ImageReadError
from .models.ijepa import IJepa
from .precision import autocast_context

__all__ = [
    "Features",
    "ImageInput",
    "preprocess",
    "extract_features",
    "extract_folder",
]

logger = logging.getLogger("ijepa_hub.features")


@dataclass
class Features:
    """Encoder outputs for a batch of images (float32, on the CPU).

    ``pooled`` [B, D] is the mean over patches of the per-token normed features: the feature the
    paper evaluates; with ``layers=k`` it is [B, k*D], the average-pooled (and normed) outputs of the
    last ``k`` blocks concatenated from the earliest to the last. ``patch_tokens`` [B, N, D] are the
    normed tokens of the last block.
    """

    pooled: torch.Tensor
    patch_tokens: torch.Tensor

    def __len__(self) -> int:
        return self.pooled.shape[0]


def preprocess(
    image: ImageInput,
    img_size: int,
    *,
    crop_pct: float = CROP_PCT,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """One image as the normalised [3, img_size, img_size] tensor the encoder expects (see module doc)."""
    pixels = load_image(image)
    transform = v2.Compose([
        v2.Resize(math.floor(img_size / crop_pct), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(img_size),
    ])
    pixels = transform(pixels).clamp_(0.0, 1.0)
    return v2.functional.normalize(pixels, list(mean), list(std))


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return list(images.unbind(0))
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


@torch.inference_mode()
def extract_features(
    encoder: nn.Module,
    images: ImageInput | Sequence[ImageInput],
    *,
    img_size: int | None = None,
    batch_size: int = 32,
    layers: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    preprocessed: bool = False,
    crop_pct: float = CROP_PCT,
    progress: bool = False,
) -> Features:
    """Run ``encoder`` (a :class:`~ijepa_hub.VisionTransformerEncoder`, or a whole :class:`~ijepa_hub.IJepa`
    / :class:`~ijepa_hub.PretrainedIJepa`: its feature encoder ``model.encoder``) on images, in batches.

    ``images``: one image or a list (paths, PIL images, HWC numpy arrays, CHW tensors) or a batched
    NCHW tensor / NHWC array. ``img_size`` defaults to the encoder's native size. ``layers=4`` gives the
    paper's linear-probe feature. ``device`` moves the encoder there (default: where it is); ``dtype``
    is the autocast type (default bf16 on CUDA, float32 elsewhere). ``preprocessed=True`` takes
    ``images`` as already normalised [B, 3, H, W] tensors; ``crop_pct=1.0`` keeps the whole image (resize
    without a crop: for counting, where a crop would cut objects off); ``progress`` shows a bar over batches.
    """
    if isinstance(encoder, IJepa):
        encoder = encoder.encoder
    if layers < 1 or layers > len(encoder.blocks):
        raise ValueError(f"layers must be in 1..{len(encoder.blocks)}, got {layers}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if device is not None:
        encoder.to(device)
    device = next(encoder.parameters()).device
    size = img_size or encoder.patch_embed.img_size[0]
    was_training = encoder.training
    encoder.eval()
    items = _as_list(images)
    pooled, tokens = [], []
    try:
        for start in tqdm(range(0, len(items), batch_size), desc="batches", unit="batch", disable=not progress):
            chunk = items[start : start + batch_size]
            if preprocessed:
                batch = torch.stack([torch.as_tensor(x) for x in chunk])
            else:
                batch = torch.stack([preprocess(x, size, crop_pct=crop_pct) for x in chunk])
            batch = batch.to(device=device, dtype=next(encoder.parameters()).dtype)
            with autocast_context(device, "auto" if dtype is None else dtype):
                blocks = encoder.forward_intermediates(
                    batch, indices=layers, norm=True, output_fmt="NLC", intermediates_only=True
                )
            pooled.append(torch.cat([b.mean(dim=1) for b in blocks], dim=-1).float().cpu())
            tokens.append(blocks[-1].float().cpu())
    finally:
        encoder.train(was_training)
    return Features(pooled=torch.cat(pooled), patch_tokens=torch.cat(tokens))


def extract_folder(
    encoder: nn.Module, folder: str | os.PathLike, *, skip_broken: bool = False, **kwargs
) -> tuple[list[str], Features]:
    """Features of every image under ``folder``; returns the paths (relative, sorted) and the features.

    ``skip_broken=True``: an image that cannot be decoded is skipped (logged by name) instead of stopping
    the whole extraction; the returned paths list only the images whose features are returned. The
    work is done in chunks, so a bad image costs one chunk's rerun, never the batches before it.
    """
    paths = list_images(folder)
    if not skip_broken:
        return [os.path.relpath(p, folder) for p in paths], extract_features(encoder, paths, **kwargs)
    chunk = max(1, kwargs.get("batch_size", 64)) * 16
    kept, parts, broken = [], [], []
    for start in tqdm(range(0, len(paths), chunk), desc="chunks", disable=not kwargs.pop("progress", False)):
        todo = paths[start : start + chunk]
        while todo:
            try:
                parts.append(extract_features(encoder, todo, **kwargs))
            except ImageReadError as err:
                if err.path not in todo:
                    raise
                logger.warning("skipped %s", err)
                broken.append(err.path)
                todo = [p for p in todo if p != err.path]
                continue
            kept += todo
            break
    if not parts:
        raise DataError(f"{folder}: none of the {len(paths)} images could be decoded ({', '.join(broken[:5])}, ...)")
    if broken:
        logger.warning("%d of %d images could not be decoded and were skipped", len(broken), len(paths))
    merged = Features(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Features)})
    return [os.path.relpath(p, folder) for p in kept], merged
