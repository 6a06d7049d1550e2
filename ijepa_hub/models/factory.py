"""``create_model``: an IJepa from a registry name."""
from __future__ import annotations

from ..registry import get_model_config
from .ijepa import IJepa, LossKind

__all__ = ["create_model"]


def create_model(
    name: str,
    *,
    img_size: int | None = None,
    patch_size: int | None = None,
    pred_depth: int | None = None,
    pred_embed_dim: int | None = None,
    in_chans: int | None = None,
    drop_path_rate: float = 0.0,
    loss: LossKind = "smooth_l1",
    with_predictor: bool = True,
) -> IJepa:
    """A randomly initialised I-JEPA model (context encoder, target encoder, predictor).

    ``name`` is an architecture (``vit_huge_patch14``; see :func:`ijepa_hub.list_models`) or a released
    variant (``ijepa_vith14_1k``: its architecture only; use ``from_pretrained`` for weights). Keyword
    arguments override the registry's values. Build on the ``meta`` device with
    ``with torch.device("meta"):`` to inspect shapes without memory.
    """
    config = get_model_config(
        name, img_size=img_size, patch_size=patch_size, pred_depth=pred_depth,
        pred_embed_dim=pred_embed_dim, in_chans=in_chans,
    )
    return IJepa(config, loss=loss, drop_path_rate=drop_path_rate, with_predictor=with_predictor)
