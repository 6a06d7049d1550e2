"""Training recipes: typed sections read from the YAML files shipped in ``ijepa_hub/recipes``.

A recipe is the single place where a training run's numbers live; released variants name theirs in
the registry. Unknown or mistyped keys are errors that name the key.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import yaml

if TYPE_CHECKING:
    import jsonargparse

from . import limits
from .bounds import Bound, Pair, check_bounds
from .errors import RecipeError
from .registry import MODEL_FIELDS, ModelConfig, get_model_config
from .yaml_bounded import YamlBombError, check_expansion, safe_load_bounded

if TYPE_CHECKING:
    from .models.objectives import Objectives

__all__ = [
    "Recipe",
    "ModelSection",
    "DataSection",
    "MaskSection",
    "OptimSection",
    "LossSection",
    "describe_objective",
    "TrainSection",
    "RunSection",
    "AdamWSection",
    "RunDataSection",
    "RunRecipe",
    "EvalSection",
    "InitSection",
    "TeacherSection",
    "RecipeError",
    "list_recipes",
    "load_recipe",
    "recipe_from_dict",
    "recipe_from_namespace",
    "recipe_parser",
    "recipe_key_help",
    "validate_sections",
]


def _key(default: Any, help: str) -> Any:
    """A recipe key's default and its one-line description (``ijepa-train --help`` shows it)."""
    return field(default=default, metadata={"help": help})


def _int(lo: int, hi: int) -> Bound:
    return Bound(lo, hi, integer=True)


def _num(lo: float | None = 0.0, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> Bound:
    return Bound(lo, hi, lo_open=lo_open, hi_open=hi_open)


_STEPS = _int(1, limits.MAX_STEPS)
_FRACTION = _num(0.0, 1.0)
_PIXELS = _int(1, limits.max_img_size())
_SCALE = Pair(0.0, 1.0, lo_open=True)  # an area fraction range
_ASPECT = Pair(1e-3, 1e3)  # an aspect-ratio range


def validate_sections(recipe: Any) -> None:
    """Refuse any key of ``recipe``'s sections outside its section's ``BOUNDS`` (:class:`RecipeError` naming
    the key, the value and the range): every recipe schema's first check, before anything is built."""
    for f in dataclasses.fields(recipe):
        section = getattr(recipe, f.name)
        if dataclasses.is_dataclass(section):
            check_bounds(dataclasses.asdict(section), getattr(section, "BOUNDS", {}), prefix=f.name)


def _redefault(base: type, name: str, default: Any, help: str | None = None) -> Any:
    """A key of ``base`` redeclared in a task's section with that task's default (and, if given, help)."""
    return _key(default, help or base.__dataclass_fields__[name].metadata["help"])


# The engine's keys: what every training task (pretraining, fine-tuning, ...) reads, declared once.


@dataclass
class RunSection:
    """How a run executes; none of these change the mathematics except ``seed``."""

    seed: int = _key(0, "seed of the initialisation, the data order and every random draw of the run")
    max_steps: int | None = _key(None, "stop after this many steps (schedules still span optim.epochs)")
    checkpoint_every: int = _key(500, "steps; a checkpoint is also written at the end and on SIGTERM")
    log_every: int = _key(10, "steps between metric lines (JSONL / TensorBoard)")
    num_workers: int = _key(8, "DataLoader workers per process")
    threads: int | None = _key(None, "CPU intra-op threads per process; None: the cores the workers leave, shared")
    device: Literal["auto", "cpu", "cuda"] = _key("auto", "auto: cuda if available, else cpu")
    precision: Literal["auto", "bf16", "fp32"] = _key("auto", "auto: bf16 autocast on CUDA, fp32 on CPU")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "seed": _int(0, limits.MAX_SEED), "max_steps": _STEPS, "checkpoint_every": _STEPS, "log_every": _STEPS,
        "num_workers": _int(0, 1024), "threads": _int(1, 1 << 16),
    }


