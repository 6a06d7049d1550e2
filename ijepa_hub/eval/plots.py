"""Pictures: sampled masks over images, PCA of patch features as RGB, the predictor view and training curves (PNG).

matplotlib (the ``viz`` extra) draws the figures; it is imported only when a picture is made.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import IJepaError
from ..hub.load import read_config
from ..masks import MaskCollator

if TYPE_CHECKING:
    from .predictor_view import PredictorView

__all__ = [
    "plot_masks", "pca_rgb", "pca_variance_ratio", "plot_pca", "plot_training_curves", "read_metrics", "label_colours",
    "plot_segmentation", "model_label", "predictor_panels", "plot_predictor_view",
]

ONLINE_PROBE = "online_probe"  # the panel of the online probe's k-NN accuracies (knn_<label> keys)
# saturated colours over a grey copy of the image, so that they stand out from any image's own colours
_TARGET_COLOURS = np.array([[255, 40, 40], [255, 220, 0], [255, 120, 0], [255, 0, 255]]) / 255.0
_CONTEXT_COLOUR = np.array([0, 230, 60]) / 255.0
_UNUSED_COLOUR = np.array([0.15, 0.15, 0.15])
_MEAN = np.array([0.485, 0.456, 0.406])
_STD = np.array([0.229, 0.224, 0.225])


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("pictures need matplotlib: pip install 'ijepa-hub[viz]'") from err
    return plt


def _to_rgb(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] ImageNet-normalised (float) or uint8 tensor -> [H, W, 3] floats in [0, 1]."""
    x = image.detach().cpu().float().permute(1, 2, 0).numpy()
    if image.dtype == torch.uint8:
        return x / 255.0
    return np.clip(x * _STD + _MEAN, 0.0, 1.0)


def _overlay(rgb: np.ndarray, grid: tuple[int, int], context: np.ndarray, targets: Sequence[np.ndarray]) -> np.ndarray:
    """The image in grey, context patches tinted green, each target block its own warm colour, unused patches dark."""
    gh, gw = grid
    ph, pw = rgb.shape[0] // gh, rgb.shape[1] // gw
    grey = np.repeat(rgb @ np.array([0.299, 0.587, 0.114]), 3).reshape(rgb.shape)
    tint = np.tile(_UNUSED_COLOUR, (gh * gw, 1))
    alpha = np.full(gh * gw, 0.7)
    tint[context] = _CONTEXT_COLOUR
    alpha[context] = 0.45
    for j, t in enumerate(targets):
        tint[t] = _TARGET_COLOURS[j % len(_TARGET_COLOURS)]
        alpha[t] = 0.65

    def up(a):
        return np.repeat(np.repeat(a.reshape(gh, gw, -1), ph, 0), pw, 1)
    return (1 - up(alpha)) * grey + up(alpha) * up(tint)


