"""Any folder of images, searched recursively; the first-level subfolders are the classes if present."""
from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import DataError
from .images import list_images

__all__ = ["ImageFolder", "TRAIN_SPLIT", "HELD_OUT_SPLITS", "held_out_split", "check_not_split_names"]

TRAIN_SPLIT = "train"
HELD_OUT_SPLITS = ("validation", "val", "valid", "test")  # a held-out split's usual names (folders, hfds/): first present wins


def held_out_split(root: str | os.PathLike) -> Path | None:
    """The held-out split folder beside ``root/train`` (:data:`HELD_OUT_SPLITS`, in that order), or None."""
    return next((Path(root) / n for n in HELD_OUT_SPLITS if (Path(root) / n).is_dir()), None)


def check_not_split_names(root: str | os.PathLike, classes: list[str]) -> None:
    """Refuse class folders named like splits (``train``, ``val``...): the data is a split layout, not classes."""
    splits = [c for c in classes if c.lower() in (TRAIN_SPLIT, *HELD_OUT_SPLITS)]
    if splits:
        raise DataError(
            f"{root}: class folder(s) {', '.join(splits)} are split names, not classes. Fix: put train/<class>/ beside "
            f"one of {', '.join(n + '/' for n in HELD_OUT_SPLITS)}, or rename the class folder."
        )


class ImageFolder(Dataset):
    """Image files under ``root`` (any depth, :func:`~ijepa_hub.data.images.list_images`'s rule), in sorted
    order; item ``(path, label)``.

    Labels index the sorted first-level subfolders; images directly in ``root`` get label -1. Unlike
    torchvision's ``ImageFolder`` this accepts flat folders and returns the path: decoding happens in
    :class:`~ijepa_hub.data.pipeline.TrainingSamples` so that it can use JPEG draft mode.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        files = [Path(p) for p in list_images(root, hint="; pass a folder of images or .tar shards")]
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in files if p.parent != self.root})
        index = {name: i for i, name in enumerate(self.classes)}
        self.samples = [
            (p, index[p.relative_to(self.root).parts[0]] if p.parent != self.root else -1) for p in files
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Path, int]:
        return self.samples[index]
