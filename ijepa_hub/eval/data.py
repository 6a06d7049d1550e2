"""Labelled train / test splits for evaluation: a folder with class subfolders, a Hugging Face dataset, or the
synthetic shapes in either style (``synthetic``, ``synthetic:textured``)."""
from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..data.fingerprint import content_key
from ..data.folder import TRAIN_SPLIT, ImageFolder, check_not_split_names, held_out_split
from ..data.hf_datasets import is_hf_spec, labelled_images
from ..data.synthetic import (
    MAX_COUNT,
    SHAPES,
    STYLES,
    SYNTHETIC,
    SYNTHETIC_SPECS,
    SyntheticShapes,
    synthetic_spec,
    synthetic_style,
)
from ..data.transforms import CROP_PCT

__all__ = ["LabelledSplits", "labelled_splits", "synthetic_splits", "synthetic_splits_by_label", "folder_splits", "hf_splits", "SYNTHETIC"]

logger = logging.getLogger(__name__)

SyntheticLabel = Literal["shape", "count"]


@dataclass
class LabelledSplits:
    """Images (paths or PIL images) with integer labels, split into train and test.

    ``crop_pct`` is the preprocessing crop that suits the data: 1.0 (no crop) for the synthetic shapes,
    whose count label a centre crop could falsify; timm's 0.875 for photographs.
    """

    name: str
    train_images: list[Any]
    train_labels: torch.Tensor
    test_images: list[Any]
    test_labels: torch.Tensor
    classes: list[str]
    crop_pct: float
    fingerprint: str  # identifies the images and labels, for the feature cache

    def __post_init__(self) -> None:
        if len(self.train_images) != len(self.train_labels) or len(self.test_images) != len(self.test_labels):
            raise ValueError(f"{self.name}: images and labels differ in length")
        if not len(self.train_images) or not len(self.test_images):
            raise ValueError(f"{self.name}: the train and test splits both need images")


def synthetic_splits_by_label(
    labels: Sequence[SyntheticLabel] = ("shape", "count"), *, num_train: int = 2000, num_test: int = 1000,
    size: int = 96, seed: int = 0, style: str = STYLES[0],
) -> dict[str, LabelledSplits]:
    """Held-out synthetic shapes in ``style`` (seeds distinct from the training set's), one split per label,
    the images drawn once and shared. The styles share seeds, so their splits hold the same shapes.

    ``count`` is the low-level probe in the spirit of the paper's Clevr/Count: how many objects (1..4).
    """
    unknown = [label for label in labels if label not in ("shape", "count")]
    if unknown:
        raise ValueError(f"synthetic labels are 'shape' and 'count', got {unknown}")
    # Seeds 1000+ never collide with a training run's seed (the recipe seed, a small integer).
    drawn = {}
    for split, n, split_seed in (("train", num_train, 1000 + 2 * seed), ("test", num_test, 1001 + 2 * seed)):
        ds = SyntheticShapes(n, size=size, seed=split_seed, style=style)
        items = [ds[i] for i in range(n)]
        drawn[split] = ([img for img, _ in items], torch.tensor([lab for _, lab in items]))  # [N, (shape, count)]
    spec = synthetic_spec(style)  # "synthetic" (plain: the fingerprint of old caches) or "synthetic:textured"
    fingerprint = f"{spec}:{num_train}:{num_test}:{size}:{seed}"  # the label does not change the images
    out = {}
    for label in labels:
        column = 0 if label == "shape" else 1
        classes = list(SHAPES) if label == "shape" else [str(c) for c in range(1, MAX_COUNT + 1)]
        (train_images, train), (test_images, test) = drawn["train"], drawn["test"]
        # count 1..4 -> class 0..3
        out[label] = LabelledSplits(
            f"{spec.replace(':', '-')}-{label}", train_images, train[:, column] - column, test_images, test[:, column] - column,
            classes, 1.0, fingerprint,
        )
    return out


def synthetic_splits(
    label: SyntheticLabel = "shape", *, num_train: int = 2000, num_test: int = 1000, size: int = 96, seed: int = 0,
    style: str = STYLES[0],
) -> LabelledSplits:
    """Held-out synthetic shapes labelled by ``label`` (see :func:`synthetic_splits_by_label`)."""
    return synthetic_splits_by_label((label,), num_train=num_train, num_test=num_test, size=size, seed=seed,
                                     style=style)[label]