def plot_masks(
    images: torch.Tensor,
    collators: dict[str, MaskCollator],
    path: str | os.PathLike,
    *,
    step: int = 0,
    seed: int = 0,
    title: str = "",
) -> Path:
    """One row per masking mode: each image (in grey) with its context (green) and target blocks (warm colours),
    legend swatches below. Every row draws with torch's RNG seeded by ``seed`` (the legacy sampler uses the global
    RNG, as released), so the picture is the same on every run."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    n = len(images)
    fig, axes = plt.subplots(len(collators), n, figsize=(2.2 * n, 2.4 * len(collators) + 0.5), squeeze=False)
    num_targets = 0
    for row, (name, collator) in enumerate(collators.items()):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            (context,), targets = collator.sample(n, step)
        num_targets = max(num_targets, len(targets))
        for i in range(n):
            ax = axes[row, i]
            rgb = _to_rgb(images[i])
            ax.imshow(_overlay(rgb, (collator.height, collator.width), context[i].numpy(), [t[i].numpy() for t in targets]))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(f"{name}\ncontext {context.shape[1]}, targets {len(targets)}x{targets[0].shape[1]}",
                              fontsize=8)
    swatches = [Patch(color=_CONTEXT_COLOUR, label="context")]
    swatches += [Patch(color=_TARGET_COLOURS[j % len(_TARGET_COLOURS)], label=f"target {j + 1}") for j in range(num_targets)]
    swatches.append(Patch(color=_UNUSED_COLOUR, label="unused"))
    fig.legend(handles=swatches, loc="lower center", ncol=len(swatches), fontsize=8, frameon=False)
    fig.suptitle(f"{title or 'I-JEPA masks'} (patches; seed {seed}, step {step})", fontsize=9)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return _save(fig, path)


def _centred(patch_tokens: torch.Tensor, remove_position: bool) -> torch.Tensor:
    """[B, N, D] -> [B * N, D] centred features; with ``remove_position`` (and two images or more) the mean over
    the images at each position is removed first: what every image shares at a place (its position), not content."""
    x = patch_tokens.float()
    if remove_position and len(x) > 1:
        x = x - x.mean(0, keepdim=True)
    x = x.reshape(-1, x.shape[-1])
    return x - x.mean(0)


@torch.no_grad()
def pca_rgb(patch_tokens: torch.Tensor, *, remove_position: bool = True) -> torch.Tensor:
    """[B, N, D] patch features -> [B, N, 3] in [0, 1]: the top three principal components, shared scale
    (``remove_position``: of the features less their mean over the images at each position)."""
    b, n, _ = patch_tokens.shape
    x = _centred(patch_tokens, remove_position)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    proj = x @ v[:3].T
    lo, hi = proj.quantile(0.01, dim=0), proj.quantile(0.99, dim=0)
    return ((proj - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1).reshape(b, n, 3)


def pca_variance_ratio(patch_tokens: torch.Tensor, k: int = 3, *, remove_position: bool = True) -> list[float]:
    """Fractions of the patch features' variance along their first ``k`` principal components (as in :func:`pca_rgb`)."""
    power = torch.linalg.svdvals(_centred(patch_tokens, remove_position)).square()
    return (power[:k] / power.sum().clamp_min(1e-12)).tolist()


def plot_pca(images: torch.Tensor, patch_tokens: torch.Tensor, path: str | os.PathLike, *, title: str = "",
             remove_position: bool = True) -> Path:
    """Each image above the RGB map of its patch features' first three principal components, with a caption
    saying what the colours mean."""
    plt = _pyplot()
    b, n, _ = patch_tokens.shape
    grid = round(n**0.5)
    colours = pca_rgb(patch_tokens, remove_position=remove_position).reshape(b, grid, grid, 3).numpy()
    fig, axes = plt.subplots(2, b, figsize=(2.0 * b, 4.8), squeeze=False)
    for i in range(b):
        axes[0, i].imshow(_to_rgb(images[i]))
        axes[1, i].imshow(colours[i], interpolation="nearest")
        for ax in axes[:, i]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("patch features", fontsize=8)
    removed = "position (mean over the images at each patch) removed; " if remove_position and b > 1 else ""
    caption = (f"{removed}colour = principal components 1, 2, 3 as red, green, blue:\n"
               "patches of similar colour have similar features, in this image or across images")
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7)
    fig.suptitle(title or "PCA of patch features", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, path)


