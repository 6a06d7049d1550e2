"""Image features from an I-JEPA encoder: image loading, preprocessing, ``extract_features``.

Follow an image: :func:`open_image` (a file, decoded, upright, errors naming it) -> :func:`load_image`
(any input -> float RGB tensor in [0, 1]) -> :func:`preprocess` (resize, centre crop, normalise) -> the
encoder -> :class:`Features`. The trainer decodes files with the same :func:`open_image` and converts
them with :func:`to_rgb`, so training and feature extraction see the same pixels.

Preprocessing is the standard ImageNet evaluation transform that timm's data config describes for the
repos this package writes (``pretrained_cfg``: ``crop_pct`` 0.875, bicubic, ImageNet mean/std): resize
the shorter side to ``floor(img_size / crop_pct)``, centre-crop ``img_size``, normalise. The sizes,
interpolation and statistics are timm's; the resize runs on float tensors (antialiased bicubic,
clamped to [0, 1]) instead of on 8-bit PIL images, so that PIL, numpy, tensor and 16-bit inputs all
take one path. Values differ from timm's PIL pipeline by rounding only. The ImageNet statistics are
those the models were trained with (transformers' I-JEPA processor uses mean = std = 0.5 instead).
"""
from __future__ import annotations

import math
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, ImageOps
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from huggingface_hub.utils import tqdm  # honours HF_HUB_DISABLE_PROGRESS_BARS
from torchvision.transforms import v2

from .errors import ImageReadError
from .models.ijepa import IJepa

__all__ = [
    "Features",
    "ImageInput",
    "open_image",
    "to_rgb",
    "CROP_PCT",
    "INTERPOLATION",
    "MEAN",
    "STD",
    "load_image",
    "preprocess",
    "extract_features",
    "list_images",
    "extract_folder",
]

CROP_PCT = 0.875
INTERPOLATION = "bicubic"
MEAN: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)
STD: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]


@dataclass
class Features:
    """Encoder outputs for a batch of images (float32, on the CPU).

    ``pooled`` [B, D] is the mean over patches of the per-token normed features: the feature the
    paper evaluates; with ``layers=k`` it is [B, k*D], the average-pooled (and normed) outputs of the
    last ``k`` blocks concatenated from the earliest to the last. ``patch_tokens`` [B, N, D] are the
    normed tokens of the last block.
    """

    pooled: torch.Tensor
    patch_tokens: torch.Tensor

    def __len__(self) -> int:
        return self.pooled.shape[0]


def _scale_to_unit(array: np.ndarray, source: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise TypeError(
        f"{source}: unsupported pixel type {array.dtype}; give uint8, uint16 or float in [0, 1]"
    )


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """HWC (or HW) array of an upright PIL image; 16-bit and float modes keep their precision."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image).astype(np.uint16)
    if image.mode == "I":  # 32-bit integer: PNG 16-bit greyscale often opens this way
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    return np.asarray(image)


def _describe(source: Any) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else str(getattr(source, "name", source))


def open_image(source: str | os.PathLike | Any, *, prepare: Callable[[Image.Image], Any] | None = None) -> Image.Image:
    """Decode an image file (path or binary file object) fully and turn it upright from its EXIF orientation.

    ``prepare`` runs on the opened image before its pixels are decoded (JPEG draft mode). Every failure
    (empty file, not an image, truncated or damaged data, more pixels than Pillow's decompression-bomb
    limit ``PIL.Image.MAX_IMAGE_PIXELS``) is an :class:`~ijepa_hub.errors.ImageReadError` naming the file
    and the fix. Animated images give their first frame.
    """
    name = _describe(source)
    try:
        with Image.open(source) as image:
            if prepare is not None:
                prepare(image)
            image.load()
            return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"{name}: refused to decode: {err} Fix: if you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS "
            f"(now {Image.MAX_IMAGE_PIXELS}), or downscale the image.",
            path=name,
        ) from err
    except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError, struct.error ... on bad data
        empty = isinstance(source, (str, os.PathLike)) and os.path.isfile(source) and os.path.getsize(source) == 0
        reason = "the file is empty (0 bytes)" if empty else f"{type(err).__name__}: {err}"
        raise ImageReadError(
            f"{name}: cannot decode the image ({reason}). Fix: the file is damaged, truncated or not an image; "
            "download or re-encode it, or remove it from the input.",
            path=name,
        ) from err


_PLAIN_MODES = ("L", "1", "CMYK", "YCbCr", "LAB", "HSV")  # no alpha, 8 bits: Pillow's conversion is exact


def to_rgb(image: Image.Image) -> Image.Image:
    """An upright image as 8-bit RGB with :func:`load_image`'s conventions (for the training transform).

    Alpha (RGBA, LA, palettes with transparency) is composited onto white and 16-bit or float
    greyscale is scaled from its full range, as :func:`load_image` does (rounded to 8 bits); Pillow's
    plain ``convert("RGB")`` would drop the alpha and clip 16-bit values at 255.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _PLAIN_MODES or (image.mode == "P" and "transparency" not in image.info):
        return image.convert("RGB")
    pixels = load_image(image).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).numpy())


