"""The model a fine-tuning run starts from: a pretrained (or freshly initialised) encoder plus a new head."""
from __future__ import annotations

import os

import torch

from ..errors import RecipeError
from ..models.classifier import Classifier
from ..registry import _NAME, VARIANTS, get_model_config, resolve_alias
from ..state_dict import load_strict
from .recipe import FtModelSection

__all__ = ["is_random_init", "build_classifier"]


def is_random_init(source: str) -> bool:
    """True for ``vit_<size>_patch<p>``: an architecture name, fine-tuned from random initialisation."""
    return not os.path.exists(source) and resolve_alias(source) not in VARIANTS and bool(_NAME.match(source))


def build_classifier(model: FtModelSection, label_names: list[str], *, crop_pct: float) -> Classifier:
    """The encoder ``model.source`` names (its ``model.encoder``) with a new head for ``label_names``.

    A source at another ``img_size`` keeps its weights; the fixed sin-cos position table is rebuilt for
    the new grid. The head is initialised from the torch RNG (seed it first for a reproducible run).
    """
    drop_path = model.drop_path_rate if model.mode == "full" else 0.0
    if is_random_init(model.source):
        sizes = {k: getattr(model, k) for k in ("img_size", "depth") if getattr(model, k)}
        config, weights = get_model_config(model.source, **sizes), None
    else:
        if model.depth is not None:
            raise RecipeError(f"model.depth applies to a random initialisation only; {model.source!r} has its own depth. "
                              "Fix: leave model.depth null")
        from ..hub.load import from_pretrained

        pretrained = from_pretrained(model.source, encoder=model.encoder)
        encoder = pretrained if isinstance(pretrained, Classifier) else pretrained.encoder
        config = pretrained.config.replace(img_size=model.img_size) if model.img_size else pretrained.config
        weights = {k: v for k, v in encoder.state_dict().items() if not k.startswith("head.")}
        if config.img_size != pretrained.config.img_size:
            weights.pop("pos_embed", None)
    clf = Classifier(config, label_names, drop_path_rate=drop_path, head_init_std=model.head_init_std,
                     crop_pct=crop_pct)
    if weights is not None:
        own = clf.state_dict()
        weights.update({k: own[k] for k in own if k not in weights})  # the new head and a rebuilt pos_embed
        load_strict(clf, weights, source=model.source, what="encoder")
    clf.source = model.source
    if model.mode == "linear":
        clf.requires_grad_(False)
        clf.head.requires_grad_(True)
    clf.pos_embed.requires_grad_(False)
    return clf


def param_count(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
