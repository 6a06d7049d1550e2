"""Where a pretraining run's networks come from: random initialisation, a pretrained model it continues
(``init.source``: continued pretraining), or a frozen teacher it distils (``teacher.source``).

Continued pretraining keeps the source's architecture: a recipe size that contradicts it is refused, naming
both values; only ``model.img_size`` may differ (the fixed sin-cos position tables are rebuilt for the new
grid). The context encoder, target encoder and predictor start as the source's where it holds them; a source
without a predictor (an encoder-only, timm or transformers repo) gets a fresh one, and both encoders start as
its encoder. Distillation builds a :class:`~ijepa_hub.models.distill.StudentJepa` of ``model.*`` sizes
predicting the teacher's features; the two must share the patch grid.
"""
from __future__ import annotations

import logging
import os

import torch

from ..errors import HubLayoutError, RecipeError
from ..hub.lineage import step, with_step
from ..hub.load import from_pretrained
from ..hub.model import PretrainedIJepa
from ..hub.provenance import Origin, provenance_of, source_origin
from ..models import IJepa
from ..models.distill import StudentJepa, check_same_grid
from ..recipe import Recipe
from ..registry import MODEL_FIELDS, ModelConfig, get_model_config
from ..released import find_variant

__all__ = ["build_model", "check_init_sizes", "load_source", "run_origins", "run_provenance"]

logger = logging.getLogger("ijepa_hub.train")

_ENCODER_FIELDS = ("embed_dim", "depth", "num_heads", "patch_size", "mlp_ratio", "in_chans")


def load_source(source: str, revision: str | None, *, what: str) -> PretrainedIJepa:
    """Every network ``source`` holds (context and target encoders, predictor), on the CPU, for training."""
    try:
        model = from_pretrained(source, revision=revision, with_context_encoder=True, with_predictor=True)
    except HubLayoutError:  # an encoder-only repo (or a transformers / timm one): its feature encoder alone
        model = from_pretrained(source, revision=revision)
    if not isinstance(model, PretrainedIJepa):
        raise RecipeError(f"{what} {source!r} is a classifier repo; give an I-JEPA encoder (its source, or a run "
                          "of ijepa-train)")
    return model


def check_init_sizes(recipe: Recipe, source: ModelConfig, *, with_predictor: bool) -> ModelConfig:
    """The run's architecture, refused (naming both values) where the recipe contradicts the init source."""
    mine = recipe.model_config()
    fields = [f for f in MODEL_FIELDS if f != "img_size" and (with_predictor or f in _ENCODER_FIELDS)]
    clashes = [f"model.{f} {getattr(mine, f)} (source: {getattr(source, f)})"
               for f in fields if getattr(mine, f) != getattr(source, f)]
    if clashes:
        raise RecipeError(
            f"init.source {recipe.init.source!r} is a {source.describe()}; the recipe's model differs: "
            f"{'; '.join(clashes)}. Fix: use a recipe of that architecture (e.g. --recipe adapt_vith14 for "
            f"ijepa_vith14_1k), or set those keys to the source's values"
        )
    return mine


def _load_init(core: IJepa, source: PretrainedIJepa, origin: str) -> None:
    """Copy the source's networks into ``core`` (a new grid keeps ``core``'s rebuilt position tables)."""
    def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        state = module.state_dict()
        if source.config.img_size != core.config.img_size:
            state = {k: v for k, v in state.items() if not k.endswith("pos_embed")}
        return state

    encoder = source.encoder
    context = source.context_encoder if source.context_encoder is not None else encoder
    target = source.target_encoder if source.target_encoder is not None else encoder
    core.context_encoder.load_state_dict(weights(context), strict=source.config.img_size == core.config.img_size)
    core.target_encoder.load_state_dict(weights(target), strict=source.config.img_size == core.config.img_size)
    if source.predictor is not None:
        core.predictor.load_state_dict(weights(source.predictor), strict=source.config.img_size == core.config.img_size)
    missing = [name for name, part in (("context encoder", source.context_encoder),
                                       ("predictor", source.predictor)) if part is None]
    if missing:
        logger.warning("init.source %s holds no %s: %s", origin, " and no ".join(missing),
                       "a freshly initialised predictor, " if source.predictor is None else ""
                       "and both encoders start as its encoder")
    else:
        logger.info("continuing %s: context encoder, target encoder and predictor loaded", origin)


def build_model(recipe: Recipe, *, resumed: bool, teacher_dtype: torch.dtype | None = None) -> IJepa:
    """The run's networks: random init, continued from ``init.source`` (loaded unless ``resumed``: a resumed
    run's checkpoint holds them) or a student of ``teacher.source``. Seed the torch RNG first."""
    init, teacher = recipe.init, recipe.teacher
    if init.source and teacher.source:
        raise RecipeError("init.source and teacher.source are both set: continue pretraining (init) or distil "
                          "(teacher), not both. Fix: drop one of --init / --teacher")
    kwargs = dict(loss=recipe.optim.loss, drop_path_rate=recipe.model.drop_path_rate,
                  objectives=recipe.loss.objectives())
    if teacher.source:
        source = load_source(teacher.source, teacher.revision, what="teacher.source")
        config = recipe.model_config()
        try:
            check_same_grid(config, source.config)
        except ValueError as err:
            raise RecipeError(f"teacher.source {teacher.source!r}: {err}") from None
        encoder = source.encoder.requires_grad_(False)
        return StudentJepa(config, encoder, teacher_config=source.config, teacher_dtype=teacher_dtype, **kwargs)
    if not init.source:
        return IJepa(recipe.model_config(), **kwargs)
    released = find_variant(init.source) if not os.path.exists(init.source) else None
    if released is not None:  # its sizes are in the registry: refuse a contradiction before a large download
        check_init_sizes(recipe, get_model_config(released.name), with_predictor=True)
    source = load_source(init.source, init.revision, what="init.source")
    config = check_init_sizes(recipe, source.config, with_predictor=source.predictor is not None)
    core = IJepa(config, **kwargs)  # draws a fresh predictor (and tables) from the seeded RNG first
    if not resumed:  # a resumed run's checkpoint holds the networks: the init is applied once, at step 0
        _load_init(core, source, init.source)
    return core


def run_origins(recipe: Recipe) -> dict[str, Origin]:
    """Where a run's weights come from (``init`` / ``teacher``), for its model card and licence."""
    return {key: source_origin(section.source, revision=section.revision)
            for key, section in (("init", recipe.init), ("teacher", recipe.teacher)) if section.source}


def run_provenance(recipe: Recipe) -> list[dict]:
    """The provenance chain of a run's model: its init's and teacher's chains, then what the run did."""
    chain: list[dict] = []
    for section in (recipe.init, recipe.teacher):
        if section.source:
            chain += provenance_of(section.source, revision=section.revision)
    how = f"with ijepa-train (recipe {recipe.name}; objective: {recipe.loss.describe()})"
    if recipe.teacher.source:
        return with_step(chain, recipe.teacher.source, f"distilled into a {recipe.model.name} student {how}",
                         revision=recipe.teacher.revision)
    if recipe.init.source:
        return with_step(chain, recipe.init.source, f"continued pretraining {how}", revision=recipe.init.revision)
    return [step(None, f"pretrained from random initialisation {how}")]
