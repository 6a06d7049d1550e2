"""Any folder of images, searched recursively; the first-level subfolders are the classes if present."""
from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageFolder(Dataset):
    """Image files under ``root`` (any depth), in sorted order; item ``(path, label)``.

    Labels index the sorted first-level subfolders; images directly in ``root`` get label -1. Unlike
    torchvision's ``ImageFolder`` this accepts flat folders and returns the path: decoding happens in
    :class:`~ijepa_hub.data.pipeline.TrainingSamples` so that it can use JPEG draft mode.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist or is not a directory")
        files = sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not files:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {self.root}; pass a folder of images "
                "or .tar shards with --data"
            )
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in files if p.parent != self.root})
        index = {name: i for i, name in enumerate(self.classes)}
        self.samples = [
            (p, index[p.relative_to(self.root).parts[0]] if p.parent != self.root else -1) for p in files
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Path, int]:
        return self.samples[index]
