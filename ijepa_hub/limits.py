"""Bounded loading: what a weights file or a config may ask this process to allocate.

Checked before anything is built or inflated, so that a small hostile file cannot make a load take
gigabytes: declared model sizes (a config's depth, a released checkpoint's block indices), tensors whose
declared size exceeds the bytes stored for them (zero strides), and zip archives that inflate far beyond
their size on disk. The bound is the largest released model with a wide margin (:func:`max_parameters`).
"""
from __future__ import annotations

import functools
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from .errors import CheckpointError
from .registry import VARIANTS

__all__ = [
    "max_parameters", "max_depth", "estimate_parameters", "check_declared_size", "check_block_indices", "check_tensor_extents",
    "check_zip_inflation", "max_img_size", "MAX_IMAGES", "MAX_SYNTHETIC_IMAGES", "MAX_BATCH", "MAX_MICRO_BATCH",
    "MAX_MASK_BLOCKS", "MAX_STEPS", "MAX_SEED", "MAX_HEADS", "MAX_SHARDS",
]

_MARGIN = 8  # times the largest released model
_MAX_INFLATION = 16  # uncompressed bytes per stored byte (torch.save stores, it never compresses)


def estimate_parameters(config) -> int:
    """About how many values a :class:`~ijepa_hub.ModelConfig`'s three networks hold (within a few per cent)."""
    d, h, pd = config.embed_dim, int(config.embed_dim * config.mlp_ratio), config.pred_embed_dim
    ph = int(pd * config.mlp_ratio)
    block = lambda width, hidden: 4 * width * width + 2 * width * hidden + 9 * width + hidden  # noqa: E731
    patches = (config.img_size // config.patch_size) ** 2
    encoder = config.in_chans * config.patch_size**2 * d + config.depth * block(d, h) + (patches + 3) * d
    predictor = 2 * d * pd + config.pred_depth * block(pd, ph) + (patches + 3) * pd + d
    return 2 * encoder + predictor


@functools.cache
def _largest_released() -> tuple[int, int]:
    """The largest released variant's parameters and depth (encoder or predictor)."""
    configs = [v.model_config for v in VARIANTS.values()]
    return max(map(estimate_parameters, configs)), max(max(c.depth, c.pred_depth) for c in configs)


def max_parameters() -> int:
    """The bound on a declared model: :data:`_MARGIN` times the largest released variant (from the registry)."""
    return _MARGIN * _largest_released()[0]


def max_depth() -> int:
    """The bound on a declared depth (encoder or predictor blocks): :data:`_MARGIN` times the largest released."""
    return _MARGIN * _largest_released()[1]


def check_declared_size(config, *, source: str) -> None:
    """Refuse a model config larger than :func:`max_parameters` or deeper than :func:`max_depth` before anything
    is built (on the meta device too: thousands of blocks take seconds and memory to create)."""
    n = estimate_parameters(config)
    if max(config.depth, config.pred_depth) > max_depth() or n > max_parameters():
        raise CheckpointError(
            f"{source}: declares a model of about {n:.3g} parameters (depth {config.depth}, width {config.embed_dim}, "
            f"predictor depth {config.pred_depth}, width {config.pred_embed_dim}), over {_MARGIN} times the largest "
            f"released I-JEPA (or deeper than {max_depth()} blocks); refused before building it. Fix: check the config (or the file) for a damaged size."
        )


def check_block_indices(state_dict: Mapping[str, Any], prefix: str, *, source: str) -> None:
    """Refuse block indices under ``prefix`` that are not 0..n-1 (one stray ``blocks.20000`` key would size the model)."""
    pattern = re.compile(rf"^(?:module\.)?{re.escape(prefix)}\.(\d+)\.")
    ids = sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})
    if ids and ids[-1] != len(ids) - 1:
        gaps = ", ".join(str(i) for i in ids if i >= len(ids))[:200]
        raise CheckpointError(
            f"{source}: the {prefix} blocks are numbered up to {ids[-1]} but only {len(ids)} exist (stray: {gaps}); "
            "the file is damaged or was edited. Fix: download it again."
        )


def _tensors(obj: Any, key: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if torch.is_tensor(obj):
        yield key, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _tensors(v, f"{key}.{k}" if key else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{key}[{i}]")


def check_tensor_extents(obj: Any, *, source: str) -> None:
    """Refuse tensors that declare more elements than their storage holds (zero or overlapping strides):
    copying one would allocate what the file never stored."""
    for key, t in _tensors(obj):
        stored = t.untyped_storage().nbytes()
        if t.numel() * t.element_size() > stored:
            raise CheckpointError(
                f"{source}: tensor {key} declares shape {tuple(t.shape)} ({t.numel() * t.element_size()} bytes) but "
                f"stores {stored} bytes (strides {t.stride()}); refused. Fix: re-save it with plain tensors."
            )


def check_zip_inflation(path: str | os.PathLike) -> None:
    """Refuse a zip checkpoint whose entries inflate far beyond its size on disk, or beyond the largest model."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as z:
        total = sum(info.file_size for info in z.infolist())
    on_disk = os.path.getsize(path)
    limit = min(_MAX_INFLATION * on_disk + (64 << 20), 4 * 8 * max_parameters())  # fp32 + optimiser state, generous
    if total > limit:
        raise CheckpointError(
            f"{path}: its archive inflates to {total} bytes from {on_disk} on disk (over the {limit}-byte bound); "
            "torch checkpoints are stored uncompressed, so it is refused before reading. Fix: re-save it with torch.save."
        )


# ----------------------------------------------------------------------------------------------------
# Recipe and command-line sizes: checked before anything is built, with the same margin as loading.

MAX_IMAGES = 1 << 31  # images per epoch (synthetic num_samples, hfids/ stream_size): LAION-2B fits
MAX_SYNTHETIC_IMAGES = 1 << 24  # synthetic images are drawn on the fly: 16.7M is more than any run needs
MAX_BATCH = 1 << 20  # global batch (the released recipes use 2048)
MAX_MICRO_BATCH = 1 << 16  # per-device batch, evaluation batch
MAX_MASK_BLOCKS = 64  # target (or legacy context) blocks per image (released: 4 and 1)
MAX_STEPS = 10**12  # steps, epochs, step counters: beyond this a number is a typo or damage
MAX_SEED = 2**63 - 1  # torch.manual_seed's range
MAX_HEADS = 1024  # attention heads, attentive-probe heads
MAX_SHARDS = 1 << 20  # .tar shards a brace pattern may name (LAION-5B is ~500k shards of 10k images)


@functools.cache
def max_img_size() -> int:
    """The bound on any image size in pixels: :data:`_MARGIN` times the largest released ``img_size``."""
    return _MARGIN * max(v.model_config.img_size for v in VARIANTS.values())
