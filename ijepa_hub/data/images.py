"""Image files in, float RGB pixels out: the one reader that training and feature extraction share.

:func:`open_image` decodes a file (upright from EXIF, errors naming it); :func:`load_image` turns any
input (path, PIL image, numpy array, tensor) into a float32 RGB tensor in [0, 1]; :func:`to_rgb` gives the
training transform the same pixels as 8-bit RGB; :func:`list_images` is the one rule for which files in a
folder are images (used by feature extraction, ``ImageFolder`` and the evaluation splits).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import ImageReadError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInput",
    "is_image_file",
    "list_images",
    "open_image",
    "to_rgb",
    "load_image",
]

# Lower-case suffixes of the formats Pillow decodes that image datasets use. A fixed list rather than
# Pillow's registered extensions: those include write-only formats (.pdf) and formats no dataset ships
# (.ps, .icns, .xbm). The order is the preference among the members of one sample in a .tar shard.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


def is_image_file(name: str | os.PathLike) -> bool:
    """The one extension rule: a known image suffix in any case (``.JPG``), and not a hidden file.

    Hidden files are skipped because the common ones beside images are not images: macOS writes
    ``._photo.jpg`` resource forks next to every file it copies to a foreign drive.
    """
    base = os.path.basename(os.fspath(name))
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike, *, hint: str = "") -> list[str]:
    """Image files under ``folder`` (any depth, hidden folders skipped), sorted by path components.

    Only regular files (or links to them) count: a FIFO, socket or device with an image name is skipped.

    Raises ``FileNotFoundError`` when ``folder`` is not a directory or holds no image; ``hint`` is
    appended to that message (what to pass instead).
    """
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no image folder at {root!r}{hint}")
    found, folders = [], [root]
    while folders:  # os.scandir's entries know their type: regular files only (a FIFO named x.png would hang a read)
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir() and not entry.name.startswith("."):
                    folders.append(entry.path)
                elif is_image_file(entry.name) and entry.is_file():
                    found.append(entry.path)
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root!r}{hint}")
    return sorted(found, key=lambda p: Path(p).parts)


_FLOAT_SLACK = 1e-3  # rounding from resampling or colour conversion


def _scale_to_unit(array: np.ndarray, source: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        pixels = array.astype(np.float32)
        low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
        if not (-_FLOAT_SLACK <= low and high <= 1.0 + _FLOAT_SLACK):  # NaN fails too
            raise ValueError(
                f"{source}: float pixels are read as values in [0, 1], these span [{low:g}, {high:g}]. Fix: divide "
                "by 255 (or pass uint8) for 0-255 values; pass images before normalisation, not after."
            )
        return pixels
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

    Paths and binary file objects are read with :func:`open_image` (errors name the file). Files and PIL
    images are turned upright from their EXIF orientation; animated images give their first frame; greyscale is repeated to
    three channels; an alpha channel is composited onto white; uint8 is divided by 255 and uint16 by
    65535; float arrays and tensors are taken as already in [0, 1] (outside it, a ValueError says so). Arrays are HWC (or HW); tensors
    are CHW (or HW).
    """
    source = type(image).__name__
    if isinstance(image, (str, os.PathLike)):
        source = os.fspath(image)
        array = _pil_to_array(open_image(source))
    elif hasattr(image, "read"):  # a binary file object (a Hugging Face dataset's image bytes)
        source = _describe(image)
        image.seek(0)
        array = _pil_to_array(open_image(image))
    elif isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = image
    elif isinstance(image, torch.Tensor):
        if image.dim() == 3:
            image = image.permute(1, 2, 0)
        elif image.dim() != 2:
            raise ValueError(f"an image tensor is CHW or HW, got shape {tuple(image.shape)}")
        image = image.detach().cpu()
        array = (image.float() if image.dtype in (torch.bfloat16, torch.float16) else image).numpy()  # numpy has no bf16
    else:
        raise TypeError(f"cannot read an image from {source}; give a path, PIL image, numpy array or tensor")
    pixels = _scale_to_unit(np.asarray(array), source)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{source}: expected an HxW or HxWxC image with C in 1..4, got shape {pixels.shape}")
    if not pixels.shape[0] or not pixels.shape[1]:
        raise ValueError(f"{source}: the image is empty ({pixels.shape[0]}x{pixels.shape[1]} pixels). Fix: leave it out.")
    if pixels.shape[2] in (2, 4):  # composite the alpha channel onto white
        alpha = pixels[:, :, -1:]
        pixels = pixels[:, :, :-1] * alpha + (1.0 - alpha)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()