@dataclass
class AdamWSection:
    """AdamW and its warm-up + cosine learning rate, in epochs of the run's data."""

    batch_size: int = _key(1024, "global batch, whatever the number of devices")
    epochs: int = _key(100, "schedule length in epochs")
    warmup_epochs: float = _key(5, "linear warm-up from start_lr to lr, in epochs")
    start_lr: float = _key(0.0, "learning rate at step 0")
    lr: float = _key(1.0e-3, "peak learning rate, after warm-up")
    final_lr: float = _key(1.0e-6, "learning rate at the end of the cosine decay")
    weight_decay: float = _key(0.05, "AdamW weight decay (none on biases and 1-D parameters)")
    betas: tuple[float, float] = _key((0.9, 0.999), "AdamW betas")
    eps: float = _key(1.0e-8, "AdamW epsilon")
    clip_grad: float | None = _key(None, "clip the gradient norm to this; null: no clipping")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "batch_size": _int(1, limits.MAX_BATCH), "epochs": _STEPS, "warmup_epochs": _num(0.0, limits.MAX_STEPS),
        "start_lr": _num(), "lr": _num(), "final_lr": _num(), "weight_decay": _num(),
        "betas": Pair(0.0, 1.0, hi_open=True), "eps": _num(0.0, 1.0, lo_open=True), "clip_grad": _num(lo_open=True),
    }


@dataclass
class RunDataSection:
    """The data keys the engine reads: the micro-batch and the tolerance for unreadable images."""

    batch_size_per_device: int = _key(32, "the micro-batch (a step accumulates global batch / world size of them)")
    max_broken_fraction: float = _key(
        0.01, "unreadable images are skipped; stop once more than this fraction of those read (>= 1000) were"
    )

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "batch_size_per_device": _int(1, limits.MAX_MICRO_BATCH), "max_broken_fraction": _FRACTION,
    }


class RunRecipe(Protocol):
    """What the engine needs of a task's recipe (:class:`Recipe`, ``FinetuneRecipe``...): its name, the
    engine's sections and a plain-dict form for ``recipe.yaml`` and checkpoints."""

    @property
    def name(self) -> str: ...
    @property
    def data(self) -> RunDataSection: ...
    @property
    def optim(self) -> AdamWSection: ...
    @property
    def train(self) -> RunSection: ...
    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class ModelSection:
    """The architecture: a named model, and overrides of any of its sizes (None: the named model's)."""

    name: str = _key("vit_tiny_patch16", "vit_<size>_patch<p> or a released variant; its patch size is <p>")
    img_size: int | None = _key(None, "crop size in pixels; null: the named model's")
    patch_size: int | None = _key(None, "patch side; must agree with the name's <p> when both are given")
    embed_dim: int | None = _key(None, "encoder width; null: the named model's")
    depth: int | None = _key(None, "encoder blocks; null: the named model's")
    num_heads: int | None = _key(None, "encoder attention heads; null: the named model's")
    mlp_ratio: float | None = _key(None, "encoder MLP hidden size / width; null: the named model's")
    in_chans: int | None = _key(None, "input image channels; null: the named model's (3)")
    pred_embed_dim: int | None = _key(None, "predictor width; null: the named model's")
    pred_depth: int | None = _key(None, "predictor blocks; null: the named model's")
    pred_num_heads: int | None = _key(None, "predictor heads; null: the encoder's, as released")
    drop_path_rate: float = _key(0.0, "stochastic depth rate of the context encoder")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "img_size": _PIXELS, "patch_size": _PIXELS, "embed_dim": _int(4, 1 << 16), "depth": _int(1, limits.max_depth()),
        "num_heads": _int(1, limits.MAX_HEADS), "mlp_ratio": _num(0.0, 64.0, lo_open=True), "in_chans": _int(1, 64),
        "pred_embed_dim": _int(4, 1 << 16), "pred_depth": _int(1, limits.max_depth()),
        "pred_num_heads": _int(1, limits.MAX_HEADS), "drop_path_rate": _num(0.0, 1.0, hi_open=True),
    }


