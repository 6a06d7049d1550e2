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

from .errors import RecipeError
from .registry import MODEL_FIELDS, ModelConfig, get_model_config

__all__ = [
    "Recipe",
    "ModelSection",
    "DataSection",
    "MaskSection",
    "OptimSection",
    "TrainSection",
    "RecipeError",
    "list_recipes",
    "load_recipe",
    "recipe_from_dict",
    "recipe_from_namespace",
    "recipe_parser",
]


@dataclass
class ModelSection:
    """The architecture: a named model, and overrides of any of its sizes (None: the named model's)."""

    name: str = "vit_tiny_patch16"  # vit_<size>_patch<p> or a released variant; its patch size is <p>
    img_size: int | None = None  # crop size
    patch_size: int | None = None  # must agree with the name's <p> when both are given
    embed_dim: int | None = None  # encoder width
    depth: int | None = None  # encoder blocks
    num_heads: int | None = None  # encoder attention heads
    mlp_ratio: float | None = None  # encoder MLP hidden size / width
    in_chans: int | None = None
    pred_embed_dim: int | None = None  # predictor width
    pred_depth: int | None = None  # predictor blocks
    pred_num_heads: int | None = None  # predictor heads (default: the encoder's, as released)
    drop_path_rate: float = 0.0  # stochastic depth of the context encoder


@dataclass
class DataSection:
    dataset: str = "synthetic"  # "synthetic" (built in) or a name for the data at `path`
    path: str | None = None  # image folder, .tar shard(s) (brace patterns allowed); None: synthetic
    num_samples: int = 4096  # synthetic only: number of images
    source_size: int = 96  # synthetic only: side of the drawn images before the crop
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    batch_size_per_device: int = 32  # the micro-batch: masks are drawn per micro-batch, as released
    # unreadable images are skipped and counted; the run stops once more than this fraction of the images
    # read since it started or resumed (counting at least 1000) were skipped
    max_broken_fraction: float = 0.01


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
class TrainSection:
    """How a run executes; none of these change the mathematics except ``seed``."""

    seed: int = 0
    max_steps: int | None = None  # stop after this many steps (schedules still span optim.epochs)
    checkpoint_every: int = 500  # steps; a checkpoint is also written at the end and on SIGTERM
    log_every: int = 10  # steps between metric lines (JSONL / TensorBoard)
    monitor_every: int = 100  # steps between collapse checks (std and RankMe of target features)
    monitor_batch: int = 256  # images in the fixed batch of the collapse monitor
    num_workers: int = 8  # DataLoader workers per process (masks are drawn inside them)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model (dynamic shapes: mask lengths vary)
    grad_checkpointing: bool = False  # recompute block activations in the backward pass
    fsdp: bool = False  # shard with FSDP2 (fully_shard) instead of DDP, for ViT-g
    tensorboard: bool = False  # also write TensorBoard event files (needs the tensorboard package)


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    mask: MaskSection = field(default_factory=MaskSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` of ``model``: the named model with the section's sizes applied."""
        m = self.model
        sizes = {k: getattr(m, k) for k in MODEL_FIELDS}
        try:
            base = get_model_config(m.name)
        except KeyError as err:
            raise RecipeError(f"model.name: {err.args[0]}") from None
        if m.patch_size is not None and m.patch_size != base.patch_size:
            raise RecipeError(
                f"model.patch_size {m.patch_size} contradicts model.name {m.name!r} (patch {base.patch_size}); "
                f"name the patch size once, e.g. model.name vit_{base.arch or 'tiny'}_patch{m.patch_size}"
            )
        try:
            return base.replace(**sizes)
        except ValueError as err:
            raise RecipeError(f"model: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def recipe_parser(**kwargs: Any) -> "jsonargparse.ArgumentParser":
    """A jsonargparse parser whose schema is :class:`Recipe` (``--optim.lr 2e-3`` style keys).

    The dataclasses are the schema: types, ``Literal`` choices and tuple lengths are checked by
    jsonargparse, and its errors name the dotted key. Extra ``kwargs`` go to the parser.
    """
    import jsonargparse

    parser = jsonargparse.ArgumentParser(exit_on_error=False, **kwargs)
    parser.add_class_arguments(Recipe, None, fail_untyped=True)
    return parser


def recipe_from_namespace(namespace: Any) -> Recipe:
    """The :class:`Recipe` held by a namespace parsed with :func:`recipe_parser` (other keys ignored)."""
    data = namespace.clone().as_dict()
    hints = typing.get_type_hints(Recipe)
    kwargs = {}
    for f in dataclasses.fields(Recipe):
        if f.name in data:
            value, cls = data[f.name], hints[f.name]
            kwargs[f.name] = cls(**value) if dataclasses.is_dataclass(cls) else value
    return Recipe(**kwargs)


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """A validated :class:`Recipe` from a plain mapping (as read from YAML)."""
    import jsonargparse

    parser = recipe_parser()
    try:
        namespace = parser.parse_object(dict(data))
    except jsonargparse.ArgumentError as err:
        raise RecipeError(_one_line(err)) from None
    return recipe_from_namespace(namespace)


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


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
