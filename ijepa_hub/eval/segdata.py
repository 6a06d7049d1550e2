"""Segmentation data for the dense probe: images with per-pixel class masks, split into train and val.

Two sources. A folder in the VOC / ADE20K layout::

    DIR/train/images/*.jpg|png|...   DIR/train/masks/<same stem>.png
    DIR/val/images/*                 DIR/val/masks/<same stem>.png
    DIR/classes.txt                  optional: one class name per line, line i names class i

A mask holds one class index per pixel (a single-channel PNG: mode "L", "P" palette indices as VOC
stores them, or 16-bit), 255 means "ignore"; it has its image's size. Without ``classes.txt`` (or
``num_classes=``) the classes are 0..the largest index found. Or ``"synthetic"`` / ``"synthetic:textured"``:
the built-in shapes with their label masks (background and one class per shape kind; the two styles share
their masks).

Images and masks are resized (shorter side to the probe's size; bicubic for images, nearest for masks)
and centre-cropped alike, so labels stay aligned with pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from ..data.fingerprint import content_key
from ..data.folder import HELD_OUT_SPLITS, TRAIN_SPLIT, held_out_split
from ..data.images import is_image_file
from ..data.synthetic import SEGMENTATION_CLASSES, STYLES, SyntheticShapes, synthetic_spec, synthetic_style
from ..errors import DataError

__all__ = ["IGNORE_INDEX", "SegmentationSplits", "segmentation_splits", "folder_segmentation_splits",
           "synthetic_segmentation_splits", "read_mask", "resize_masks"]

IGNORE_INDEX = 255


@dataclass
class SegmentationSplits:
    """Train and val images (paths or PIL images) with their masks (paths or mode-"L" PIL images)."""

    name: str
    train_images: list[Any]
    train_masks: list[Any]
    test_images: list[Any]
    test_masks: list[Any]
    classes: list[str]
    fingerprint: str  # identifies the images and masks, for the feature cache

    def __post_init__(self) -> None:
        if not self.train_images or not self.test_images:
            raise DataError(f"{self.name}: the train and val splits both need images")


def read_mask(mask: Any, *, image_size: tuple[int, int] | None = None, num_classes: int | None = None,
              where: str = "") -> torch.Tensor:
    """A mask (path, PIL image or array) as a uint8 [H, W] tensor of class indices, 255 ignored.

    ``image_size`` (width, height) is checked against the mask's, ``num_classes`` against its values.
    """
    name = where or str(mask)
    if isinstance(mask, (str, os.PathLike)):
        with Image.open(mask) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DataError(f"{name}: a mask must be single-channel class indices (PNG mode L or P), "
                                f"got mode {im.mode}; save the class index of each pixel, not colours")
            array = np.asarray(im)
    else:
        array = np.asarray(mask)
    if array.ndim != 2:
        raise DataError(f"{name}: a mask must be 2-D (one class index per pixel), got shape {array.shape}")
    if image_size is not None and (array.shape[1], array.shape[0]) != tuple(image_size):
        raise DataError(f"{name}: mask is {array.shape[1]}x{array.shape[0]} but its image is "
                        f"{image_size[0]}x{image_size[1]}; masks must have their image's size")
    if num_classes is not None:
        bad = np.unique(array[(array != IGNORE_INDEX) & ((array < 0) | (array >= num_classes))])
        if bad.size:
            raise DataError(f"{name}: label values {bad[:8].tolist()} are outside the {num_classes} classes "
                            f"(0..{num_classes - 1}, {IGNORE_INDEX} = ignore)")
    if array.max(initial=0) > IGNORE_INDEX or array.min(initial=0) < 0:
        raise DataError(f"{name}: label values must be in 0..{IGNORE_INDEX}, got {array.min()}..{array.max()}")
    return torch.from_numpy(array.astype(np.uint8))


def resize_masks(masks: list[torch.Tensor], size: int) -> torch.Tensor:
    """[H, W] masks -> [N, size, size]: shorter side to ``size`` (nearest), centre crop; as the images."""
    resize = v2.Compose([v2.Resize(size, interpolation=v2.InterpolationMode.NEAREST), v2.CenterCrop(size)])
    return torch.stack([resize(m[None])[0] for m in masks])


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) as :func:`~ijepa_hub.data.images.load_image` will see it (EXIF rotation applied)."""
    with Image.open(path) as im:
        w, h = im.size
        return (h, w) if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)