@dataclass
class DataSection(RunDataSection):
    """Where the images come from and how they are cut into micro-batches."""

    dataset: str = _key(
        "synthetic", "'synthetic' or 'synthetic:textured' (built in, with data.path null) or a name for the data at data.path"
    )
    path: str | None = _key(
        None, "image folder, .tar shard(s) (brace patterns, globs), hfds/NAME, hfids/NAME, synthetic or "
        "synthetic:textured; null: data.dataset's synthetic style"
    )
    num_samples: int = _key(4096, "synthetic only: number of images")
    source_size: int = _key(96, "synthetic only: side of the drawn images before the crop")
    crop_scale: tuple[float, float] = _key((0.3, 1.0), "RandomResizedCrop area fraction (min, max)")
    crop_ratio: tuple[float, float] = _key((3 / 4, 4 / 3), "RandomResizedCrop aspect ratio (min, max)")
    split: str = _key("train", "hfds/ and hfids/ data: the split to train on")
    image_column: str | None = _key(None, "hfds/, hfids/: the image column (null: the first Image feature)")
    label_column: str | None = _key(None, "hfds/, hfids/: the label column (null: the first ClassLabel, if any)")
    stream_size: int | None = _key(None, "hfids/: images per epoch when the dataset does not state it")
    shuffle_buffer: int = _key(10000, "hfids/: shuffle buffer, reseeded each pass (0: the stream's order)")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **RunDataSection.BOUNDS, "num_samples": _int(1, limits.MAX_SYNTHETIC_IMAGES), "source_size": _int(16, limits.max_img_size()),
        "crop_scale": _SCALE, "crop_ratio": _ASPECT, "stream_size": _int(1, limits.MAX_IMAGES),
        "shuffle_buffer": _int(0, limits.MAX_SYNTHETIC_IMAGES),
    }


@dataclass
class MaskSection:
    """Multi-block masking (see :mod:`ijepa_hub.masks` for the two modes)."""

    mode: Literal["legacy", "corrected"] = _key(
        "corrected", "legacy: the released sampler, quirks included; corrected: every patch reachable"
    )
    num_targets: int = _key(4, "target blocks per image")
    target_scale: tuple[float, float] = _key((0.15, 0.2), "target block area as a fraction of the image (min, max)")
    target_aspect: tuple[float, float] = _key((0.75, 1.5), "target block aspect ratio (min, max)")
    num_context: int = _key(1, "context blocks per image")
    context_scale: tuple[float, float] = _key((0.85, 1.0), "context block area as a fraction of the image (min, max)")
    context_aspect: tuple[float, float] = _key((1.0, 1.0), "context block aspect ratio (min, max)")
    min_keep: int = _key(10, "a block is redrawn until it keeps more than this many patches")
    allow_overlap: bool = _key(False, "keep target patches in the context (released: false)")
    context_group: int = _key(128, "corrected mode: context keep-count = min over this many draws")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "num_targets": _int(1, limits.MAX_MASK_BLOCKS), "num_context": _int(1, limits.MAX_MASK_BLOCKS),
        "target_scale": _SCALE, "context_scale": _SCALE, "target_aspect": _ASPECT, "context_aspect": _ASPECT,
        "min_keep": _int(0, 1 << 24), "context_group": _int(1, limits.MAX_MICRO_BATCH),
    }


@dataclass
class OptimSection(AdamWSection):
    """AdamW, its schedules (warm-up + cosine lr, cosine weight decay, linear EMA) and the loss."""

    batch_size: int = _redefault(AdamWSection, "batch_size", 2048)
    epochs: int = _redefault(AdamWSection, "epochs", 300)
    warmup_epochs: float = _redefault(AdamWSection, "warmup_epochs", 40)
    start_lr: float = _redefault(AdamWSection, "start_lr", 2.0e-4)
    weight_decay: float = _redefault(
        AdamWSection, "weight_decay", 0.04, "weight decay at step 0 (cosine increase to final_weight_decay)"
    )
    ipe_scale: float = _key(1.0, "stretch of the schedules: they span ipe_scale * epochs epochs")
    final_weight_decay: float = _key(0.4, "weight decay at the end of the schedule")
    ema: tuple[float, float] = _key((0.996, 1.0), "target-encoder EMA momentum, start and end (linear ramp)")
    loss: Literal["smooth_l1", "l2"] = _key("smooth_l1", "prediction loss against the normed target features")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **AdamWSection.BOUNDS, "ipe_scale": _num(0.0, 1e3, lo_open=True), "final_weight_decay": _num(),
        "ema": Pair(0.0, 1.0),
    }