def folder_splits(root: str | os.PathLike, *, test_fraction: float = 0.2, seed: int = 0) -> LabelledSplits:
    """Class-subfolder images. ``root/train`` and ``root/val`` (or ``valid``, ``validation``, ``test``) are used as
    given when present;
    otherwise each class is split at random, ``test_fraction`` of it held out."""
    root = Path(root)
    held_out = held_out_split(root)
    if (root / TRAIN_SPLIT).is_dir() and held_out is not None:
        train, test = ImageFolder(root / "train"), ImageFolder(held_out)
        if train.classes != test.classes:
            raise ValueError(
                f"{root}: train/ and {held_out.name}/ have different class subfolders "
                f"({len(train.classes)} vs {len(test.classes)}); give both the same classes"
            )
        train_pairs, test_pairs, classes = train.samples, test.samples, train.classes
    else:
        folder = ImageFolder(root)
        check_not_split_names(root, folder.classes)
        if not folder.classes or any(label < 0 for _, label in folder.samples):
            raise ValueError(
                f"{root}: evaluation needs labelled images, one subfolder per class (images directly in "
                f"{root} have no label); arrange them as {root}/<class>/<image>"
            )
        train_rows, test_rows = _hold_out(
            [y for _, y in folder.samples], len(folder.classes), test_fraction, seed, folder.classes
        )
        train_pairs, test_pairs = [folder.samples[i] for i in train_rows], [folder.samples[i] for i in test_rows]
        classes = folder.classes

    def stat(pairs) -> str:  # content, not times: an image replaced at the same size is a new image
        return ";".join(f"{p}:{content_key(p)}:{y}" for p, y in pairs)

    return LabelledSplits(
        str(root),
        [str(p) for p, _ in train_pairs], torch.tensor([y for _, y in train_pairs]),
        [str(p) for p, _ in test_pairs], torch.tensor([y for _, y in test_pairs]),
        list(classes), CROP_PCT,
        f"folder:{stat(train_pairs)}|{stat(test_pairs)}",
    )


def _hold_out(
    labels: Sequence[int], num_classes: int, test_fraction: float, seed: int, names: Sequence[str] | None = None
) -> tuple[list[int], list[int]]:
    """Indices ``(train, test)``: ``test_fraction`` of each class held out at random (one at least). A class
    with a single image (``names`` name them in the error) is refused: it could never be tested."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    counts = Counter(labels)
    lonely = [str(names[c]) if names else str(c) for c in range(num_classes) if counts[c] == 1]
    if lonely:
        raise ValueError(
            f"class(es) {', '.join(lonely[:10])} hold a single image, which can be trained on or tested, "
            "not both, so they cannot be measured. Fix: add images, or leave those classes out."
        )
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in range(num_classes):
        members = [i for i, y in enumerate(labels) if y == c]
        order = torch.randperm(len(members), generator=gen).tolist()
        n_test = max(1, round(len(members) * test_fraction)) if len(members) > 1 else 0
        test += [members[i] for i in order[:n_test]]
        train += [members[i] for i in order[n_test:]]
    return train, test


def hf_splits(
    spec: str, *, test_fraction: float = 0.2, seed: int = 0, image_column: str | None = None,
    label_column: str | None = None,
) -> LabelledSplits:
    """A Hugging Face dataset (``hfds/NAME``): its train split and its validation / test split when it has one,
    else ``test_fraction`` of each class of the train split held out. Damaged images are left out and named."""
    train, test = labelled_images(spec, image_column=image_column, label_column=label_column)
    for part in (train, test):
        if part is not None and part.skipped:
            logger.warning("%s: %d damaged image(s) left out: %s", part.name, len(part.skipped), ", ".join(part.skipped[:5]))
    if test is not None:
        return LabelledSplits(spec, train.images, train.labels, test.images, test.labels, train.classes, CROP_PCT,
                              f"{train.fingerprint}|{test.fingerprint}")
    train_rows, test_rows = _hold_out(train.labels.tolist(), len(train.classes), test_fraction, seed, train.classes)
    return LabelledSplits(
        spec, [train.images[i] for i in train_rows], train.labels[train_rows],
        [train.images[i] for i in test_rows], train.labels[test_rows], train.classes, CROP_PCT,
        f"{train.fingerprint}:held-out:{test_fraction}:{seed}",
    )


def labelled_splits(
    data: str, *, label: SyntheticLabel = "shape", seed: int = 0, image_column: str | None = None,
    label_column: str | None = None, **kwargs: Any,
) -> LabelledSplits:
    """``"synthetic"`` / ``"synthetic:textured"`` (the built-in shapes, labelled by ``label``), a folder with class
    subfolders, or a Hugging Face dataset ``hfds/NAME`` (columns found, or named by ``image_column`` / ``label_column``)."""
    if is_hf_spec(data):
        return hf_splits(data, seed=seed, image_column=image_column, label_column=label_column, **kwargs)
    if image_column is not None or label_column is not None:
        raise ValueError(f"--data.image_column and --data.label_column apply to hfds/ data, not to {data!r}")
    style = synthetic_style(data)
    if style is not None:
        return synthetic_splits(label, seed=seed, style=style, **kwargs)
    if not Path(data).is_dir():
        raise FileNotFoundError(f"no image folder at {data!r}: pass a folder with one subfolder per class, or "
                                f"{' / '.join(SYNTHETIC_SPECS)}")
    return folder_splits(data, seed=seed, **kwargs)
