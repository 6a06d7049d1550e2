"""The one autocast policy: which precision a model runs in on a device, for training and extraction.

``auto`` means bf16 autocast on CUDA and fp32 (no autocast) elsewhere: bf16 needs no loss scaling and
CPU autocast is slower than fp32 on most CPUs.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

__all__ = ["Precision", "resolve_precision", "autocast_context"]

Precision = Literal["auto", "bf16", "fp16", "fp32"] | torch.dtype

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_precision(precision: Precision, device: torch.device | str) -> torch.dtype:
    """The compute dtype of ``precision`` on ``device`` (``auto``: bf16 on CUDA, fp32 elsewhere)."""
    if isinstance(precision, torch.dtype):
        return precision
    if precision == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; use one of auto, {', '.join(_DTYPES)} or a torch dtype")
    return _DTYPES[precision]


def autocast_context(device: torch.device | str, precision: Precision = "auto") -> AbstractContextManager:
    """``torch.autocast`` to the resolved dtype on ``device``, or a no-op context for fp32."""
    dtype = resolve_precision(precision, device)
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