def label_colours(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """[..., H, W] class indices -> [..., H, W, 3] RGB in [0, 1]: class 0 black, the others tab10 / tab20
    colours, 255 (ignore) white."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if num_classes <= 11 else "tab20"]
    palette = np.zeros((256, 3))
    palette[1:num_classes] = [cmap(i % cmap.N)[:3] for i in range(num_classes - 1)]
    palette[255] = 1.0
    return palette[labels.cpu().numpy().astype(np.int64)]


def plot_segmentation(
    images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor, path: str | os.PathLike, *,
    classes: Sequence[str], title: str = "",
) -> Path:
    """One column per image: the image, its ground-truth mask and the predicted mask, with a class legend."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    b = len(images)
    fig, axes = plt.subplots(3, b, figsize=(1.9 * b + 1.6, 6.0), squeeze=False)
    truth, pred = label_colours(labels, len(classes)), label_colours(predictions, len(classes))
    for i in range(b):
        for row, picture in enumerate((_to_rgb(images[i]), truth[i], pred[i])):
            axes[row, i].imshow(picture, interpolation="nearest")
            axes[row, i].set_xticks([]), axes[row, i].set_yticks([])
    for row, name in enumerate(("image", "ground truth", "prediction")):
        axes[row, 0].set_ylabel(name, fontsize=9)
    swatches = label_colours(torch.arange(len(classes)), len(classes))
    fig.legend([Patch(color=c) for c in swatches], list(classes), loc="center right", fontsize=8, frameon=False)
    fig.suptitle(title or "Linear segmentation probe on frozen patch features", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / (1.9 * b + 1.6), 1))
    return _save(fig, path)


def model_label(source: str | os.PathLike, model) -> str:
    """The name a picture's title gives a model: its released variant, the Hub repo id or name it was loaded by,
    or for a local folder or file its architecture and recipe (``I-JEPA vit_tiny_patch8, recipe default``).
    Never a local path: a picture made in one folder is shown on other machines."""
    source = os.fspath(source)
    if getattr(model, "variant", None):
        return model.variant
    if not os.path.exists(source) and "://" not in source:
        return source  # a Hub repo id (or name) the user typed
    label = f"I-JEPA {model.config.name}"
    try:
        recipe = read_config(source).get("ijepa", {}).get("recipe", {})
    except (OSError, ValueError, IJepaError):  # a released-layout file, a transformers folder: no recipe
        recipe = {}
    name = recipe.get("name") if isinstance(recipe, dict) else None
    return f"{label}, recipe {name}" if isinstance(name, str) and name else label


def predictor_panels(view: PredictorView) -> dict[str, np.ndarray]:
    """The view's pictures as float RGB [H, W, 3] in [0, 1] (``masks``, ``actual``, ``retrieved``) and the cosine
    map [gh, gw] (NaN outside the targets): what :func:`plot_predictor_view` draws."""
    rgb = _to_rgb(view.image)
    gh, gw = view.grid
    p = rgb.shape[0] // gh
    faded = 0.25 + 0.25 * np.repeat(rgb @ np.array([0.299, 0.587, 0.114]), 3).reshape(rgb.shape)
    actual, retrieved = faded.copy(), faded.copy()
    heat = np.full(gh * gw, np.nan)
    bank_rgb = view.bank.pixels.float().div(255.0).permute(0, 2, 3, 1).numpy()
    for t, found, cos in zip(reversed(view.targets), reversed(view.retrieved), reversed(view.cosine)):
        for k, (idx, src) in enumerate(zip(t.tolist(), found.tolist())):  # the first block wins where blocks overlap
            r, c = divmod(idx, gw)
            actual[r * p:(r + 1) * p, c * p:(c + 1) * p] = rgb[r * p:(r + 1) * p, c * p:(c + 1) * p]
            retrieved[r * p:(r + 1) * p, c * p:(c + 1) * p] = bank_rgb[src]
            heat[idx] = float(cos[k])
    masks = _overlay(rgb, view.grid, view.context.numpy(), [t.numpy() for t in view.targets])
    return {"masks": masks, "actual": actual, "retrieved": retrieved, "cosine": heat.reshape(gh, gw)}



def _block_outline(ax, target: np.ndarray, grid: tuple[int, int], scale: float, colour) -> None:
    """A rectangle around a target block's patches (its bounding box), ``scale`` pixels per patch."""
    from matplotlib.patches import Rectangle

    rows, cols = np.divmod(target, grid[1])
    ax.add_patch(Rectangle(((cols.min() - 0.5 / scale) * scale, (rows.min() - 0.5 / scale) * scale),
                           (cols.max() - cols.min() + 1) * scale, (rows.max() - rows.min() + 1) * scale,
                           fill=False, edgecolor=colour, linewidth=1.2))


