"""The released I-JEPA training checkpoints (``.pth.tar``): reading, architecture inference, loading."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from .errors import CheckpointError
from .limits import check_block_indices, check_declared_size
from .models.ijepa import IJepa
from .registry import ARCHITECTURES, ModelConfig, architecture_for_width, default_predictor, mlp_ratio_for
from .released import reference_checkpoint_path
from .state_dict import check_tensor_dict, load_strict, read_torch_pickle, strip_prefix

__all__ = ["read_reference_checkpoint", "infer_model_config", "load_reference_checkpoint", "refuse_exported"]

StateDict = dict[str, torch.Tensor]
_MODEL_KEYS = ("encoder", "target_encoder", "predictor")


# what ijepa_hub.deploy writes (deploy sits above the hub): a runtime's program, not weights to load
_EXPORTED = {".onnx": ("an exported ONNX model", "onnxruntime"), ".pt2": ("a torch.export program", "torch.export.load")}


def refuse_exported(s: str | os.PathLike) -> None:
    """An exported model (a ``.onnx`` / ``.pt2`` file, or the folder an export wrote) named as a source is
    refused by what it is; read as a checkpoint it would fail as "objects other than tensors"."""
    s = os.fspath(s)
    files = [s] if os.path.isfile(s) else []
    if os.path.isdir(s) and not os.path.exists(os.path.join(s, "config.json")):
        files = [os.path.join(s, f"model{suffix}") for suffix in _EXPORTED]
    for path in files:
        suffix = os.path.splitext(path)[1].lower()
        if suffix in _EXPORTED and os.path.isfile(path):
            what, runtime = _EXPORTED[suffix]
            raise CheckpointError(
                f"{path} is {what}, not a checkpoint: it cannot be loaded as a model or trained further. Fix: run it "
                f"with {runtime} (ijepa_hub.deploy.run_exported), or load the model it was exported from."
            )


def read_reference_checkpoint(path: str | os.PathLike) -> dict[str, StateDict]:
    """The ``encoder``, ``target_encoder`` and ``predictor`` state dicts of a released checkpoint.

    Read with ``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary
    pickled objects. ``module.`` prefixes are stripped. Optimiser state and the rest are dropped.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    refuse_exported(path)
    blob = read_torch_pickle(path, fix="Download the checkpoint again.")
    if not isinstance(blob, Mapping) or any(k not in blob for k in _MODEL_KEYS):
        found = sorted(map(str, blob))[:12] if isinstance(blob, Mapping) else type(blob).__name__
        raise CheckpointError(
            f"{path}: not a released I-JEPA training checkpoint: expected a dict with the state dicts "
            f"{list(_MODEL_KEYS)}, found {found}"
        )
    out = {}
    for key in _MODEL_KEYS:
        if not isinstance(blob[key], Mapping):
            raise CheckpointError(f"{path}: '{key}' is a {type(blob[key]).__name__}, not a state dict")
        out[key] = strip_prefix(check_tensor_dict(blob[key], source=path, what=f"'{key}'"))
        check_block_indices(out[key], "predictor_blocks" if key == "predictor" else "blocks", source=path)
    return out


def _block_count(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    ids = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    return max(ids) + 1 if ids else 0


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, ndim: int, *, source: str, what: str) -> tuple[int, ...]:
    """The shape of ``state_dict[key]``, which the architecture is read from: a tensor of ``ndim`` dimensions."""
    if key not in state_dict:
        raise CheckpointError(f"{source}: {what} has no {key!r}; is this an I-JEPA / ViT encoder?")
    value = state_dict[key]
    if not torch.is_tensor(value) or value.dim() != ndim:
        found = f"a {value.dim()}-D tensor {tuple(value.shape)}" if torch.is_tensor(value) else f"a {type(value).__name__}"
        raise CheckpointError(
            f"{source}: {what} {key!r} is {found}, not the {ndim}-D tensor a ViT stores there; the file is "
            "damaged or was edited. Fix: download it again."
        )
    return tuple(value.shape)


