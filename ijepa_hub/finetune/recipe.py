"""Fine-tuning recipes: the typed sections of ``ijepa-finetune``, read from ``ijepa_hub/recipes/finetune``.

The same machinery as the training recipes (:mod:`ijepa_hub.recipe`): dataclasses are the schema,
jsonargparse checks the dotted overrides (``--optim.lr 1e-3``) and names a bad key. Key names shared with
the trainer (``train.max_steps``, ``train.checkpoint_every``...) mean the same and may change on resume.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .. import limits
from ..bounds import Bound
from ..errors import RecipeError
from ..recipe import (
    _FRACTION,
    _PIXELS,
    _SCALE,
    AdamWSection,
    RunDataSection,
    RunSection,
    _int,
    _key,
    _num,
    _plain,
    _redefault,
    list_recipes,
    load_recipe,
    validate_sections,
)
from ..registry import is_random_init

__all__ = [
    "FinetuneRecipe", "FtModelSection", "FtDataSection", "FtOptimSection", "FtTrainSection",
    "load_finetune_recipe", "list_finetune_recipes",
]


@dataclass
class FtModelSection:
    """What is fine-tuned: the pretrained source, which encoder, the head and how much of the model learns."""

    source: str = _key(
        "vit_tiny_patch8",
        "anything from_pretrained loads (folder, Hub repo, released variant), or vit_<size>_patch<p>: random init",
    )
    encoder: Literal["target", "context"] = _key("target", "which encoder of the source to fine-tune")
    img_size: int | None = _key(None, "input size in pixels; null: the source's")
    depth: int | None = _key(None, "random init only: encoder blocks; null: the named model's")
    mode: Literal["full", "linear", "attentive"] = _key(
        "full",
        "full: encoder and head learn; linear: the encoder is frozen, a linear head on the mean token learns; "
        "attentive: the encoder is frozen, timm's attention pool (global_pool='map') and a linear head learn",
    )
    drop_path_rate: float = _key(0.1, "stochastic depth of the encoder (full mode; the frozen modes use 0)")
    head_init_std: float = _key(0.01, "trunc-normal std of the new head's weights (bias 0)")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "img_size": _PIXELS, "depth": _int(1, limits.max_depth()), "drop_path_rate": _num(0.0, 1.0, hi_open=True),
        "head_init_std": _num(0.0, 10.0),
    }


@dataclass
class FtDataSection(RunDataSection):
    """Labelled images: class subfolders (train/ and val/) or the built-in synthetic shapes, and augmentation."""

    path: str | None = _key("synthetic", "'synthetic' or 'synthetic:textured' (built in), a folder with train/<class>/ and "
                                    "val/<class>/ images, or hfds/NAME")
    label: Literal["shape", "count"] = _key("shape", "synthetic only: which label to learn")
    num_train: int = _key(2000, "synthetic only: training images")
    num_val: int = _key(500, "synthetic only: validation images")
    source_size: int = _key(96, "synthetic only: side of the drawn images")
    crop_scale: tuple[float, float] = _key((0.08, 1.0), "RandomResizedCrop area fraction (min, max)")
    hflip: float = _key(0.5, "horizontal flip probability")
    auto_augment: str | None = _key("rand-m9-mstd0.5-inc1", "timm RandAugment policy string; null: none")
    reprob: float = _key(0.25, "random erasing probability (timm)")
    mixup: float = _key(0.8, "Mixup alpha (timm.data.Mixup); 0: off")
    cutmix: float = _key(1.0, "CutMix alpha; 0: off")
    mixup_prob: float = _key(1.0, "probability of applying Mixup or CutMix to a micro-batch")
    mixup_switch_prob: float = _key(0.5, "probability of CutMix rather than Mixup when both are on")
    val_batch_size: int = _key(64, "images per validation batch")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **RunDataSection.BOUNDS, "num_train": _int(1, limits.MAX_SYNTHETIC_IMAGES),
        "num_val": _int(1, limits.MAX_SYNTHETIC_IMAGES), "source_size": _int(16, limits.max_img_size()),
        "crop_scale": _SCALE, "hflip": _FRACTION, "reprob": _FRACTION, "mixup": _num(0.0, 1e3), "cutmix": _num(0.0, 1e3),
        "mixup_prob": _FRACTION, "mixup_switch_prob": _FRACTION, "val_batch_size": _int(1, limits.MAX_MICRO_BATCH),
    }

    def check_auto_augment(self) -> None:
        """Refuse an ``auto_augment`` policy timm cannot parse (it would fail in a DataLoader worker)."""
        if self.auto_augment is None:
            return
        from timm.data import create_transform

        try:
            create_transform(32, is_training=True, auto_augment=self.auto_augment)
        except (AssertionError, ValueError, KeyError, IndexError) as err:
            raise RecipeError(
                f"data.auto_augment={self.auto_augment!r} is not a timm policy ({err or 'unknown'}). Fix: use e.g. "
                "'rand-m9-mstd0.5-inc1', 'original', 'augmix-m5', or null for none."
            ) from None


@dataclass
class FtOptimSection(AdamWSection):
    """AdamW with layer-wise learning-rate decay, warm-up + cosine, label smoothing and clipping."""

    epochs: int = _redefault(AdamWSection, "epochs", 50)
    lr: float = _redefault(
        AdamWSection, "lr", 4.0e-3, "peak learning rate (of the head; block i gets lr * layer_decay^(depth - i))"
    )
    weight_decay: float = _redefault(
        AdamWSection, "weight_decay", 0.05, "AdamW weight decay (none on biases, norms and 1-D parameters)"
    )
    layer_decay: float = _key(0.75, "layer-wise lr decay (timm.optim); 1.0: off")
    label_smoothing: float = _key(0.1, "label smoothing (timm.loss; folded into the soft targets under Mixup)")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **AdamWSection.BOUNDS, "layer_decay": _num(0.0, 10.0, lo_open=True), "label_smoothing": _num(0.0, 1.0, hi_open=True),
    }


@dataclass
class FtTrainSection(RunSection):
    """How a fine-tuning run executes: the engine's keys (one data-parallel strategy, DDP)."""


