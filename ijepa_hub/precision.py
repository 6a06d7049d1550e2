"""The one autocast policy: which precision a model runs in on a device, for training and extraction.

``auto`` means bf16 autocast on CUDA and fp32 (no autocast) elsewhere: bf16 needs no loss scaling and
CPU autocast is slower than fp32 on CPUs without native bf16 arithmetic. Whether this CPU has it
(AVX512-BF16 or AMX) is :func:`cpu_native_bf16`; callers that measured bf16 to pay off on such CPUs
opt in through it: feature extraction does (:func:`extraction_dtype`), the trainer's ``auto`` does not.
"""
from __future__ import annotations

import functools
import logging
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

__all__ = ["Precision", "resolve_precision", "extraction_dtype", "autocast_context", "cpu_native_bf16", "cpu_flags"]

logger = logging.getLogger("ijepa_hub.precision")

Precision = Literal["auto", "bf16", "fp16", "fp32"] | torch.dtype

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# CPU feature flags (as /proc/cpuinfo spells them) that give native bf16 dot products
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (Linux ``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_native_bf16() -> bool:
    """True when this CPU computes bf16 dot products natively (AVX512-BF16 or AMX-BF16).

    ``IJEPA_HUB_CPU_BF16=0`` / ``=1`` overrides the detection (for tests and for CPUs the flags misreport).
    """
    forced = os.environ.get("IJEPA_HUB_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


def resolve_precision(precision: Precision, device: torch.device | str) -> torch.dtype:
    """The compute dtype of ``precision`` on ``device`` (``auto``: bf16 on CUDA, fp32 elsewhere)."""
    if isinstance(precision, torch.dtype):
        return precision
    if precision == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; use one of auto, {', '.join(_DTYPES)} or a torch dtype")
    return _DTYPES[precision]


_ANNOUNCED: set[tuple[str, torch.dtype]] = set()  # (device type, dtype) choices already logged


def extraction_dtype(dtype: Precision | None, device: torch.device | str) -> torch.dtype:
    """The compute dtype feature extraction runs in on ``device``.

    ``auto`` (or None): bf16 autocast on CUDA and on CPUs with native bf16 dot products
    (:func:`cpu_native_bf16`; see docs/performance.md for the speed and accuracy cost), fp32
    elsewhere; the choice and its reason are logged once per device type. Any other value is
    :func:`resolve_precision`'s. Unlike :func:`resolve_precision`, whose ``auto`` the trainer also reads,
    this picks bf16 on CPU.
    """
    device = torch.device(device)
    if dtype is not None and dtype != "auto":
        return resolve_precision(dtype, device)
    if device.type == "cuda":
        chosen, why = torch.bfloat16, "CUDA"
    elif device.type == "cpu" and cpu_native_bf16():
        chosen, why = torch.bfloat16, "this CPU has native bf16 dot products (avx512_bf16 / amx_bf16)"
    else:
        chosen, why = torch.float32, f"{device.type} without native bf16 arithmetic"
    if (device.type, chosen) not in _ANNOUNCED:
        _ANNOUNCED.add((device.type, chosen))
        logger.info("feature extraction on %s runs in %s: %s (dtype='fp32' or 'bf16' forces either)",
                    device.type, str(chosen).removeprefix("torch."), why)
    return chosen


def autocast_context(device: torch.device | str, precision: Precision = "auto") -> AbstractContextManager:
    """``torch.autocast`` to the resolved dtype on ``device``, or a no-op context for fp32."""
    dtype = resolve_precision(precision, device)
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