@dataclass
class LossSection:
    """Opt-in anti-collapse terms and the target normalisation (ijepa_hub.models.objectives); off as released."""

    target_norm: Literal["layer_norm", "batch_norm", "none"] = _key(
        "layer_norm", "regression targets: layer_norm per token (released), batch_norm per feature, or none"
    )
    sigreg_weight: float = _key(0.0, "weight of SIGReg (LeJEPA: random projections pushed to N(0,1)); 0: off")
    sigreg_projections: int = _key(256, "SIGReg: random 1-D projections drawn at each step")
    sigreg_on: Literal["context", "context_pooled", "predictor"] = _key(
        "context_pooled", "SIGReg features: context-encoder tokens, their per-image mean, or predictor outputs"
    )
    vcreg_variance: float = _key(0.0, "weight of the VICReg variance hinge (feature std below 1); 0: off")
    vcreg_covariance: float = _key(0.0, "weight of the VICReg off-diagonal covariance penalty; 0: off")
    vcreg_on: Literal["context", "context_pooled", "predictor"] = _key(
        "context", "variance/covariance features: context-encoder tokens, their per-image mean, or predictor outputs"
    )

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "sigreg_weight": _num(), "sigreg_projections": _int(1, 1 << 16), "vcreg_variance": _num(),
        "vcreg_covariance": _num(),
    }

    def describe(self) -> str:
        """The training objective in words (:func:`describe_objective`)."""
        return describe_objective(dataclasses.asdict(self))

    def objectives(self) -> Objectives:
        """These choices as the model's :class:`~ijepa_hub.models.objectives.Objectives`."""
        from .models.objectives import Objectives

        try:
            return Objectives(**dataclasses.asdict(self))
        except ValueError as err:
            raise RecipeError(str(err)) from None


_ON_TEXT = {"context": "the context tokens", "context_pooled": "the per-image mean of the context tokens",
            "predictor": "the predictor's outputs"}


def describe_objective(loss: Mapping[str, Any] | None) -> str:
    """A recipe's ``loss`` section (a dict, as ``config.json`` records it) in words: the paper's I-JEPA objective,
    or I-JEPA with the anti-collapse terms it adds. What the run log, the summary and the model card say."""
    loss = loss or {}
    terms = []
    if loss.get("vcreg_variance") or loss.get("vcreg_covariance"):
        terms.append(f"VICReg variance {loss.get('vcreg_variance', 0.0):g} and covariance "
                     f"{loss.get('vcreg_covariance', 0.0):g} terms on {_ON_TEXT[loss.get('vcreg_on', 'context')]}")
    if loss.get("sigreg_weight"):
        terms.append(f"a SIGReg term ({loss['sigreg_weight']:g}, {loss.get('sigreg_projections', 256)} projections) "
                     f"on {_ON_TEXT[loss.get('sigreg_on', 'context_pooled')]}")
    norm = loss.get("target_norm", "layer_norm")
    base = "I-JEPA" + ("" if norm == "layer_norm" else f" (targets normalised by {norm.replace('_', ' ')})")
    return f"{base} with {' and '.join(terms)}" if terms else f"{base}, the paper's objective (no extra terms)"


@dataclass
class TrainSection(RunSection):
    """How a pretraining run executes: the engine's keys, the monitors and the scale-out switches."""

    monitor_every: int = _key(100, "steps between collapse checks (std and RankMe of target features)")
    monitor_batch: int = _key(256, "images in the fixed batch of the collapse monitor")
    eval_every: int = _key(0, "steps between online k-NN probes of the target encoder (section eval); 0: none")
    compile: bool = _key(False, "torch.compile the model (dynamic shapes: mask lengths vary)")
    grad_checkpointing: bool = _key(False, "recompute block activations in the backward pass")
    fsdp: bool = _key(False, "shard with FSDP2 (fully_shard) instead of DDP, for ViT-g")
    tensorboard: bool = _key(False, "also write TensorBoard event files (needs the tensorboard package)")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **RunSection.BOUNDS, "monitor_every": _int(0, limits.MAX_STEPS), "monitor_batch": _int(1, limits.MAX_MICRO_BATCH),
        "eval_every": _int(0, limits.MAX_STEPS),
    }


