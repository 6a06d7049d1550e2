"""The model a fine-tuning run starts from: a pretrained (or freshly initialised) encoder plus a new head."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import PoolingMismatchError, RecipeError
from ..hub.load import from_pretrained
from ..models.classifier import POOLED_PARTS, Classifier, pooling_of
from ..registry import get_model_config, is_random_init
from ..state_dict import load_strict
from .recipe import FtModelSection

__all__ = ["is_random_init", "build_classifier", "check_resumed_pooling", "MODE_POOLING", "FROZEN_MODES"]

MODE_POOLING = {"full": "avg", "linear": "avg", "attentive": "map"}  # model.mode -> the classifier's global_pool
FROZEN_MODES = frozenset({"linear", "attentive"})  # the encoder does not learn (and has no drop path)


def build_classifier(model: FtModelSection, label_names: list[str], *, crop_pct: float) -> Classifier:
    """The encoder ``model.source`` names (its ``model.encoder``) with a new head for ``label_names``.

    ``model.mode``: ``full`` trains everything; ``linear`` only the head (on the mean token); ``attentive``
    only timm's attention pool (``global_pool="map"``) and the head. A source at another ``img_size`` keeps
    its weights; the fixed sin-cos position table is rebuilt for the new grid. A classifier source gives
    its encoder only: its head and attention pool are replaced by new ones. The new modules are
    initialised from the torch RNG (seed it first for a reproducible run).
    """
    drop_path = 0.0 if model.mode in FROZEN_MODES else model.drop_path_rate
    if is_random_init(model.source):
        sizes = {k: getattr(model, k) for k in ("img_size", "depth") if getattr(model, k)}
        config, weights = get_model_config(model.source, **sizes), None
    else:
        if model.depth is not None:
            raise RecipeError(f"model.depth applies to a random initialisation only; {model.source!r} has its own depth. "
                              "Fix: leave model.depth null")
        pretrained = from_pretrained(model.source, encoder=model.encoder)
        encoder = pretrained if isinstance(pretrained, Classifier) else pretrained.encoder
        config = pretrained.config.replace(img_size=model.img_size) if model.img_size else pretrained.config
        weights = {k: v for k, v in encoder.state_dict().items() if not k.startswith(POOLED_PARTS)}
        if config.img_size != pretrained.config.img_size:
            weights.pop("pos_embed", None)
    clf = Classifier(config, label_names, drop_path_rate=drop_path, head_init_std=model.head_init_std,
                     crop_pct=crop_pct, global_pool=MODE_POOLING[model.mode])
    if weights is not None:
        own = clf.state_dict()
        weights.update({k: own[k] for k in own if k not in weights})  # the new head / pool, a rebuilt pos_embed
        load_strict(clf, weights, source=model.source, what="encoder")
    clf.source = model.source
    if model.mode in FROZEN_MODES:
        clf.requires_grad_(False)
        for part in (clf.head, clf.attn_pool):
            if part is not None:
                part.requires_grad_(True)
    clf.pos_embed.requires_grad_(False)
    return clf


def check_resumed_pooling(state: Mapping[str, Any], mode: str, *, source: str) -> None:
    """Refuse, in one line, to resume a checkpoint ``state`` in a ``mode`` of another pooling (an attentive run
    as linear or full, or the reverse): its weights lack, or hold, the attentive pooler ``attn_pool.*``."""
    saved = pooling_of(state["model"])
    if saved == MODE_POOLING[mode]:
        return
    saved_mode = (state.get("recipe") or {}).get("model", {}).get("mode", "full")
    if mode == "attentive":
        raise PoolingMismatchError(
            f"{source} holds a {saved_mode}-mode run, with no attentive pooler (attn_pool.* weights) to resume "
            f"with --model.mode attentive. Fix: resume with --model.mode {saved_mode}, or start a new attentive-mode "
            "run with another --out"
        )
    raise PoolingMismatchError(
        f"{source} holds an attentive-mode run (attn_pool.* weights), not a {mode}-mode one. Fix: resume with "
        f"--model.mode attentive, or start a new {mode}-mode run with another --out"
    )


def param_count(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