@dataclass
class FinetuneRecipe:
    """A fine-tuning run's numbers: the four sections below, read from a YAML file."""

    RECIPE_FOLDER: ClassVar[str] = "finetune"  # shipped recipes: ijepa_hub/recipes/finetune/*.yaml

    name: str = _key("finetune", "the recipe's name (the default run folder is runs/<name>)")
    description: str = _key("", "one line about the recipe")
    model: FtModelSection = field(default_factory=FtModelSection)
    data: FtDataSection = field(default_factory=FtDataSection)
    optim: FtOptimSection = field(default_factory=FtOptimSection)
    train: FtTrainSection = field(default_factory=FtTrainSection)

    def set_source(self, source: str, *, img_size: int | None = None, depth: int | None = None) -> None:
        """Fine-tune ``source``. A pretrained source brings its own sizes: ``model.img_size`` and ``model.depth``
        become ``img_size`` and ``depth`` (None: the source's). An architecture name (random init) keeps the
        recipe's sizes unless given here."""
        self.model.source = source
        if is_random_init(source):
            self.model.img_size = img_size if img_size is not None else self.model.img_size
            self.model.depth = depth if depth is not None else self.model.depth
        else:
            self.model.img_size, self.model.depth = img_size, depth

    def validate(self) -> None:
        """Refuse, before anything is built, a key out of range or a bad augmentation policy
        (:class:`~ijepa_hub.errors.RecipeError` naming the key)."""
        validate_sections(self)
        self.data.check_auto_augment()

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def load_finetune_recipe(name_or_path: str | os.PathLike = "finetune_default") -> FinetuneRecipe:
    """A shipped fine-tuning recipe by name (``finetune_vith14``) or a YAML file by path."""
    return load_recipe(name_or_path, schema=FinetuneRecipe)


def list_finetune_recipes() -> list[str]:
    """Names of the fine-tuning recipes shipped with the package."""
    return list_recipes(schema=FinetuneRecipe)
