"""What the predictor predicts, without a decoder: retrieved patches and per-patch cosines.

I-JEPA's predictor outputs features, not pixels, and the paper's generative decoder (its Figure 6) was
never released. So the view here shows the prediction through the target encoder instead: for each
predicted target token, the patch of a bank (the image itself, a folder, the synthetic shapes) whose
target-encoder feature is nearest in cosine (:func:`nearest_patches`, exact), and the cosine between the
predicted and the actual target feature at each target patch. A trained predictor retrieves the patches
that are really there; a random one does not.

Features are compared where the loss compares them: the target encoder's tokens after the recipe's
``loss.target_norm`` (:func:`~ijepa_hub.models.objectives.normalize_targets`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import ImageInput, list_images, load_image
from ..data.synthetic import SYNTHETIC_SPECS, SyntheticShapes, synthetic_style
from ..data.transforms import MEAN, STD
from ..errors import HubLayoutError
from ..hub.load import from_pretrained, read_config
from ..masks import MaskCollator
from ..models import IJepa
from ..models.encoder import apply_masks
from ..models.objectives import normalize_targets
from ..recipe import MaskSection
from .plots import model_label, plot_predictor_view
from .probes import format_table, random_init_model

__all__ = [
    "PatchBank", "PredictorView", "ViewSettings", "nearest_patches", "image_patches", "patch_bank", "sample_view_masks",
    "block_masks_at", "predictor_view", "load_predictor_model", "view_settings", "to_model_input", "display_images",
    "synthetic_images", "bank_images", "SELF_BANK", "summary", "predict_picture", "summary_table",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 8192  # bank rows per matrix product: [queries, chunk] floats at a time
SELF_BANK = "self"  # the bank of each image's own patches
SYNTHETIC_SEED = 7  # the synthetic shapes the pictures show (as ijepa-eval masks and pca)


@dataclass(frozen=True)
class ViewSettings:
    """The mask settings and target normalisation a model was trained with (its recipe's, else the defaults)."""

    mask: MaskSection = dataclasses.field(default_factory=MaskSection)
    target_norm: str = "layer_norm"
    seed: int = 0


@dataclass
class PatchBank:
    """Patches to retrieve from: unit-norm target features [N, D] and their pixels [N, 3, p, p] (uint8)."""

    features: torch.Tensor
    pixels: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class PredictorView:
    """One image's masks and what the predictor made of them (indices are raster patch indices).

    ``cosine[j]``: cosine(predicted, actual target feature) per patch of target block ``j``;
    ``retrieved[j]`` / ``retrieved_cosine[j]``: the bank index nearest to each predicted token, and its cosine.
    """

    image: torch.Tensor  # uint8 [3, H, W]
    grid: tuple[int, int]
    context: torch.Tensor
    targets: list[torch.Tensor]
    cosine: list[torch.Tensor]
    retrieved: list[torch.Tensor]
    retrieved_cosine: list[torch.Tensor]
    bank: PatchBank

    @property
    def mean_cosine(self) -> float:
        """Mean cosine(predicted, actual) over every target patch of the image."""
        return float(torch.cat(self.cosine).mean())

    def self_retrieval(self, offset: int = 0) -> float:
        """Fraction of target tokens whose nearest bank patch is the target patch itself (banks holding this
        image's patches at ``offset``, as the default bank does at 0)."""
        hits = [(r == t + offset).float() for r, t in zip(self.retrieved, self.targets)]
        return float(torch.cat(hits).mean())


@torch.no_grad()
def nearest_patches(queries: torch.Tensor, bank: torch.Tensor, *, chunk: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query [Q, D], the index of the bank row [N, D] of highest cosine, and that cosine.

    Exact: one matrix product per ``chunk`` bank rows with a running maximum, so memory is
    ``Q * chunk`` whatever the bank's size. Ties keep the lowest index.
    """
    if queries.dim() != 2 or bank.dim() != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"queries [Q, D] and bank [N, D] must share D, got {tuple(queries.shape)} and {tuple(bank.shape)}")
    if len(bank) == 0:
        raise ValueError("the patch bank is empty")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    q = F.normalize(queries.float(), dim=1)
    best = torch.full((len(q),), -float("inf"), device=q.device)
    index = torch.zeros(len(q), dtype=torch.long, device=q.device)
    for start in range(0, len(bank), chunk):
        sims = q @ F.normalize(bank[start:start + chunk].float().to(q.device), dim=1).T
        value, where = sims.max(dim=1)
        better = value > best
        best = torch.where(better, value, best)
        index = torch.where(better, where + start, index)
    return index, best


def display_images(items: Sequence[ImageInput], size: int) -> torch.Tensor:
    """Images (paths, PIL, arrays, tensors) as uint8 [B, 3, size, size]: shorter side resized, centre-cropped."""
    from torchvision.transforms import v2

    resize = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    return torch.stack([(resize(load_image(x)).clamp(0, 1) * 255).round().to(torch.uint8) for x in items])


def synthetic_images(num: int, size: int, *, data: str = SYNTHETIC_SPECS[0], seed: int = SYNTHETIC_SEED) -> torch.Tensor:
    """``num`` synthetic shapes of the ``data`` spec as uint8 [num, 3, size, size]."""
    if num < 1:
        raise ValueError(f"the number of synthetic images must be at least 1, got {num}")
    shapes = SyntheticShapes(num, size=size, seed=seed, style=synthetic_style(data))
    return display_images([shapes[i][0] for i in range(num)], size)


def bank_images(spec: str, size: int, *, limit: int = 64) -> torch.Tensor | None:
    """The images of a ``--bank`` spec: ``self`` (None: each image's own patches), a synthetic spec (``limit``
    shapes, another seed than the shown ones) or a folder (its first ``limit`` images in sorted order)."""
    if spec == SELF_BANK:
        return None
    if limit < 1:
        raise ValueError(f"the bank size must be at least 1, got {limit}")
    if synthetic_style(spec) is not None:
        return synthetic_images(limit, size, data=spec, seed=SYNTHETIC_SEED + 1)
    if not os.path.isdir(spec):
        raise FileNotFoundError(f"--bank {spec!r} is not a folder. Fix: pass {SELF_BANK}, "
                                f"{' or '.join(SYNTHETIC_SPECS)}, or a folder of images")
    return display_images(list_images(spec)[:limit], size)


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> the ImageNet-normalised float batch the encoders read."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def image_patches(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, 3, H, W] -> [B * N, 3, p, p], raster order (the order of the encoder's tokens)."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, c, p, p)


@torch.no_grad()
def _target_tokens(model: IJepa, images: torch.Tensor, target_norm: str, batch_size: int = 32) -> torch.Tensor:
    """Normalised target-encoder tokens [B, N, D] of uint8 images (as the loss's targets)."""
    device = next(model.target_encoder.parameters()).device
    out = [model.target_encoder(to_model_input(images[i:i + batch_size]).to(device)).float()
           for i in range(0, len(images), batch_size)]
    return normalize_targets(torch.cat(out), target_norm)


@torch.no_grad()
def patch_bank(model: IJepa, images: torch.Tensor, *, target_norm: str = "layer_norm", batch_size: int = 32) -> PatchBank:
    """Every patch of uint8 ``images`` [B, 3, H, W] (at the model's size) with its target feature."""
    tokens = _target_tokens(model, images, target_norm, batch_size)
    return PatchBank(F.normalize(tokens.reshape(-1, tokens.shape[-1]), dim=1).cpu(),
                     image_patches(images, model.config.patch_size))


def sample_view_masks(settings: ViewSettings, img_size: int, patch_size: int, num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Context [B, K_ctx] and target masks [M, B, K_tgt] drawn as training draws them, at step ``settings.seed``
    (the legacy sampler's global RNG is seeded with it and restored), so one seed gives one picture."""
    collator = MaskCollator(settings.mask, img_size=img_size, patch_size=patch_size, seed=settings.seed)
    collator.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        (context,), targets = collator.sample(num_images, settings.seed)
    return context, torch.stack(targets)


def block_masks_at(grid: tuple[int, int], row: int, col: int, *, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One target block of ``height`` x ``width`` patches centred (as near as the grid allows) on patch
    (``row``, ``col``), and the rest of the image as context: masks [1, K_ctx], [1, 1, K_tgt]."""
    gh, gw = grid
    if not (0 <= row < gh and 0 <= col < gw):
        raise ValueError(f"patch ({row}, {col}) is outside the {gh}x{gw} grid")
    if gh * gw < 2:
        raise ValueError("a 1x1 patch grid leaves no room for both a context and a target")
    height, width = max(1, min(height, gh)), max(1, min(width, gw))
    if height * width == gh * gw:  # leave at least one row or column of context
        height, width = (height - 1, width) if gh > 1 else (height, width - 1)
    top = min(max(row - height // 2, 0), gh - height)
    left = min(max(col - width // 2, 0), gw - width)
    inside = torch.zeros(gh, gw, dtype=torch.bool)
    inside[top:top + height, left:left + width] = True
    flat = inside.flatten()
    return flat.logical_not().nonzero().T, flat.nonzero().T.unsqueeze(0)


@torch.no_grad()
def predictor_view(
    model: IJepa,
    images: torch.Tensor,
    *,
    settings: ViewSettings | None = None,
    masks: tuple[torch.Tensor, torch.Tensor] | None = None,
    bank: PatchBank | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> list[PredictorView]:
    """Run the context encoder and the predictor on uint8 ``images`` [B, 3, H, W] (at the model's size).

    ``masks`` (context [B, K_ctx], targets [M, B, K_tgt]) default to :func:`sample_view_masks` of
    ``settings``. ``bank`` defaults to each image's own patches.
    """
    settings = settings or ViewSettings()
    _check_parts(model)
    config = model.config
    b, _, h, w = images.shape
    if (h, w) != (config.img_size, config.img_size):
        raise ValueError(f"images are {h}x{w}, the model reads {config.img_size}x{config.img_size}: resize them first")
    context, targets = masks if masks is not None else sample_view_masks(settings, config.img_size, config.patch_size, b)
    grid = (h // config.patch_size, w // config.patch_size)
    device = next(model.context_encoder.parameters()).device
    tokens = _target_tokens(model, images, settings.target_norm)
    z = model.context_encoder(to_model_input(images).to(device), context.to(device))
    predicted = model.predictor(z, context.to(device), targets.to(device)).float().cpu()  # [M*B, K, D], mask-major
    actual = apply_masks(tokens.cpu(), list(targets))
    cosine = F.cosine_similarity(predicted, actual, dim=-1)
    own = bank is None
    views = []
    for i in range(b):
        image_bank = patch_bank_of(tokens[i:i + 1], images[i:i + 1], config.patch_size) if own else bank
        rows = [m * b + i for m in range(len(targets))]
        found = [nearest_patches(predicted[r], image_bank.features, chunk=chunk) for r in rows]
        views.append(PredictorView(
            image=images[i], grid=grid, context=context[i], targets=[t[i] for t in targets],
            cosine=[cosine[r] for r in rows], retrieved=[f[0] for f in found], retrieved_cosine=[f[1] for f in found],
            bank=image_bank,
        ))
    return views


def patch_bank_of(tokens: torch.Tensor, images: torch.Tensor, patch_size: int) -> PatchBank:
    """A :class:`PatchBank` of already computed normalised tokens [B, N, D] and their uint8 images."""
    return PatchBank(F.normalize(tokens.reshape(-1, tokens.shape[-1]).float(), dim=1).cpu(), image_patches(images, patch_size))


def _check_parts(model: Any) -> None:
    missing = [p for p in ("context_encoder", "target_encoder", "predictor") if getattr(model, p, None) is None]
    if missing:
        raise HubLayoutError(
            f"the predictor view needs the context encoder, the target encoder and the predictor; this model has no "
            f"{', '.join(missing)}. Fix: load a run folder (runs/x), a repo saved with its predictor, or a released "
            "checkpoint, with with_context_encoder=True and with_predictor=True."
        )


def view_settings(recipe: Mapping[str, Any] | None, *, seed: int = 0) -> ViewSettings:
    """The mask settings and target normalisation of a stored recipe (``config.json``'s ``ijepa.recipe``);
    missing keys (or no recipe: released checkpoints) take the defaults, which are the released settings."""
    recipe = recipe or {}
    fields = {f.name for f in dataclasses.fields(MaskSection)}
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in (recipe.get("mask") or {}).items() if k in fields}
    norm = (recipe.get("loss") or {}).get("target_norm", "layer_norm")
    return ViewSettings(mask=MaskSection(**stored), target_norm=norm, seed=seed)


def load_predictor_model(source: str | os.PathLike, **kwargs: Any) -> tuple[IJepa, ViewSettings]:
    """The model of ``source`` (anything :func:`~ijepa_hub.from_pretrained` takes) with its context encoder and
    predictor, and the view settings of its recipe. A source without a predictor is a :class:`HubLayoutError`
    saying which sources have one."""
    try:
        model = from_pretrained(source, with_context_encoder=True, with_predictor=True, **kwargs)
    except HubLayoutError as err:
        raise HubLayoutError(
            f"{source}: the predictor view needs the context encoder and the predictor, and this source cannot give "
            f"them ({err}). Fix: pass an ijepa-train run folder (runs/x), a repo saved with predictor.safetensors, or "
            "a released checkpoint name."
        ) from None
    _check_parts(model)  # a fine-tuned classifier has neither
    recipe = None
    try:
        recipe = (read_config(source).get("ijepa") or {}).get("recipe")
    except (OSError, ValueError):  # released checkpoints and transformers repos hold no recipe
        log.info("%s: no recipe stored; the released mask settings are used", source)
    return model, view_settings(recipe)


def summary(views: Sequence[PredictorView], *, own_bank: bool = True) -> dict[str, Any]:
    """Mean cosine(predicted, actual) and, for own-image banks, the self-retrieval rate, over ``views``."""
    out: dict[str, Any] = {"mean_cosine": float(np.mean([v.mean_cosine for v in views])),
                           "per_image_cosine": [round(v.mean_cosine, 4) for v in views]}
    if own_bank:
        out["self_retrieval"] = float(np.mean([v.self_retrieval() for v in views]))
    return out


def predict_picture(
    source: str,
    images: torch.Tensor | None,
    out: str | os.PathLike,
    *,
    bank: str = SELF_BANK,
    bank_size: int = 64,
    seed: int = 0,
    baseline: bool = False,
    device: str | None = None,
    num: int = 2,
    data: str = SYNTHETIC_SPECS[0],
    **load_kwargs: Any,
) -> list[dict[str, Any]]:
    """``ijepa-eval predict``: the predictor view of ``source`` on ``images`` (paths; None: ``num`` synthetic
    shapes of ``data``) as a PNG at ``out``, with the random-init network of the same architecture below each
    image's row when ``baseline``. Returns one summary per network (:func:`summary`)."""
    if not os.fspath(out).lower().endswith(".png"):
        raise ValueError(f"--out {os.fspath(out)!r}: the picture is a PNG. Fix: name a .png file")
    model, settings = load_predictor_model(source, device=device, **load_kwargs)
    settings = dataclasses.replace(settings, seed=seed)
    size = model.config.img_size
    shown = display_images(images, size) if images else synthetic_images(num, size, data=data)
    bank_pixels = bank_images(bank, size, limit=bank_size)
    nets: list[tuple[str, IJepa]] = [("model", model)]
    if baseline:
        nets.append(("random_init", random_init_model(model.config, seed=seed, with_predictor=True).to(device or "cpu")))
    views, results = {}, []
    for who, net in nets:
        patches = None if bank_pixels is None else patch_bank(net, bank_pixels, target_norm=settings.target_norm)
        views[who] = predictor_view(net, shown, settings=settings, bank=patches)
        results.append({"source": os.fspath(source), "encoder": who, "bank": bank, "seed": seed,
                        **summary(views[who], own_bank=bank_pixels is None)})
    rows = [(" ".join(filter(None, (who if baseline else "", f"image {i + 1}" if len(shown) > 1 else ""))) or who, v[i])
            for i in range(len(shown)) for who, v in views.items()]  # image-major: the model above its baseline
    what = "the image itself" if bank_pixels is None else f"{bank} ({len(bank_pixels)} images)"
    plot_predictor_view(rows, out, bank=what,
                        title=f"{model_label(source, model)}: what the predictor predicts (masks: seed {seed})")
    return results


def summary_table(results: Sequence[Mapping[str, Any]]) -> str:
    """The summaries of :func:`predict_picture` as a text table (mean cosine, self-retrieval %)."""
    rows = [[r["encoder"], f"{r['mean_cosine']:.3f}", f"{100 * r['self_retrieval']:.1f}" if "self_retrieval" in r else "-"]
            for r in results]
    return format_table(rows, ["encoder", "mean cosine", "retrieves itself %"])