def load_image(image: ImageInput) -> torch.Tensor:
    """Any supported input as a float32 RGB tensor [3, H, W] in [0, 1].

    Paths are read with :func:`open_image` (errors name the file). Paths and PIL images are turned
    upright from their EXIF orientation; animated images give their first frame; greyscale is repeated to
    three channels; an alpha channel is composited onto white; uint8 is divided by 255 and uint16 by
    65535; float arrays and tensors are taken as already in [0, 1]. Arrays are HWC (or HW); tensors
    are CHW (or HW).
    """
    source = type(image).__name__
    if isinstance(image, (str, os.PathLike)):
        source = os.fspath(image)
        array = _pil_to_array(open_image(source))
    elif isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = image
    elif isinstance(image, torch.Tensor):
        if image.dim() == 3:
            image = image.permute(1, 2, 0)
        elif image.dim() != 2:
            raise ValueError(f"an image tensor is CHW or HW, got shape {tuple(image.shape)}")
        array = image.detach().cpu().numpy()
    else:
        raise TypeError(f"cannot read an image from {source}; give a path, PIL image, numpy array or tensor")
    pixels = _scale_to_unit(np.asarray(array), source)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{source}: expected an HxW or HxWxC image with C in 1..4, got shape {pixels.shape}")
    if pixels.shape[2] in (2, 4):  # composite the alpha channel onto white
        alpha = pixels[:, :, -1:]
        pixels = pixels[:, :, :-1] * alpha + (1.0 - alpha)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()


def preprocess(
    image: ImageInput,
    img_size: int,
    *,
    crop_pct: float = CROP_PCT,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """One image as the normalised [3, img_size, img_size] tensor the encoder expects (see module doc)."""
    pixels = load_image(image)
    transform = v2.Compose([
        v2.Resize(math.floor(img_size / crop_pct), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(img_size),
    ])
    pixels = transform(pixels).clamp_(0.0, 1.0)
    return v2.functional.normalize(pixels, list(mean), list(std))


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return list(images.unbind(0))
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def extract_features(
    encoder: nn.Module,
    images: ImageInput | Sequence[ImageInput],
    *,
    img_size: int | None = None,
    batch_size: int = 32,
    layers: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    preprocessed: bool = False,
    crop_pct: float = CROP_PCT,
    progress: bool = False,
) -> Features:
    """Run ``encoder`` (a :class:`~ijepa_hub.VisionTransformerEncoder`, or a whole :class:`~ijepa_hub.IJepa`
    / :class:`~ijepa_hub.PretrainedIJepa`: its feature encoder ``model.encoder``) on images, in batches.

    ``images``: one image or a list (paths, PIL images, HWC numpy arrays, CHW tensors) or a batched
    NCHW tensor / NHWC array. ``img_size`` defaults to the encoder's native size. ``layers=4`` gives the
    paper's linear-probe feature. ``device`` moves the encoder there (default: where it is); ``dtype``
    is the autocast type (default bf16 on CUDA, float32 elsewhere). ``preprocessed=True`` takes
    ``images`` as already normalised [B, 3, H, W] tensors; ``crop_pct=1.0`` keeps the whole image (resize
    without a crop: for counting, where a crop would cut objects off); ``progress`` shows a bar over batches.
    """
    if isinstance(encoder, IJepa):
        encoder = encoder.encoder
    if layers < 1 or layers > len(encoder.blocks):
        raise ValueError(f"layers must be in 1..{len(encoder.blocks)}, got {layers}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if device is not None:
        encoder.to(device)
    device = next(encoder.parameters()).device
    size = img_size or encoder.patch_embed.img_size[0]
    was_training = encoder.training
    encoder.eval()
    items = _as_list(images)
    pooled, tokens = [], []
    try:
        for start in tqdm(range(0, len(items), batch_size), desc="batches", unit="batch", disable=not progress):
            chunk = items[start : start + batch_size]
            if preprocessed:
                batch = torch.stack([torch.as_tensor(x) for x in chunk])
            else:
                batch = torch.stack([preprocess(x, size, crop_pct=crop_pct) for x in chunk])
            batch = batch.to(device=device, dtype=next(encoder.parameters()).dtype)
            with _autocast(device, dtype):
                blocks = encoder.forward_intermediates(
                    batch, indices=layers, norm=True, output_fmt="NLC", intermediates_only=True
                )
            pooled.append(torch.cat([b.mean(dim=1) for b in blocks], dim=-1).float().cpu())
            tokens.append(blocks[-1].float().cpu())
    finally:
        encoder.train(was_training)
    return Features(pooled=torch.cat(pooled), patch_tokens=torch.cat(tokens))


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files under ``folder`` (recursive, sorted; any extension PIL can open)."""
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no image folder at {root!r}")
    suffixes = {ext.lower() for ext in Image.registered_extensions()}
    found = [
        os.path.join(d, f) for d, _, names in os.walk(root) for f in names if os.path.splitext(f)[1].lower() in suffixes
    ]
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(sorted(suffixes)[:8])}, ...) under {root!r}")
    return sorted(found)


def extract_folder(encoder: nn.Module, folder: str | os.PathLike, **kwargs) -> tuple[list[str], Features]:
    """Features of every image under ``folder``; returns the paths (relative, sorted) and the features."""
    paths = list_images(folder)
    feats = extract_features(encoder, paths, **kwargs)
    return [os.path.relpath(p, folder) for p in paths], feats