def infer_model_config(
    encoder: Mapping[str, torch.Tensor],
    predictor: Mapping[str, torch.Tensor] | None = None,
    *,
    source: str = "checkpoint",
    num_heads: int | None = None,
    pred_num_heads: int | None = None,
) -> ModelConfig:
    """The architecture of released-layout weights, read from their tensor shapes.

    Widths, depths, MLP size, patch and image size are in the shapes; head counts are not. They come
    from ``num_heads`` / ``pred_num_heads`` when given, else from the preset of the same width (the
    predictor uses the encoder's count, as released); an unknown width without ``num_heads`` is an error.
    """
    _, num_patches, width = _shape(encoder, "pos_embed", 3, source=source, what="encoder")
    _, in_chans, patch, _ = _shape(encoder, "patch_embed.proj.weight", 4, source=source, what="encoder")
    mlp_hidden = _shape(encoder, "blocks.0.mlp.fc1.weight", 2, source=source, what="encoder")[0]
    grid = round(num_patches**0.5)
    if grid * grid != num_patches:
        raise CheckpointError(f"{source}: pos_embed has {num_patches} positions, not a square grid")
    if num_heads is None:
        arch = architecture_for_width(width)
        if arch is None:
            raise CheckpointError(
                f"{source}: an encoder of width {width} matches no preset ({', '.join(ARCHITECTURES)}), and head "
                f"counts are not stored in the weights. Fix: pass num_heads= (a divisor of {width})."
            )
        num_heads = ARCHITECTURES[arch].num_heads
    sizes: dict = dict(
        embed_dim=width, depth=_block_count(encoder, "blocks"), num_heads=num_heads,
        mlp_ratio=mlp_ratio_for(width, mlp_hidden), patch_size=patch, img_size=grid * patch, in_chans=in_chans,
    )
    if predictor is not None:
        sizes["pred_embed_dim"] = _shape(predictor, "predictor_embed.weight", 2, source=source, what="predictor")[0]
        sizes["pred_depth"] = _block_count(predictor, "predictor_blocks")
        sizes["pred_num_heads"] = pred_num_heads
    else:
        sizes["pred_embed_dim"], sizes["pred_depth"] = default_predictor(width, num_heads)
    try:
        return ModelConfig(**sizes)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from None


def load_reference_checkpoint(
    name_or_path: str | os.PathLike,
    *,
    local_files_only: bool = False,
    num_heads: int | None = None,
    pred_num_heads: int | None = None,
    **model_kwargs,
) -> IJepa:
    """Build an :class:`IJepa` from a released-layout checkpoint and load all three networks strictly.

    ``name_or_path``: a ``.pth.tar`` file, its URL, a released file name (``IN1K-vit.h.14-300e.pth.tar``),
    a variant name (``ijepa_vith14_1k``) or alias; downloads go through the same torch hub cache as
    :func:`ijepa_hub.from_pretrained` (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``: cache only).
    The model records ``variant`` when the file is a released one. ``num_heads`` / ``pred_num_heads``:
    needed only for widths that match no preset (see :func:`infer_model_config`). ``model_kwargs`` go to
    :class:`IJepa`.
    """
    path, variant = reference_checkpoint_path(name_or_path, local_files_only=local_files_only)
    source = os.fspath(path)
    parts = read_reference_checkpoint(source)
    config = infer_model_config(
        parts["encoder"], parts["predictor"], source=source, num_heads=num_heads, pred_num_heads=pred_num_heads
    )
    check_declared_size(config, source=source)
    model = IJepa(config, **model_kwargs)
    load_strict(model.context_encoder, parts["encoder"], source=source, what="encoder")
    load_strict(model.target_encoder, parts["target_encoder"], source=source, what="target_encoder")
    load_strict(model.predictor, parts["predictor"], source=source, what="predictor")
    model.variant, model.source = (variant.name if variant else None), source
    return model