def predictor_view_figure(rows: Sequence[tuple[str, PredictorView]], *, title: str = "", bank: str = "the image itself"):
    """The matplotlib figure of :func:`plot_predictor_view` (the demo app shows it without a file)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 4, figsize=(8.4, 1.78 * len(rows) + 0.95), squeeze=False)
    heads = ("context (green) and targets", "targets: the actual patches", f"retrieved from {bank}",
             "cosine(predicted, actual)")
    image = None
    for r, (label, view) in enumerate(rows):
        pics = predictor_panels(view)
        size = pics["masks"].shape[0]
        for c, key in enumerate(("masks", "actual", "retrieved")):
            axes[r, c].imshow(pics[key], interpolation="nearest")
        image = axes[r, 3].imshow(pics["cosine"], cmap="RdYlGn", vmin=-1, vmax=1, interpolation="nearest")
        for c in range(4):
            scale = size / view.grid[0] if c < 3 else 1.0
            for j, t in enumerate(view.targets):
                _block_outline(axes[r, c], t.numpy(), view.grid, scale, _TARGET_COLOURS[j % len(_TARGET_COLOURS)])
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(heads[c], fontsize=8)
        axes[r, 0].set_ylabel(f"{label}\nmean cosine {view.mean_cosine:.2f}", fontsize=8)
    fig.colorbar(image, ax=axes[:, 3].tolist(), fraction=0.08, shrink=0.8)
    fig.text(0.01, 0.005, "retrieved: for each predicted target token, the patch whose target-encoder feature is nearest "
             "(cosine);\na predictor that learned something retrieves what is really there and its cosines are high (green)",
             fontsize=7, va="bottom")
    fig.suptitle(title or "What the predictor predicts", fontsize=9)
    fig.subplots_adjust(left=0.09, right=0.88, top=1 - 0.55 / fig.get_figheight(), bottom=0.45 / fig.get_figheight(),
                        wspace=0.05, hspace=0.06)
    return fig


def plot_predictor_view(rows: Sequence[tuple[str, PredictorView]], path: str | os.PathLike, *, title: str = "",
                        bank: str = "the image itself") -> Path:
    """One row per (label, view): the masks over the image, the actual target patches, the retrieved patches
    (nearest bank patch to each predicted feature) and the cosine map, each target block outlined in its colour."""
    return _save(predictor_view_figure(rows, title=title, bank=bank), path)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics JSONL file; a malformed line is an error naming the line."""
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from None
    return records


def plot_training_curves(
    metrics: str | os.PathLike | list[dict],
    path: str | os.PathLike,
    *,
    keys: Sequence[str] = ("loss", "lr", "momentum", "rankme", "rankme_centered", ONLINE_PROBE),
) -> Path:
    """One panel per metric against the step, from a run's ``metrics.jsonl`` (missing metrics skipped).

    The ``online_probe`` panel draws every ``knn_<label>`` accuracy of the online probe's records, one line each.
    """
    plt = _pyplot()
    records = read_metrics(metrics) if not isinstance(metrics, list) else metrics
    probe_keys = sorted({k for r in records for k in r if k.startswith("knn_")})
    present = [k for k in keys if (probe_keys if k == ONLINE_PROBE else any(k in r for r in records))]
    if not present:
        raise ValueError(f"none of {list(keys)} found in the metrics ({len(records)} records)")
    cols = min(3, len(present))  # rows of three panels: six in a row are too small to read in a README
    rows = -(-len(present) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(present):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, present):
        for line in probe_keys if key == ONLINE_PROBE else [key]:
            pts = [(r["step"], r[line]) for r in records if line in r and "step" in r]
            ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=line[len("knn_"):])
        if key == ONLINE_PROBE:
            ax.legend(fontsize=7)
        ax.set_title("online probe: k-NN top-1 %" if key == ONLINE_PROBE else key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if key == "loss" and min(v for _, v in pts) > 0:
            ax.set_yscale("log")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
