"""Batch feature extraction: an encoder run over images, giving :class:`Features` (pooled, tokens, maps).

It lives beside the networks because every model carries it (``IJepa.extract_features``); the public face,
with folder extraction, is :mod:`ijepa_hub.features`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from huggingface_hub.utils import tqdm  # honours HF_HUB_DISABLE_PROGRESS_BARS

from ..data.images import ImageInput
from ..data.preprocess import as_image_list, preprocess
from ..data.transforms import CROP_PCT
from ..precision import Precision, autocast_context, extraction_dtype
from .encoder import VisionTransformerEncoder
from .int8 import int8_encoder

__all__ = ["Features", "block_indices", "tokens_to_map", "extract_features", "feature_encoder", "QUANTIZE", "compute_dtype"]

Quantize = Literal["int8"]
QUANTIZE: tuple[str, ...] = ("int8",)  # quantize= choices of extract_features


@dataclass
class Features:
    """Encoder outputs for a batch of images (float32, on the CPU).

    ``pooled`` [B, D] is the mean over patches of the per-token normed features: the feature the
    paper evaluates; with ``layers=k`` (or a list of k block indices) it is [B, k*D], the average-pooled
    (and normed) outputs of those blocks concatenated from the earliest to the last. ``patch_tokens``
    [B, N, D] are the normed tokens of the last of those blocks, ``patch_map`` the same as a dense map
    [B, D, h, w] on the patch ``grid`` (h, w). ``layer_tokens`` holds the tokens of every block in
    ``layers`` (kept only with ``extract_features(..., per_layer=True)``), ``layer_maps`` their maps.
    """

    pooled: torch.Tensor
    patch_tokens: torch.Tensor
    grid: tuple[int, int] | None = None  # None: a square grid
    layers: tuple[int, ...] = ()  # block indices, ascending
    layer_tokens: tuple[torch.Tensor, ...] | None = None

    def __len__(self) -> int:
        return self.pooled.shape[0]

    @classmethod
    def concat(cls, parts: Sequence[Features]) -> Features:
        """The features of several batches of images with the same options, in order."""
        first = parts[0]
        layer_tokens = None if first.layer_tokens is None else tuple(
            torch.cat(ts) for ts in zip(*(p.layer_tokens for p in parts))
        )
        return cls(pooled=torch.cat([p.pooled for p in parts]), patch_tokens=torch.cat([p.patch_tokens for p in parts]),
                   grid=first.grid, layers=first.layers, layer_tokens=layer_tokens)

    @property
    def patch_map(self) -> torch.Tensor:
        """The last layer's normed patch tokens as [B, D, h, w] (row-major patches, as the encoder reads them)."""
        return tokens_to_map(self.patch_tokens, self.grid)

    @property
    def layer_maps(self) -> list[torch.Tensor]:
        """One [B, D, h, w] map per block in ``layers`` (needs ``per_layer=True`` at extraction)."""
        if self.layer_tokens is None:
            raise ValueError("these features hold the last layer's tokens only: extract with per_layer=True")
        return [tokens_to_map(t, self.grid) for t in self.layer_tokens]


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Patch tokens [B, N, D] -> a dense map [B, D, h, w]; ``grid`` (h, w) defaults to a square one."""
    b, n, d = tokens.shape
    h, w = grid if grid is not None else (math.isqrt(n), math.isqrt(n))
    if h * w != n:
        raise ValueError(f"{n} patch tokens do not fill a {h}x{w} grid: pass the grid (h, w)")
    return tokens.reshape(b, h, w, d).permute(0, 3, 1, 2)


def block_indices(depth: int, layers: int | Sequence[int]) -> tuple[int, ...]:
    """``layers`` as ascending block indices: an int n is the last n blocks; a list may use negative indices."""
    if isinstance(layers, int):
        if not 1 <= layers <= depth:
            raise ValueError(f"layers must be in 1..{depth} (the last n blocks) or a list of block indices, got {layers}")
        return tuple(range(depth - layers, depth))
    if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in layers):
        raise ValueError(f"block indices are integers, got {list(layers)}. Fix: e.g. layers=[-4, -1] or layers=4.")
    indices = [int(i) for i in layers]
    bad = [i for i in indices if not -depth <= i < depth]
    if not indices or bad:
        raise ValueError(f"block indices must be in {-depth}..{depth - 1} (the encoder has {depth} blocks), got {list(layers)}")
    absolute = sorted(i % depth for i in indices)
    if len(set(absolute)) != len(absolute):
        raise ValueError(f"block indices repeat a block: {list(layers)}")
    return tuple(absolute)


def _runner(encoder: nn.Module, indices: tuple[int, ...], compute: str, device: torch.device):
    """``batch -> [tokens of each block in indices]`` in ``compute`` (an autocast dtype or int8)."""
    if compute == "int8":
        def run_int8(batch: torch.Tensor) -> list[torch.Tensor]:  # the ONNX graph is built for one image size
            return int8_encoder(encoder, indices, tuple(batch.shape[-2:]))(batch)

        return run_int8
    dtype = getattr(torch, compute)

    def run(batch: torch.Tensor) -> list[torch.Tensor]:
        with autocast_context(device, dtype):
            return encoder.forward_intermediates(batch, indices=list(indices), norm=True, output_fmt="NLC",
                                                 intermediates_only=True)

    return run


def feature_encoder(model: nn.Module) -> nn.Module:
    """The module features come from: ``model`` itself, or the feature encoder (``model.encoder``) of an I-JEPA model."""
    if isinstance(model, VisionTransformerEncoder):
        return model
    inner = getattr(model, "encoder", None)
    return inner if isinstance(inner, VisionTransformerEncoder) else model


def compute_dtype(dtype: Precision | None, device: torch.device | str, quantize: Quantize | None = None) -> str:
    """What features are computed in: ``"int8"`` with ``quantize="int8"``, else the autocast dtype
    (:func:`~ijepa_hub.precision.extraction_dtype`) as ``"float32"`` / ``"bfloat16"`` / ``"float16"``.

    Checks the pair: int8 runs on the CPU (onnxruntime), in fp32 around its int8 products, so it takes
    ``dtype`` auto or fp32 only.
    """
    if quantize is None:
        return str(extraction_dtype(dtype, device)).removeprefix("torch.")
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)} or None, got {quantize!r}")
    if torch.device(device).type != "cpu":
        raise ValueError(f"quantize='int8' runs on the CPU (onnxruntime), not on {device}. Fix: device='cpu', or "
                         "drop quantize (bf16 autocast is the fast path on GPUs).")
    if dtype not in (None, "auto", "fp32", torch.float32):
        raise ValueError(f"quantize='int8' computes around its int8 products in fp32; dtype={dtype!r} does not "
                         "apply. Fix: leave dtype='auto' or choose one of the two.")
    return "int8"


@torch.inference_mode()
def extract_features(
    encoder: nn.Module,
    images: ImageInput | Sequence[ImageInput],
    *,
    img_size: int | None = None,
    batch_size: int = 32,
    layers: int | Sequence[int] = 1,
    per_layer: bool = False,
    device: str | torch.device | None = None,
    dtype: Precision | None = "auto",
    quantize: Quantize | None = None,
    preprocessed: bool = False,
    crop_pct: float = CROP_PCT,
    progress: bool = False,
) -> Features:
    """Run ``encoder`` (a :class:`~ijepa_hub.VisionTransformerEncoder`, or a whole :class:`~ijepa_hub.IJepa`
    / :class:`~ijepa_hub.PretrainedIJepa`: its feature encoder ``model.encoder``) on images, in batches.

    ``images``: one image or a list (paths, PIL images, HWC numpy arrays, CHW tensors) or a batched
    NCHW tensor / NHWC array. ``img_size`` defaults to the encoder's native size. ``layers``: an int n
    takes the last n blocks (``layers=4`` gives the paper's linear-probe feature), a list takes those
    block indices (negative ones count from the end); ``per_layer=True`` keeps every such block's tokens
    (``Features.layer_tokens`` / ``layer_maps``), not only the last one's. ``device`` moves the encoder there (default: where it is); ``dtype``
    is the autocast type (``"auto"``: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere, logged
    once; ``"fp32"`` / ``"bf16"`` / a torch dtype force one). ``quantize="int8"``: the encoder runs as
    dynamically quantized int8 matrix products in onnxruntime on the CPU (quantized once per encoder and
    reused; needs the ``[onnx]`` extra). ``preprocessed=True`` takes
    ``images`` as already normalised [B, 3, H, W] tensors; ``crop_pct=1.0`` keeps the whole image (resize
    without a crop: for counting, where a crop would cut objects off); ``progress`` shows a bar over batches.
    """
    encoder = feature_encoder(encoder)
    indices = block_indices(len(encoder.blocks), layers)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if device is not None:
        encoder.to(device)
    device = next(encoder.parameters()).device
    compute = compute_dtype(dtype, device, quantize)
    size = img_size or encoder.patch_embed.img_size[0]
    was_training = encoder.training
    encoder.eval()
    items = as_image_list(images)
    if not items:
        raise ValueError("extract_features: no images given. Fix: pass at least one image.")
    pooled, tokens, grid = [], [], None
    run = _runner(encoder, indices, compute, device)
    try:
        for start in tqdm(range(0, len(items), batch_size), desc="batches", unit="batch", disable=not progress):
            chunk = items[start : start + batch_size]
            if preprocessed:
                batch = torch.stack([torch.as_tensor(x) for x in chunk])
            else:
                batch = torch.stack([preprocess(x, size, crop_pct=crop_pct) for x in chunk])
            batch = batch.to(device=device, dtype=next(encoder.parameters()).dtype)
            blocks = run(batch)
            grid = tuple(encoder.patch_embed.dynamic_feat_size(batch.shape[-2:]))
            pooled.append(torch.cat([b.mean(dim=1) for b in blocks], dim=-1).float().cpu())
            tokens.append([b.float().cpu() for b in (blocks if per_layer else blocks[-1:])])
    finally:
        encoder.train(was_training)
    per_block = tuple(torch.cat(t) for t in zip(*tokens))
    return Features(pooled=torch.cat(pooled), patch_tokens=per_block[-1], grid=grid, layers=indices,
                    layer_tokens=per_block if per_layer else None)
