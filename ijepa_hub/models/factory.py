"""``create_model``: an IJepa from a registry name and size overrides."""
from __future__ import annotations

from typing import Any

from ..registry import get_model_config
from .ijepa import IJepa, LossKind

__all__ = ["create_model"]


def create_model(
    name: str,
    *,
    drop_path_rate: float = 0.0,
    loss: LossKind = "smooth_l1",
    with_predictor: bool = True,
    **overrides: Any,
) -> IJepa:
    """A randomly initialised I-JEPA model (context encoder, target encoder, predictor).

    ``name`` is ``vit_<size>_patch<p>`` (see :func:`ijepa_hub.list_models`; any patch size) or a released
    variant (``ijepa_vith14_1k``: its architecture only; use ``from_pretrained`` for weights).
    ``overrides`` set any :class:`~ijepa_hub.ModelConfig` field (``img_size=64``, ``depth=6``,
    ``embed_dim=256, num_heads=4``...), the same keys as a recipe's ``model:`` section. Build on the
    ``meta`` device with ``with torch.device("meta"):`` to inspect shapes without memory.
    """
    config = get_model_config(name, **overrides)
    return IJepa(config, loss=loss, drop_path_rate=drop_path_rate, with_predictor=with_predictor)
