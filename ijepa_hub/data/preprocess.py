"""Evaluation preprocessing: one image (path, PIL, array, tensor) -> the normalised tensor an encoder reads.

The standard ImageNet evaluation transform that timm's data config describes for the repos this package
writes (``pretrained_cfg``: ``crop_pct`` 0.875, bicubic, ImageNet mean/std; the numbers live in
:mod:`ijepa_hub.data.transforms`): resize the shorter side to ``floor(img_size / crop_pct)``, centre-crop
``img_size``, normalise. The resize runs on float tensors (antialiased bicubic, clamped to [0, 1]) instead of
on 8-bit PIL images, so that PIL, numpy, tensor and 16-bit inputs all take one path.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from ..bounds import CROP_FRACTION, check_value
from .images import ImageInput, load_image
from .transforms import CROP_PCT, MEAN, STD

__all__ = ["preprocess", "as_image_list"]


def preprocess(
    image: ImageInput,
    img_size: int,
    *,
    crop_pct: float = CROP_PCT,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """One image as the normalised [3, img_size, img_size] tensor the encoder expects (see module doc)."""
    check_value("crop_pct", crop_pct, CROP_FRACTION, error=ValueError)
    pixels = load_image(image)
    transform = v2.Compose([
        v2.Resize(math.floor(img_size / crop_pct), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(img_size),
    ])
    pixels = transform(pixels).clamp_(0.0, 1.0)
    return v2.functional.normalize(pixels, list(mean), list(std))


def as_image_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """``images`` as a list of single images: a list or tuple as it is, a batched 4-D tensor or array split."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return list(images.unbind(0))
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


