"""Training data: image folders, WebDataset shards, the built-in synthetic shapes, the transform and
the deterministic micro-batch pipeline."""
from __future__ import annotations

from torch.utils.data import Dataset

from ..recipe import DataSection
from .folder import ImageFolder
from .hf_datasets import HFImages, HFImageStream, StreamedMicroBatches, dataset_items, hf_dataset, is_hf_spec
from .pipeline import BatchPlan, MaskedCollate, MicroBatch, MicroBatchSampler, TrainingSamples
from .synthetic import SHAPES, SYNTHETIC_SPECS, SyntheticShapes, synthetic_style
from .transforms import training_transform
from .webdataset import TarShards, expand_braces, is_shard_spec

__all__ = [
    "build_dataset",
    "training_synthetic_style",
    "ImageFolder",
    "TarShards",
    "HFImages",
    "HFImageStream",
    "StreamedMicroBatches",
    "dataset_items",
    "SyntheticShapes",
    "SHAPES",
    "BatchPlan",
    "MicroBatchSampler",
    "TrainingSamples",
    "MaskedCollate",
    "MicroBatch",
    "training_transform",
    "expand_braces",
]


def training_synthetic_style(data: DataSection) -> str | None:
    """The style of the built-in synthetic shapes ``data`` trains on (``data.path`` a synthetic spec, or unset
    with ``data.dataset`` one), None when it trains on other data."""
    return synthetic_style(data.path if data.path is not None else data.dataset)


def build_dataset(data: DataSection, *, seed: int = 0) -> Dataset:
    """The raw ``(image, label)`` dataset a recipe's data section names.

    ``data.path`` set: a folder of images, ``.tar`` shards (path, brace pattern or glob), a Hugging Face
    dataset (``hfds/NAME``, streamed: ``hfids/NAME``; see :mod:`~ijepa_hub.data.hf_datasets`), or the
    built-in synthetic shapes (``synthetic``, ``synthetic:textured``). Unset: the synthetic shapes when
    ``data.dataset`` is one of those specs, else an error asking for ``--data``.
    """
    style = training_synthetic_style(data)
    if style is not None:
        return SyntheticShapes(data.num_samples, size=data.source_size, seed=seed, style=style)
    if data.path is None:
        raise ValueError(
            f"this recipe trains on {data.dataset!r} (data.dataset): pass its location with "
            f"--data /path/to/train (a folder of images or .tar shards), or --data {' | '.join(SYNTHETIC_SPECS)}"
        )
    if is_hf_spec(data.path):
        return hf_dataset(
            data.path, split=data.split, image_column=data.image_column, label_column=data.label_column,
            stream_size=data.stream_size, shuffle_buffer=data.shuffle_buffer, seed=seed,
        )
    if is_shard_spec(data.path):
        return TarShards(data.path)
    return ImageFolder(data.path)
