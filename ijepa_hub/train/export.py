"""Deprecated (0.1): the trained model's Hub folder and its upload. The tasks now call the hub's
:func:`~ijepa_hub.hub.save.save_pretrained` and :func:`~ijepa_hub.hub.save.push_to_hub` directly (a failed
folder upload raises :class:`~ijepa_hub.errors.PushToHubError` giving the command that retries it)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..deprecation import deprecated_function
from ..hub.save import push_to_hub, save_pretrained
from ..models import IJepa
from ..recipe import Recipe

__all__ = ["export_model", "push_model"]


def _export_model(model: IJepa, out_dir: str | os.PathLike, *, recipe: Recipe, metrics: dict[str, Any]) -> Path:
    return Path(save_pretrained(model, out_dir, encoder="target", recipe=recipe, metrics=metrics))


export_model = deprecated_function(_export_model, "ijepa_hub.train.export.export_model",
                                   "ijepa_hub.save_pretrained(model, out_dir, encoder='target', recipe=..., metrics=...)")
push_model = deprecated_function(push_to_hub, "ijepa_hub.train.export.push_model", "ijepa_hub.push_to_hub")
