"""Fine-tuning data: labelled splits (class folders or synthetic shapes, either style) checked for usable classes,
the timm training transform made deterministic per sample, and the validation top-1.

Every random draw of a training sample (crop, flip, RandAugment, random erasing) comes from generators
seeded by the sample's key, and Mixup / CutMix from one seeded by the micro-batch: the data a step sees
depends only on the seed and the step, not on workers, processes or a resume.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, default_collate

from ..data.folder import HELD_OUT_SPLITS, TRAIN_SPLIT
from ..data.images import list_images
from ..data.synthetic import synthetic_style
from ..data.transforms import INTERPOLATION, MEAN, STD
from ..errors import DataError
from ..eval.data import LabelledSplits, labelled_splits
from ..features import preprocess
from .recipe import FtDataSection

__all__ = ["finetune_splits", "LabelledItems", "SeededTransform", "train_transform", "collate", "seeded_numpy_and_random",
           "build_mixup", "top1"]


def _check_class_folders(root: Path) -> None:
    """Every class subfolder of ``root`` (and of its train/ / val/) holds images: an empty one is a class
    the head would learn nothing about, and ``val/`` must have the same classes."""
    splits = [root / n for n in (TRAIN_SPLIT, *HELD_OUT_SPLITS) if (root / n).is_dir()] or [root]
    for split in splits:
        for sub in sorted(p for p in split.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                list_images(sub)
            except FileNotFoundError:
                raise DataError(
                    f"{sub}: the class folder {sub.name!r} holds no images. Fix: add images of {sub.name!r} "
                    f"there, or remove the folder to leave the class out"
                ) from None


def finetune_splits(data: FtDataSection, *, seed: int = 0) -> LabelledSplits:
    """The labelled train / validation images of ``data``; at least two classes, none of them empty."""
    if data.path is None:
        raise DataError("this recipe has no data.path: pass --data /path/to/folder (train/<class>/, val/<class>/)")
    if synthetic_style(data.path) is not None:
        splits = labelled_splits(data.path, label=data.label, num_train=data.num_train, num_test=data.num_val,
                                 size=data.source_size, seed=seed)
    else:
        if Path(data.path).is_dir():
            _check_class_folders(Path(data.path))
        splits = labelled_splits(data.path, seed=seed)  # a folder, or hfds/NAME (a Hugging Face dataset)
    if len(splits.classes) < 2:
        raise DataError(
            f"{data.path}: fine-tuning a classifier needs at least 2 classes, found {len(splits.classes)} "
            f"({', '.join(splits.classes) or 'none'}). Fix: one subfolder per class under train/ and val/"
        )
    return splits


class LabelledItems(Dataset):
    """``(image, label)`` pairs of one split, the items :class:`~ijepa_hub.data.TrainingSamples` reads."""

    def __init__(self, images: list[Any], labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels.tolist()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.images[index], self.labels[index]


@contextmanager
def seeded_numpy_and_random(seed: int) -> Iterator[None]:
    """Python's ``random`` and numpy's global generator seeded by ``seed`` inside the block, restored after
    (timm's RandAugment and Mixup draw from them)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)



class SeededTransform:
    """A transform whose python / numpy draws are seeded from torch's generator (which the caller seeds
    per sample, as :class:`~ijepa_hub.data.TrainingSamples` does)."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, image: Any) -> torch.Tensor:
        with seeded_numpy_and_random(int(torch.randint(0, 2**62, ()))):
            return self.transform(image)


def train_transform(data: FtDataSection, img_size: int) -> SeededTransform:
    """timm's training transform (RandomResizedCrop, flip, RandAugment, random erasing), ImageNet statistics."""
    from timm.data import create_transform

    transform = create_transform(
        img_size, is_training=True, scale=tuple(data.crop_scale), hflip=data.hflip, color_jitter=None,
        auto_augment=data.auto_augment, re_prob=data.reprob, re_mode="pixel", re_count=1,
        interpolation=INTERPOLATION, mean=MEAN, std=STD,
    )
    return SeededTransform(transform)


def collate(samples: list[tuple[torch.Tensor, torch.Tensor, Any, tuple[str, ...]]]):
    """``(images [B, C, H, W], labels [B], names of unreadable files skipped)`` from TrainingSamples items."""
    images, labels = default_collate([(s[0], s[1].reshape(())) for s in samples])
    return images, labels, [name for s in samples for name in s[3]]


def build_mixup(data: FtDataSection, num_classes: int, label_smoothing: float):
    """timm's Mixup / CutMix (soft targets with label smoothing folded in), or None when both are off."""
    if data.mixup <= 0 and data.cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=data.mixup, cutmix_alpha=data.cutmix, prob=data.mixup_prob, switch_prob=data.mixup_switch_prob,
        label_smoothing=label_smoothing, num_classes=num_classes,
    )


class _Preprocessed(Dataset):
    def __init__(self, images: list[Any], labels: torch.Tensor, img_size: int, crop_pct: float) -> None:
        self.images, self.labels, self.img_size, self.crop_pct = images, labels, img_size, crop_pct

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return preprocess(self.images[i], self.img_size, crop_pct=self.crop_pct), self.labels[i]


@torch.no_grad()
def top1(
    model: torch.nn.Module, splits: LabelledSplits, *, img_size: int, batch_size: int, device: torch.device,
    autocast: Callable, num_workers: int = 0, rank: int = 0, world_size: int = 1,
) -> float:
    """Top-1 (percent) on the validation split, each process taking every ``world_size``-th image."""
    idx = list(range(rank, len(splits.test_images), world_size))
    dataset = _Preprocessed([splits.test_images[i] for i in idx], splits.test_labels[idx], img_size, splits.crop_pct)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        generator=torch.Generator())  # a generator of its own: the global RNG is left alone
    was_training = model.training
    model.eval()
    counts = torch.zeros(2, dtype=torch.float64, device=device)
    try:
        for images, labels in loader:
            with autocast():
                logits = model(images.to(device))
            counts[0] += (logits.argmax(-1).cpu() == labels).sum().item()
            counts[1] += len(labels)
    finally:
        model.train(was_training)
    if world_size > 1:
        dist.all_reduce(counts)
    return 100.0 * float(counts[0] / counts[1].clamp_min(1))
