"""The final weights in the Hub layout, through ``ijepa_hub.save_pretrained`` when it is available."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..models import IJepa
from ..recipe import Recipe

__all__ = ["export_model", "push_model"]


def export_model(model: IJepa, out_dir: str | os.PathLike, *, recipe: Recipe, metrics: dict[str, Any]) -> Path:
    """Write ``model`` (target encoder as the main weights) with its recipe and final metrics."""
    import ijepa_hub

    out_dir = Path(out_dir)
    save = getattr(ijepa_hub, "save_pretrained", None)
    if save is not None:
        return Path(save(model, out_dir, recipe=recipe, metrics=metrics))
    # Until the hub layout lands: target-encoder safetensors (released key names) + config.json.
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.target_encoder.state_dict().items()}
    save_file(state, out_dir / "model.safetensors", metadata={"format": "pt", "encoder": "target"})
    config = {**model.config.to_dict(), "encoder": "target", "recipe": recipe.to_dict(), "metrics": metrics}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out_dir


def push_model(model: IJepa, repo_id: str, *, recipe: Recipe, metrics: dict[str, Any], private: bool = False) -> str:
    """Upload the exported model to the Hugging Face Hub; returns the repository URL."""
    import ijepa_hub

    push = getattr(ijepa_hub, "push_to_hub", None)
    if push is None:
        raise NotImplementedError(
            "--push-to-hub needs ijepa_hub.push_to_hub (the Hub integration); upgrade ijepa_hub, or upload "
            "the exported folder with `huggingface-cli upload`"
        )
    return push(model, repo_id, private=private, recipe=recipe, metrics=metrics)
