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

The public face of the feature API: :func:`preprocess` is implemented in :mod:`ijepa_hub.data.preprocess`,
the batch loop and :class:`Features` in :mod:`ijepa_hub.models.extract` (every model's ``extract_features``
runs it, and the models sit below this module); :func:`extract_folder` is this module's own.
"""
from __future__ import annotations

import logging
import os

import torch.nn as nn
from huggingface_hub.utils import tqdm  # honours HF_HUB_DISABLE_PROGRESS_BARS

from .data.images import ImageInput, list_images
from .data.preprocess import preprocess
from .data.transforms import CROP_PCT, MEAN, STD  # noqa: F401  (the preprocessing facts, read as features.CROP_PCT)
from .errors import DataError, ImageReadError
from .models.extract import Features, block_indices, extract_features, tokens_to_map

__all__ = [
    "Features",
    "ImageInput",
    "block_indices",
    "tokens_to_map",
    "preprocess",
    "extract_features",
    "extract_folder",
]

logger = logging.getLogger("ijepa_hub.features")


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
    return [os.path.relpath(p, folder) for p in kept], Features.concat(parts)