def _pairs(split: Path) -> list[tuple[Path, Path]]:
    images, masks = split / "images", split / "masks"
    for folder in (images, masks):
        if not folder.is_dir():
            raise DataError(f"{split}: no {folder.name}/ folder; the segmentation layout is "
                            f"{split}/images/<name>.<ext> with {split}/masks/<name>.png")
    files = sorted(p for p in images.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise DataError(f"{images}: no images")
    pairs = []
    for p in files:
        mask = masks / f"{p.stem}.png"
        if not mask.is_file():
            raise DataError(f"{p}: no mask {mask}; every image needs a mask PNG of the same stem in {masks}")
        pairs.append((p, mask))
    return pairs


def folder_segmentation_splits(root: str | os.PathLike, *, num_classes: int | None = None) -> SegmentationSplits:
    """The VOC-like folder ``root`` (see the module doc). Masks are checked here: size, values and presence."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no segmentation folder at {root}: pass DIR with train/ and val/, or 'synthetic'")
    held_out = held_out_split(root)
    splits = {}
    for name, folder in (("train", root / TRAIN_SPLIT), ("val", held_out)):
        if folder is None or not folder.is_dir():
            raise DataError(f"{root}: no {name}/ folder (held out: {'/, '.join(HELD_OUT_SPLITS)}/); the layout is "
                            f"{root}/{{train,val}}/{{images,masks}}/")
        splits[name] = _pairs(folder)
    names_file = root / "classes.txt"
    classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()] if names_file.is_file() else None
    if classes and num_classes is not None and num_classes != len(classes):
        raise DataError(f"{names_file} names {len(classes)} classes but num_classes={num_classes}")
    limit = len(classes) if classes else num_classes
    largest = 0
    for image, mask in (pair for pairs in splits.values() for pair in pairs):
        values = read_mask(mask, image_size=_image_size(image), num_classes=limit)
        valid = values[values != IGNORE_INDEX]
        largest = max(largest, int(valid.max()) if valid.numel() else 0)
    classes = classes or [str(i) for i in range(limit or largest + 1)]

    def stat(pairs) -> str:  # content, not times (see ijepa_hub.data.fingerprint)
        return ";".join(f"{p}:{content_key(p)}" for pair in pairs for p in pair)

    return SegmentationSplits(
        str(root), [str(i) for i, _ in splits["train"]], [str(m) for _, m in splits["train"]],
        [str(i) for i, _ in splits["val"]], [str(m) for _, m in splits["val"]], classes,
        f"segfolder:{stat(splits['train'])}|{stat(splits['val'])}",
    )


def synthetic_segmentation_splits(*, num_train: int = 500, num_test: int = 200, size: int = 96,
                                  seed: int = 0, style: str = STYLES[0]) -> SegmentationSplits:
    """The built-in shapes in ``style`` with label masks; the held-out seeds of the synthetic probes
    (1000 + 2 seed, + 1)."""
    drawn = {}
    for split, n, split_seed in (("train", num_train, 1000 + 2 * seed), ("test", num_test, 1001 + 2 * seed)):
        ds = SyntheticShapes(n, size=size, seed=split_seed, style=style)
        drawn[split] = [ds.segmentation(i) for i in range(n)]
    spec = synthetic_spec(style)
    kind = "synthetic-seg" if style == STYLES[0] else f"synthetic-seg:{style}"  # plain: as before
    return SegmentationSplits(
        f"{spec.replace(':', '-')}-segmentation", [i for i, _ in drawn["train"]], [m for _, m in drawn["train"]],
        [i for i, _ in drawn["test"]], [m for _, m in drawn["test"]], list(SEGMENTATION_CLASSES),
        f"{kind}:{num_train}:{num_test}:{size}:{seed}",
    )


def segmentation_splits(data: str, *, seed: int = 0, num_classes: int | None = None, **synthetic: Any) -> SegmentationSplits:
    """``"synthetic"`` / ``"synthetic:textured"`` (the built-in shapes, ``num_train`` / ``num_test`` / ``size``)
    or a VOC-like folder."""
    style = synthetic_style(data)
    if style is not None:
        if num_classes is not None:  # silently ignored, it would read as a probe of that many classes
            raise ValueError(f"--num-classes {num_classes}: the class count of folder data without classes.txt; "
                             f"{data!r} has its own classes. Fix: drop --num-classes.")
        return synthetic_segmentation_splits(seed=seed, style=style, **synthetic)
    return folder_segmentation_splits(data, num_classes=num_classes)