@dataclass
class EvalSection:
    """The online probe (train.eval_every): k-NN top-1 of pooled target features on a held-out labelled split."""

    data: str | None = _key(
        None, "folder with one subfolder per class, hfds/NAME, or synthetic / synthetic:textured (held-out shapes: "
        "shape, count); null: the training data's synthetic style, if it is synthetic"
    )
    num_train: int = _key(256, "labelled images the k-NN votes with (at most)")
    num_test: int = _key(128, "held-out images it classifies (at most)")
    k: int = _key(20, "neighbours that vote")

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "num_train": _int(1, limits.MAX_SYNTHETIC_IMAGES), "num_test": _int(1, limits.MAX_SYNTHETIC_IMAGES),
        "k": _int(1, 1 << 16),
    }


@dataclass
class InitSection:
    """Where the weights start: random initialisation, or a pretrained model (continued pretraining)."""

    source: str | None = _key(
        None, "continue pretraining from anything from_pretrained loads (released variant, Hub repo, run folder, "
        ".pth.tar); null: random initialisation. Its architecture is the run's"
    )
    revision: str | None = _key(None, "Hub revision (branch, tag, commit) of init.source")


@dataclass
class TeacherSection:
    """Distillation: a frozen teacher whose layer-normed patch features the student predicts (no EMA target)."""

    source: str | None = _key(
        None, "distil from this encoder (anything from_pretrained loads); the student is model.*; null: I-JEPA"
    )
    revision: str | None = _key(None, "Hub revision (branch, tag, commit) of teacher.source")


@dataclass
class Recipe:
    """A training run's numbers: the nine sections below, read from a YAML file."""

    name: str = _key("custom", "the recipe's name (the default run folder is runs/<name>)")
    description: str = _key("", "one line about the recipe")
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    mask: MaskSection = field(default_factory=MaskSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    init: InitSection = field(default_factory=InitSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)

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

    def validate(self) -> None:
        """Refuse, before anything is built, a key out of range and a model larger than loading allows
        (:class:`RecipeError` naming the key). Mask settings are checked on the patch grid by the trainer."""
        validate_sections(self)
        n = limits.estimate_parameters(self.model_config())
        if n > limits.max_parameters():
            raise RecipeError(
                f"model: about {n:.3g} parameters, over the {limits.max_parameters():.3g} limit (8 times the largest "
                "released I-JEPA). Fix: lower model.embed_dim, model.depth, model.pred_embed_dim or model.img_size."
            )

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def recipe_parser(*, schema: type = None, **kwargs: Any) -> jsonargparse.ArgumentParser:
    """A jsonargparse parser whose schema is :class:`Recipe` (``--optim.lr 2e-3`` style keys).

    The dataclasses are the schema: types, ``Literal`` choices and tuple lengths are checked by
    jsonargparse, and its errors name the dotted key. ``schema``: another recipe dataclass of the same
    shape (sections of keys made with ``_key``), e.g. the fine-tuning recipe. Extra ``kwargs`` go to the parser.
    """
    import jsonargparse

    schema = schema or Recipe
    _register_bounded_mode()
    parser = jsonargparse.ArgumentParser(exit_on_error=False, parser_mode=_PARSER_MODE, **kwargs)
    parser.add_class_arguments(schema, None, fail_untyped=True)
    helps = recipe_key_help(schema)
    sections = _sections(schema)
    for action in parser._actions:  # jsonargparse reads help only from docstrings (needs docstring-parser)
        if action.dest in helps:
            action.help = helps[action.dest]
        elif action.dest in parser.groups:  # --optim FILE: a YAML file holding one section
            action.metavar, action.help = "FILE", f"YAML file with {action.dest} keys"
    for name, group in parser.groups.items():
        doc = sections.get(name, schema).__doc__ or ""
        title = doc.strip().splitlines()[0].rstrip(".").replace("``", "")
        group.title = f"{name if name in sections else 'recipe'}: {title}"
    return parser


_PARSER_MODE = "ijepa_hub_yaml"  # jsonargparse's YAML with alias bombs refused (section files, values)


def _register_bounded_mode() -> None:
    """Register :data:`_PARSER_MODE`: jsonargparse's own YAML loader behind :func:`check_expansion`."""
    import jsonargparse

    base = jsonargparse.get_loader("yaml")

    def load(text: str) -> Any:
        if isinstance(text, str) and "*" in text:  # aliases need '*': plain values skip the second parse
            loader = yaml.SafeLoader(text)
            try:
                node = loader.get_single_node()
            finally:
                loader.dispose()
            if node is not None:
                try:
                    check_expansion(node, source="a command-line value or section file")
                except YamlBombError as err:
                    raise RecipeError(str(err)) from None
        return base(text)

    jsonargparse.set_loader(_PARSER_MODE, load, exceptions=(yaml.YAMLError,))


def _sections(schema: type) -> dict[str, type]:
    """Section name -> dataclass of a recipe schema."""
    return {f.name: f.default_factory for f in dataclasses.fields(schema) if f.default_factory is not dataclasses.MISSING}


_SECTIONS = _sections(Recipe)


def recipe_key_help(schema: type = None) -> dict[str, str]:
    """The one-line description of every recipe key by its dotted name (``optim.lr``), from the field metadata."""
    schema = schema or Recipe
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(schema) if "help" in f.metadata}
    for section, cls in _sections(schema).items():
        helps.update({f"{section}.{f.name}": f.metadata.get("help", "") for f in dataclasses.fields(cls)})
    return helps


