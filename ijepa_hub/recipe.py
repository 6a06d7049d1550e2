"""Training recipes: typed sections read from the YAML files shipped in ``ijepa_hub/recipes``.

A recipe is the single place where a training run's numbers live; released variants name theirs in
the registry. Unknown or mistyped keys are errors that name the key.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from .registry import ModelConfig, get_model_config

__all__ = [
    "Recipe",
    "ModelSection",
    "DataSection",
    "MaskSection",
    "OptimSection",
    "RecipeError",
    "list_recipes",
    "load_recipe",
    "recipe_from_dict",
]


class RecipeError(ValueError):
    """A recipe file or override is invalid; the message names the key."""


@dataclass
class ModelSection:
    name: str = "vit_tiny_patch16"
    img_size: int | None = None  # crop size; None: the model's default
    patch_size: int | None = None
    pred_depth: int | None = None
    pred_embed_dim: int | None = None
    drop_path_rate: float = 0.0


@dataclass
class DataSection:
    dataset: str = "synthetic"
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    batch_size_per_device: int = 32  # as in the released run (affects legacy mask sizes only)


@dataclass
class MaskSection:
    mode: Literal["legacy", "corrected"] = "corrected"
    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    num_context: int = 1
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_keep: int = 10
    allow_overlap: bool = False
    context_group: int = 128  # corrected mode: context keep-count = min over this many draws


@dataclass
class OptimSection:
    batch_size: int = 2048  # global, whatever the number of devices
    epochs: int = 300
    warmup_epochs: float = 40
    ipe_scale: float = 1.0
    start_lr: float = 2.0e-4
    lr: float = 1.0e-3
    final_lr: float = 1.0e-6
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1.0e-8
    ema: tuple[float, float] = (0.996, 1.0)
    clip_grad: float | None = None
    loss: Literal["smooth_l1", "l2"] = "smooth_l1"


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    mask: MaskSection = field(default_factory=MaskSection)
    optim: OptimSection = field(default_factory=OptimSection)

    def model_config(self) -> ModelConfig:
        m = self.model
        return get_model_config(
            m.name, img_size=m.img_size, patch_size=m.patch_size, pred_depth=m.pred_depth,
            pred_embed_dim=m.pred_embed_dim,
        )

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key)
    if origin is typing.Union or (origin is not None and type(None) in args):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except RecipeError:
                continue
        raise RecipeError(f"{key}: {value!r} is not a {tp}")
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise RecipeError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool):
        if type(value) is not tp:
            raise RecipeError(f"{key}: expected {tp.__name__}, got {value!r}")
        return value
    raise RecipeError(f"{key}: cannot read {value!r} as {tp}")


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise RecipeError(f"unknown key(s) {', '.join(where + u for u in unknown)}; valid: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """A validated :class:`Recipe` from a plain mapping (as read from YAML)."""
    return _build(Recipe, dict(data))


def _recipe_dir():
    return resources.files("ijepa_hub") / "recipes"


def list_recipes() -> list[str]:
    """Names of the recipes shipped with the package."""
    return sorted(p.name[: -len(".yaml")] for p in _recipe_dir().iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """A shipped recipe by name (``in1k_vith14``) or a YAML file by path."""
    text_path = Path(os.fspath(name_or_path))
    if text_path.suffix in (".yaml", ".yml") or text_path.exists():
        if not text_path.is_file():
            raise FileNotFoundError(f"recipe file {text_path} does not exist")
        source, text = str(text_path), text_path.read_text()
    else:
        entry = _recipe_dir() / f"{name_or_path}.yaml"
        if not entry.is_file():
            raise RecipeError(f"unknown recipe {str(name_or_path)!r}; shipped recipes: {', '.join(list_recipes())}")
        source, text = f"recipe {name_or_path}", entry.read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping, got {type(data).__name__}")
    try:
        return recipe_from_dict(data)
    except RecipeError as err:
        raise RecipeError(f"{source}: {err}") from None
