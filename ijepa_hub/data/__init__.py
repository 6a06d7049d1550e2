"""Training data: image folders, WebDataset shards, the built-in synthetic shapes, the transform and
the deterministic micro-batch pipeline."""
from __future__ import annotations

from torch.utils.data import Dataset

from ..recipe import DataSection
from .folder import ImageFolder
from .hf_datasets import HFImages, HFImageStream, StreamedMicroBatches, dataset_items, hf_dataset, is_hf_spec
from .pipeline import BatchPlan, MaskedCollate, MicroBatch, MicroBatchSampler, TrainingSamples
from .synthetic import SHAPES, SyntheticShapes
from .transforms import training_transform
from .webdataset import TarShards, expand_braces, is_shard_spec

__all__ = [
    "build_dataset",
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


def build_dataset(data: DataSection, *, seed: int = 0) -> Dataset:
    """The raw ``(image, label)`` dataset a recipe's data section names.

    ``data.path`` set: a folder of images, ``.tar`` shards (path, brace pattern or glob), or a Hugging
    Face dataset (``hfds/NAME``, streamed: ``hfids/NAME``; see :mod:`~ijepa_hub.data.hf_datasets`). Unset:
    the built-in synthetic shapes when ``data.dataset == "synthetic"``, else an error asking for ``--data``.
    """
    if data.path is None:
        if data.dataset != "synthetic":
            raise ValueError(
                f"this recipe trains on {data.dataset!r} (data.dataset): pass its location with "
                "--data /path/to/train (a folder of images or .tar shards)"
            )
        return SyntheticShapes(data.num_samples, size=data.source_size, seed=seed)
    if is_hf_spec(data.path):
        return hf_dataset(
            data.path, split=data.split, image_column=data.image_column, label_column=data.label_column,
            stream_size=data.stream_size, shuffle_buffer=data.shuffle_buffer, seed=seed,
        )
    if is_shard_spec(data.path):
        return TarShards(data.path)
    return ImageFolder(data.path)