def recipe_from_namespace(namespace: Any, *, schema: type = None) -> Recipe:
    """The :class:`Recipe` (or ``schema``) held by a namespace parsed with :func:`recipe_parser` (other keys ignored)."""
    schema = schema or Recipe
    data = namespace.clone().as_dict()
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for f in dataclasses.fields(schema):
        if f.name in data:
            value, cls = data[f.name], hints[f.name]
            kwargs[f.name] = cls(**value) if dataclasses.is_dataclass(cls) else value
    recipe = schema(**kwargs)
    if hasattr(recipe, "validate"):
        recipe.validate()
    return recipe


def recipe_from_dict(data: dict[str, Any], *, schema: type = None) -> Recipe:
    """A validated :class:`Recipe` (or ``schema``) from a plain mapping (as read from YAML)."""
    import jsonargparse

    parser = recipe_parser(schema=schema)
    try:
        namespace = parser.parse_object(dict(data))
    except jsonargparse.ArgumentError as err:
        raise RecipeError(_one_line(err)) from None
    return recipe_from_namespace(namespace, schema=schema)


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _recipe_dir(schema: type = None):
    """Where a schema's shipped recipes live: ``recipes/`` for training, ``schema.RECIPE_FOLDER`` for others."""
    folder = resources.files("ijepa_hub") / "recipes"
    sub = getattr(schema, "RECIPE_FOLDER", None)
    return folder / sub if sub else folder


def list_recipes(*, schema: type = None) -> list[str]:
    """Names of the recipes shipped with the package (training recipes; ``schema``: that schema's)."""
    return sorted(p.name[: -len(".yaml")] for p in _recipe_dir(schema).iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | os.PathLike, *, schema: type = None) -> Recipe:
    """A shipped recipe by name (``in1k_vith14``) or a YAML file by path (``schema``: another recipe
    dataclass, e.g. :class:`ijepa_hub.finetune.FinetuneRecipe`, whose shipped recipes are its own)."""
    text_path = Path(os.fspath(name_or_path))
    if text_path.suffix in (".yaml", ".yml") or text_path.exists():
        if not text_path.is_file():
            raise FileNotFoundError(f"recipe file {text_path} does not exist")
        source, text = str(text_path), text_path.read_text()
    else:
        entry = _recipe_dir(schema) / f"{name_or_path}.yaml"
        if not entry.is_file():
            raise RecipeError(
                f"unknown recipe {str(name_or_path)!r}; shipped recipes: {', '.join(list_recipes(schema=schema))}"
            )
        source, text = f"recipe {name_or_path}", entry.read_text()
    try:
        data = safe_load_bounded(text, source=source) or {}
    except YamlBombError as err:
        raise RecipeError(str(err)) from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{source} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping, got {type(data).__name__}")
    try:
        return recipe_from_dict(data, schema=schema)
    except RecipeError as err:
        raise RecipeError(f"{source}: {err}") from None
