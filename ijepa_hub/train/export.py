"""The final weights in the Hub layout (``ijepa_hub.save_pretrained``) and the optional upload."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..hub import push_to_hub, save_pretrained
from ..models import IJepa
from ..recipe import Recipe

__all__ = ["export_model", "push_model"]


def export_model(model: IJepa, out_dir: str | os.PathLike, *, recipe: Recipe, metrics: dict[str, Any]) -> Path:
    """Write ``model`` as a Hub folder: the target encoder as the main weights (what the paper
    evaluates), the context encoder and predictor beside it, and a card with the recipe and metrics."""
    return Path(save_pretrained(model, out_dir, encoder="target", recipe=recipe, metrics=metrics))


def push_model(model: IJepa, repo_id: str, *, recipe: Recipe, metrics: dict[str, Any], private: bool = False) -> str:
    """Upload the same folder to the Hugging Face Hub in one commit; returns the commit URL."""
    return push_to_hub(model, repo_id, private=private, encoder="target", recipe=recipe, metrics=metrics)
