"""The identity of a run's training data, saved in its checkpoints: a resume on other data (of the same size,
so the schedules agree) is refused by name.

For image files and shards it is a hash of their sorted names (relative to their common folder, so a moved copy
of the data still resumes) and sizes; for data without files (synthetic, Hugging Face datasets) the spec itself.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["data_fingerprint", "dataset_files"]


def dataset_files(dataset: Any) -> Sequence[os.PathLike | str] | None:
    """The files a dataset reads (an :class:`ImageFolder`'s images, :class:`TarShards`' shards), or None."""
    shards = getattr(dataset, "shards", None)
    if isinstance(shards, list):
        return shards
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and samples and isinstance(samples[0], tuple) and isinstance(samples[0][0], Path):
        return [path for path, _ in samples]
    return None


def data_fingerprint(spec: str | None, files: Sequence[Any] | None = None) -> str:
    """``sha256:<hex>`` of the sorted ``(relative name, size)`` of ``files`` when they are all paths, else
    ``spec:<spec>``."""
    if not files or not all(isinstance(f, (str, os.PathLike)) for f in files):
        return f"spec:{spec}"
    paths = [os.fspath(f) for f in files]
    root = os.path.commonpath([os.path.dirname(p) or "." for p in paths])
    digest = hashlib.sha256()
    for name, size in sorted((os.path.relpath(p, root), os.stat(p).st_size) for p in paths):
        digest.update(f"{name}\0{size}\n".encode())
    return f"sha256:{digest.hexdigest()[:32]}"
