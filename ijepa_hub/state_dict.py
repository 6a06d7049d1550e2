"""State-dict helpers shared by every loader: reading weight files, prefix stripping and strict loading."""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import CheckpointError, StateDictMismatchError
from .limits import check_tensor_extents, check_zip_inflation

__all__ = [
    "strip_prefix", "load_strict", "nonfinite_keys", "read_safetensors", "read_torch_pickle", "check_tensor_dict",
    "FLOAT8_DTYPES",
]

logger = logging.getLogger(__name__)

# 8-bit floats: quantised storage, not weights to compute with; torch cannot even test them for NaN on the CPU
FLOAT8_DTYPES = frozenset(
    getattr(torch, name) for name in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
                                      "float8_e8m0fnu") if hasattr(torch, name)
)


def read_safetensors(path: str | os.PathLike, *, source: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or a :class:`CheckpointError` naming it (truncated, not safetensors)."""
    try:
        return load_file(os.fspath(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{source or path}: {path} is not a readable safetensors file ({type(err).__name__}: {err}); it is "
            "truncated or damaged. Fix: download it again (delete it from the cache first) or re-save the "
            "model with ijepa_hub.save_pretrained."
        ) from err


def read_torch_pickle(path: str | os.PathLike, *, fix: str) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, with errors that say what went wrong.

    A pickle that holds anything but tensors and plain containers is refused before any of its code
    runs; a truncated or foreign file is reported as damaged. ``fix`` ends the damaged-file message.
    Bounded (:mod:`ijepa_hub.limits`): an archive that inflates far beyond its size, and tensors that
    declare more than they store (zero strides), are refused.
    """
    check_zip_inflation(path)
    try:
        loaded = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to unpickle: it holds objects other than tensors and plain containers "
            f"(torch.load(weights_only=True) said: {str(err).splitlines()[0]}). ijepa_hub never executes "
            "pickled code; re-save the file with only tensors, or convert it where you trust it."
        ) from err
    except Exception as err:  # torch raises RuntimeError, EOFError, OSError, ... for truncated or foreign files
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {str(err).splitlines()[0]}); "
            f"it is damaged or truncated. {fix}"
        ) from err
    check_tensor_extents(loaded, source=os.fspath(path))
    return loaded


def nonfinite_keys(state_dict: Mapping[str, Any]) -> list[str]:
    """Keys of the floating-point tensors that hold a NaN or an infinity."""
    return [
        k for k, v in state_dict.items()
        if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]


def check_tensor_dict(state_dict: Any, *, source: str, what: str) -> Mapping[str, torch.Tensor]:
    """``state_dict`` itself once it is a mapping of string keys to tensors; else a :class:`CheckpointError`
    naming the first entries that are not (a damaged or hand-edited file holding an int where a tensor belongs)."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f"{source}: the {what} weights are a {type(state_dict).__name__}, not a mapping of names to tensors; "
            "the file is damaged or not a checkpoint of this model. Fix: download or re-save it."
        )
    bad = [f"{k!r} ({type(v).__name__})" for k, v in state_dict.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(
            f"{source}: the {what} weights hold {len(bad)} entr{'y that is' if len(bad) == 1 else 'ies that are'} "
            f"not a tensor under a string name: {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}; the file is damaged "
            "or was edited. Fix: download or re-save it."
        )
    return state_dict


def _float8_keys(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    return [f"{k} ({v.dtype})" for k, v in state_dict.items() if v.dtype in FLOAT8_DTYPES]


def _cast_floats(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], *, source: str, what: str
) -> dict[str, torch.Tensor]:
    """Floating-point weights stored in another float dtype (fp16, bf16, fp64) cast to the model's, as timm and
    transformers do, with one log line; a mixed-dtype model would fail in its first matmul."""
    out, cast = dict(state_dict), set()
    for k, v in state_dict.items():
        want = expected[k].dtype
        if v.is_floating_point() and want.is_floating_point and v.dtype != want:
            out[k] = v.to(want)
            cast.add(str(v.dtype).replace("torch.", ""))
    if cast:
        logger.info("%s: the %s weights are stored as %s; cast to %s", source, what, ", ".join(sorted(cast)),
                    str(next(iter(expected.values())).dtype).replace("torch.", ""))
    return out


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove ``prefix`` (DDP's ``module.`` by default) from every key that has it."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str, what: str) -> None:
    """Load every tensor or fail with a :class:`StateDictMismatchError` that lists the differences.

    Shapes must match, floating-point parameters must come as floating-point tensors, and every value
    must be finite (NaN or inf weights, e.g. from a diverged run, are a :class:`CheckpointError`).
    Weights in another float dtype (fp16, bf16, fp64) are cast to the model's; 8-bit floats are refused.
    ``source`` (a file or repo) and ``what`` (``"target encoder"``...) name the weights in the message.
    """
    check_tensor_dict(state_dict, source=source, what=what)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    common = sorted(set(expected) & set(state_dict))
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in common
        if tuple(expected[k].shape) != tuple(state_dict[k].shape)
    ] + [
        f"{k}: file dtype {state_dict[k].dtype} vs model {expected[k].dtype}"
        for k in common
        if expected[k].is_floating_point() and not state_dict[k].is_floating_point()
    ]
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(source, what, missing, unexpected, mismatched)
    float8 = _float8_keys(state_dict)
    if float8:
        raise CheckpointError(
            f"{source}: the {what} weights are stored as 8-bit floats ({', '.join(float8[:3])}"
            f"{', ...' if len(float8) > 3 else ''}), a quantised format ijepa_hub does not load. Fix: save them in "
            "float32, bfloat16 or float16 (e.g. {k: v.float() for k, v in weights.items()})."
        )
    state_dict = _cast_floats(state_dict, expected, source=source, what=what)
    bad = nonfinite_keys(state_dict)
    if bad:
        raise CheckpointError(
            f"{source}: the {what} weights hold NaN or infinite values in {len(bad)} tensor(s): "
            f"{', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}. They come from a diverged or damaged run. "
            "Fix: use an earlier checkpoint or re-download the weights."
        )
    module.load_state_dict(state_dict, strict=True, assign=_is_meta(module))


def _is_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in module.state_dict().values())
