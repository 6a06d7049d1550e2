"""Features extracted once per (model, data, options) and kept as safetensors in a cache folder.

The key hashes the model's weights (not its name: a retrained folder gets a new key), the data
fingerprint, the extraction options and where they run (device type, compute and weight dtypes: bf16
GPU features are not fp32 CPU ones), so a stale cache is never read. An unreadable cache file is
extracted again and replaced.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..features import extract_features
from ..models.extract import Quantize, compute_dtype
from ..precision import Precision

__all__ = ["default_cache_dir", "weights_digest", "cached_features", "cached_tensors", "computed_on"]

logger = logging.getLogger("ijepa_hub.eval")


def default_cache_dir() -> Path:
    """``$IJEPA_HUB_CACHE`` or ``$XDG_CACHE_HOME/ijepa_hub`` (``~/.cache/ijepa_hub``), then ``features/``."""
    base = os.environ.get("IJEPA_HUB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ijepa_hub"
    )
    return Path(base) / "features"


@torch.no_grad()
def weights_digest(module: nn.Module) -> str:
    """A SHA-256 over the module's state dict (names, shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy())
    return digest.hexdigest()


def cached_features(
    encoder: nn.Module,
    images: Sequence[Any],
    *,
    fingerprint: str,
    weights_key: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    layers: int = 1,
    crop_pct: float = 0.875,
    img_size: int | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    dtype: Precision | None = "auto",
    quantize: Quantize | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Pooled features [N, layers * D] of ``images``, read from the cache when this exact request was made before.

    ``fingerprint`` identifies ``images`` (paths with sizes and times, or a synthetic spec);
    ``weights_key`` is the encoder's :func:`weights_digest`, computed here when not given (pass it when
    calling repeatedly with one encoder: hashing a ViT-H reads 2.5 GB). ``cache_dir=None``
    uses :func:`default_cache_dir`; ``cache_dir=""`` disables the cache. ``dtype`` and ``quantize`` are
    :func:`~ijepa_hub.extract_features`'s; what they resolve to is part of the key.
    """
    options = {"layers": layers, "crop_pct": crop_pct, "img_size": img_size, "n": len(images),
               **computed_on(encoder, device, dtype=dtype, quantize=quantize)}

    def compute() -> dict[str, torch.Tensor]:
        return {"pooled": extract_features(
            encoder, list(images), layers=layers, crop_pct=crop_pct, img_size=img_size, batch_size=batch_size,
            device=device, dtype=dtype, quantize=quantize, progress=progress,
        ).pooled}

    return cached_tensors(compute, key=[weights_key or weights_digest(encoder), fingerprint, options],
                          cache_dir=cache_dir, metadata={"fingerprint": fingerprint[:200], **options},
                          shapes={"pooled": (len(images), None)})["pooled"]


def computed_on(encoder: nn.Module, device: str | torch.device | None, *, dtype: Precision | None = "auto",
                quantize: Quantize | None = None) -> dict[str, str]:
    """Where and in which dtypes features are computed: part of every cache key, since bf16 or int8 features
    differ from fp32 ones (``compute_dtype``: ``float32``, ``bfloat16``, ``float16`` or ``int8``, as
    :func:`~ijepa_hub.models.extract.compute_dtype` resolves ``dtype`` and ``quantize`` on the device)."""
    where = torch.device(device) if device is not None else next(encoder.parameters()).device
    return {"device": where.type, "compute_dtype": compute_dtype(dtype, where, quantize),
            "weights_dtype": str(next(encoder.parameters()).dtype)}


def cached_tensors(
    compute: Callable[[], dict[str, torch.Tensor]],
    *,
    key: Any,
    cache_dir: str | os.PathLike | None = None,
    metadata: dict[str, Any] | None = None,
    shapes: dict[str, tuple[int | None, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """``compute()``'s tensors, read from ``cache_dir`` when one with the same ``key`` (any JSON value: the
    weights digest, the data fingerprint and the options) was stored before, else computed and stored.

    ``cache_dir=None`` uses :func:`default_cache_dir`; ``cache_dir=""`` disables the cache. A damaged
    cache file, or one whose tensors are not the floating-point ``shapes`` (name -> sizes, None: any) that
    ``compute`` returns, is computed again and replaced, with a warning.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    path = None if cache_dir == "" else Path(cache_dir or default_cache_dir()) / f"{digest}.safetensors"
    if path is not None and path.is_file():
        try:
            stored = load_file(path)
        except (SafetensorError, OSError) as err:  # damaged: compute again and replace it
            logger.warning("feature cache %s is unreadable (%s); extracting again", path, err)
        else:
            problem = _unexpected(stored, shapes or {})
            if problem is None:
                return stored
            logger.warning("feature cache %s holds %s; extracting again", path, problem)
    tensors = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, partial,
                  metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(partial, path)  # atomic: a concurrent or killed run never leaves a partial file
    return tensors


def _unexpected(stored: dict[str, torch.Tensor], shapes: dict[str, tuple[int | None, ...]]) -> str | None:
    """What in a cache file differs from the tensors expected (``shapes``), or None."""
    for name, shape in shapes.items():
        t = stored.get(name)
        if t is None:
            return f"no {name!r} tensor"
        if not t.is_floating_point() or t.dim() != len(shape) or any(
                want is not None and got != want for got, want in zip(t.shape, shape)):
            expected = "x".join("*" if n is None else str(n) for n in shape)
            return f"{name!r} of shape {tuple(t.shape)} and dtype {t.dtype}, not a float tensor of shape {expected}"
    return None
