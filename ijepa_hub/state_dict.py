"""State-dict helpers shared by every loader: prefix stripping and strict loading."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from .errors import StateDictMismatchError

__all__ = ["strip_prefix", "load_strict"]


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove ``prefix`` (DDP's ``module.`` by default) from every key that has it."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str, what: str) -> None:
    """Load every tensor or fail with a :class:`StateDictMismatchError` that lists the differences.

    ``source`` (a file or repo) and ``what`` (``"target encoder"``...) name the weights in the message.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(expected[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(source, what, missing, unexpected, mismatched)
    module.load_state_dict(state_dict, strict=True, assign=_is_meta(module))


def _is_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in module.state_dict().values())
