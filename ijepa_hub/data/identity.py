"""The identity of a run's training data, saved in its checkpoints: a resume on other data (of the same size,
so the schedules agree) is refused by name.

For image files it is a hash of their sorted names relative to their common folder (a moved copy of the data
still resumes), for ``.tar`` shards of each shard's name and member names; for data without files (synthetic,
Hugging Face datasets) the spec itself. Sizes are left out on purpose: images repaired in place after a
``TooManyBrokenImagesError`` keep the run resumable.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["data_fingerprint", "dataset_listing"]


def _relative(paths: Sequence[str | os.PathLike]) -> list[str]:
    names = [os.fspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(n) or "." for n in names])
    return [os.path.relpath(n, root) for n in names]


def dataset_listing(dataset: Any) -> list[str] | None:
    """The names a dataset reads: an :class:`ImageFolder`'s image files, :class:`TarShards`' ``shard:member``
    entries, a list of image paths; None for anything else (in-memory images, Hugging Face tables)."""
    shards, samples = getattr(dataset, "shards", None), getattr(dataset, "samples", None)
    if isinstance(shards, list) and isinstance(samples, list):
        names = _relative(shards)
        return [f"{names[entry[0]]}:{entry[-1]}" for entry in samples]
    if isinstance(samples, list) and samples and isinstance(samples[0], tuple) and isinstance(samples[0][0], Path):
        return _relative([path for path, _ in samples])
    if isinstance(dataset, Sequence) and dataset and all(isinstance(p, (str, os.PathLike)) for p in dataset):
        return _relative(dataset)
    return None


def data_fingerprint(spec: str | None, listing: Sequence[str] | None) -> str:
    """``names:<hash>`` of the sorted ``listing`` (see :func:`dataset_listing`), else ``spec:<spec>``."""
    if not listing:
        return f"spec:{spec}"
    digest = hashlib.sha256()
    for name in sorted(listing):
        digest.update(name.encode() + b"\n")
    return f"names:{digest.hexdigest()[:32]}"
