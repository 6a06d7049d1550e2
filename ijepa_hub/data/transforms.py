"""The preprocessing facts and the released training transform (RandomResizedCrop + normalisation).

``MEAN`` / ``STD`` (ImageNet's, which the released models were trained with; transformers' I-JEPA
processor uses 0.5 instead), ``CROP_PCT`` and ``INTERPOLATION`` (timm's evaluation transform) are the
single source for training, feature extraction and the ``pretrained_cfg`` written into Hub repos.
"""
from __future__ import annotations

import math

import torch
from PIL import Image
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.transforms import v2

__all__ = ["MEAN", "STD", "CROP_PCT", "INTERPOLATION", "training_transform", "draft_for_crop", "min_crop_fraction"]

MEAN: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)
STD: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)
CROP_PCT = 0.875  # evaluation: resize the shorter side to img_size / CROP_PCT, then centre-crop img_size
INTERPOLATION = "bicubic"


def training_transform(
    img_size: int, *, crop_scale: tuple[float, float] = (0.3, 1.0), crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> v2.Compose:
    """PIL image -> normalised float tensor [3, img_size, img_size] (no flips or colour jitter, as released)."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(img_size, scale=crop_scale, ratio=crop_ratio, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),  # ImageNet's, as everywhere in ijepa_hub
        ]
    )


def min_crop_fraction(crop_scale: tuple[float, float], crop_ratio: tuple[float, float]) -> float:
    """Smallest crop side as a fraction of sqrt(width * height) that RandomResizedCrop can draw."""
    return math.sqrt(crop_scale[0] * min(crop_ratio[0], 1 / crop_ratio[1]))


def draft_for_crop(image: Image.Image, img_size: int, min_fraction: float) -> Image.Image:
    """Ask Pillow to decode a JPEG at a reduced scale when even the smallest crop stays >= ``img_size``.

    JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale for a fraction of the cost; a no-op for other
    formats and for files not much larger than the crop. Call before the pixels are loaded.
    """
    if image.format != "JPEG":
        return image
    width, height = image.size
    needed = img_size / min_fraction  # geometric-mean side that keeps the smallest crop at full resolution
    factor = needed / math.sqrt(width * height)
    if factor < 0.5:
        image.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor)))
    return image

