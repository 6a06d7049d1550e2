"""Key layouts: transformers' ``IJepaModel`` <-> released / timm, and released ``.pth.tar`` -> folder.

The encoder state dict of the released checkpoints uses timm's names; transformers renames every
module and splits the fused ``qkv`` projection into ``query``/``key``/``value``. The mapping is exact
(same tensors, same maths), so converted models agree to float rounding.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..registry import ModelConfig, default_predictor, mlp_ratio_for

__all__ = [
    "timm_to_transformers",
    "transformers_to_timm",
    "transformers_config",
    "model_config_from_transformers",
    "is_transformers_config",
]

StateDict = dict[str, torch.Tensor]

# released/timm name -> transformers name, per block ("{}" is the block index)
_BLOCK_RENAMES = {
    "norm1": "layernorm_before",
    "attn.proj": "attention.output.dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_TOP_RENAMES = {
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_QKV = ("query", "key", "value")
_TRANSFORMERS_PREFIX = "ijepa."  # IJepaForImageClassification and friends nest the encoder here


def timm_to_transformers(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """An encoder state dict in the released / timm layout, renamed for ``transformers.IJepaModel``."""
    out: StateDict = {}
    block = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")
    for key, value in state_dict.items():
        if key in _TOP_RENAMES:
            out[_TOP_RENAMES[key]] = value
            continue
        m = block.match(key)
        if not m:
            raise CheckpointError(f"encoder key {key!r} has no transformers equivalent; is this an I-JEPA encoder?")
        index, name, kind = m.groups()
        prefix = f"encoder.layer.{index}."
        if name == "attn.qkv":
            for part, chunk in zip(_QKV, value.chunk(3, dim=0)):
                out[f"{prefix}attention.attention.{part}.{kind}"] = chunk.contiguous()
        elif name in _BLOCK_RENAMES:
            out[f"{prefix}{_BLOCK_RENAMES[name]}.{kind}"] = value
        else:
            raise CheckpointError(f"encoder key {key!r} has no transformers equivalent")
    return out


def transformers_to_timm(state_dict: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> StateDict:
    """A ``transformers.IJepaModel`` state dict in the released / timm layout (inverse of the above).

    Keys under ``ijepa.`` (classification models) are accepted; a pooler or classifier is an error.
    """
    sd = {(k[len(_TRANSFORMERS_PREFIX):] if k.startswith(_TRANSFORMERS_PREFIX) else k): v for k, v in state_dict.items()}
    top = {v: k for k, v in _TOP_RENAMES.items()}
    blocks = {v: k for k, v in _BLOCK_RENAMES.items()}
    layer = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in sd.items():
        if key in top:
            out[top[key]] = value
            continue
        m = layer.match(key)
        if m and m.group(2) in blocks:
            out[f"blocks.{m.group(1)}.{blocks[m.group(2)]}.{m.group(3)}"] = value
        elif m and m.group(2).startswith("attention.attention.") and m.group(2).rsplit(".", 1)[-1] in _QKV:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2).rsplit(".", 1)[-1]] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{source}: transformers keys with no I-JEPA encoder equivalent: {', '.join(sorted(unknown)[:10])}. "
            "Only IJepaModel without pooler or classifier can be converted."
        )
    for (index, kind), parts in qkv.items():
        if set(parts) != set(_QKV):
            raise CheckpointError(f"{source}: layer {index} lacks {sorted(set(_QKV) - set(parts))} {kind}")
        out[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat([parts[p] for p in _QKV], dim=0)
    return out


def is_transformers_config(data: Mapping[str, Any]) -> bool:
    return data.get("model_type") == "ijepa"


def model_config_from_transformers(data: Mapping[str, Any], *, source: str) -> ModelConfig:
    """The :class:`ModelConfig` of a transformers ``IJepaConfig`` dict, any size.

    transformers stores no predictor: its size is the preset's for a known width, else
    :func:`~ijepa_hub.registry.default_predictor` (it only matters if the model is trained further).
    """
    try:
        width, depth, heads = (int(data[k]) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads"))
        hidden = int(data.get("intermediate_size", 4 * width))
        pred_width, pred_depth = default_predictor(width, heads)
        return ModelConfig(
            embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=mlp_ratio_for(width, hidden),
            patch_size=int(data.get("patch_size", 16)), img_size=int(data.get("image_size", 224)),
            in_chans=int(data.get("num_channels", 3)), pred_embed_dim=pred_width, pred_depth=pred_depth,
        )
    except (KeyError, ValueError, TypeError, ZeroDivisionError) as err:
        raise CheckpointError(f"{source}: cannot read the transformers IJepaConfig ({type(err).__name__}: {err})") from None


def transformers_config(config: ModelConfig) -> dict[str, Any]:
    """A ``config.json`` dict that ``transformers.IJepaModel.from_pretrained`` reads."""
    return {
        "architectures": ["IJepaModel"],
        "model_type": "ijepa",
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.mlp_hidden_dim,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-6,
        "image_size": config.img_size,
        "patch_size": config.patch_size,
        "num_channels": config.in_chans,
        "qkv_bias": True,
        "torch_dtype": "float32",
    }
