"""The feature explorer behind ``ijepa-hub demo``: plain functions, no web framework (the Gradio page in
:mod:`ijepa_hub.eval.demo_app` only lays them out), so every step is testable without a browser.

An :class:`Explorer` holds one model (anything :func:`~ijepa_hub.from_pretrained` takes), reads an image
(upload, a synthetic shape, a folder's image) at the model's size, caches its patch features under a hash of its
pixels, and draws: the patch-feature PCA as RGB, the cosine of every patch to a clicked one in this image and in a
second one (dense matching), the predictor view for a target block centred on the click
(:mod:`~ijepa_hub.eval.predictor_view`), and the folder's images nearest by pooled feature.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.images import ImageInput, list_images, load_image, open_image
from ..errors import HubLayoutError, ImageReadError
from ..hub.load import from_pretrained, read_config
from ..models.extract import feature_encoder
from ..registry import VARIANTS
from .plots import pca_rgb, predictor_view_figure
from .predictor_view import (
    ViewSettings,
    block_masks_at,
    display_images,
    load_predictor_model,
    predictor_view,
    synthetic_images,
    to_model_input,
)

__all__ = ["Explorer", "Loaded", "DISPLAY_SIZE", "SYNTHETIC_PREFIX"]

log = logging.getLogger(__name__)

DISPLAY_SIZE = 256  # pixels of every picture on the page (the model's input, upscaled with nearest)
SYNTHETIC_PREFIX = "synthetic #"  # the names of the built-in synthetic shapes in the image choices
NUM_SYNTHETIC = 8
MAX_FOLDER_IMAGES = 256  # the folder's first images, in sorted order: the choices and the nearest-image search
CACHE_SIZE = 64  # images whose patch features are kept
_MARK = np.array([1.0, 0.0, 1.0])  # the clicked patch's outline


@dataclass
class Loaded:
    """An image read for the page: its key (hash of its pixels), pixels at the model's size, a note on how it was read."""

    key: str
    pixels: torch.Tensor  # uint8 [3, S, S]
    note: str = ""


class Explorer:
    """One model and the images shown with it; see the module docstring."""

    def __init__(self, model: Any, *, name: str, settings: ViewSettings | None = None, license: str | None = None,
                 folder: str | os.PathLike | None = None) -> None:
        self.model = model
        self.name = name
        self.license = license or "not stated"
        self.settings = settings or ViewSettings()
        self.encoder = feature_encoder(model)
        self.device = next(self.encoder.parameters()).device
        self.size = int(model.config.img_size)
        self.patch = int(model.config.patch_size)
        self.grid = (self.size // self.patch, self.size // self.patch)
        self.has_predictor = all(getattr(model, p, None) is not None for p in ("context_encoder", "target_encoder", "predictor"))
        self.folder_paths = list_images(folder)[:MAX_FOLDER_IMAGES] if folder else []
        self._synthetic: torch.Tensor | None = None
        self._tokens: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._pixels: dict[str, torch.Tensor] = {}
        self._folder_pooled: torch.Tensor | None = None

    @classmethod
    def load(cls, source: str, *, device: str = "cpu", folder: str | os.PathLike | None = None, **kwargs: Any) -> Explorer:
        """Load ``source`` with its predictor when it has one (else its feature encoder alone)."""
        try:
            model, settings = load_predictor_model(source, device=device, **kwargs)
        except HubLayoutError:
            model, settings = from_pretrained(source, device=device, **kwargs), None
        return cls(model, name=str(source), settings=settings, license=_licence(source, model), folder=folder)

    # -- what the page states ------------------------------------------------------------------------------
    def describe(self) -> str:
        """One Markdown line: the model, its size, its licence, the device and whether it has a predictor."""
        c = self.model.config
        pred = "with its predictor" if self.has_predictor else "no predictor (the predictor view is off)"
        return (f"**model** `{self.name}` ({c.embed_dim} wide, {c.depth} blocks, {self.size} px, patch {self.patch}; "
                f"{pred}) · **licence** {self.license} · **device** {self.device}")

    def choices(self) -> list[str]:
        """The images one can pick: the synthetic shapes, then the folder's images."""
        return [f"{SYNTHETIC_PREFIX}{i + 1}" for i in range(NUM_SYNTHETIC)] + self.folder_paths

    # -- reading images --------------------------------------------------------------------------------------
    def read(self, image: ImageInput | str) -> Loaded:
        """An upload (path), a choice (:meth:`choices`) or pixels, at the model's size. Unreadable files, and
        files over Pillow's pixel limit, raise :class:`~ijepa_hub.errors.ImageReadError`; greyscale is
        repeated to RGB and animated images give their first frame (both said in ``note``)."""
        if isinstance(image, str) and image.startswith(SYNTHETIC_PREFIX):
            index = int(image[len(SYNTHETIC_PREFIX):]) - 1
            if not 0 <= index < NUM_SYNTHETIC:
                raise ValueError(f"no synthetic image {image!r}: pick one of 1..{NUM_SYNTHETIC}")
            if self._synthetic is None:
                self._synthetic = synthetic_images(NUM_SYNTHETIC, self.size)
            return self._keep(self._synthetic[index], "")
        note = ""
        if isinstance(image, (str, os.PathLike)):
            with warnings.catch_warnings():  # over MAX_IMAGE_PIXELS is refused here, not only over twice it
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = open_image(image)
            with Image.open(image) as header:  # the decoded copy keeps neither the frame count nor the mode
                frames, mode = getattr(header, "n_frames", 1), header.mode
            notes = [f"animated ({frames} frames): the first is shown"] if frames > 1 else []
            if mode in ("L", "LA", "I", "I;16", "F", "1"):
                notes.append("greyscale: its grey is repeated to RGB")
            note, image = "; ".join(notes), opened
        return self._keep(display_images([load_image(image)], self.size)[0], note)

    def _keep(self, pixels: torch.Tensor, note: str) -> Loaded:
        key = hashlib.sha256(pixels.contiguous().numpy().tobytes()).hexdigest()[:16]
        self._pixels[key] = pixels
        return Loaded(key, pixels, note)

    def pixels(self, key: str) -> torch.Tensor:
        if key not in self._pixels:
            raise ValueError("no image is loaded: upload or pick one first")
        return self._pixels[key]

    @torch.no_grad()
    def tokens(self, key: str) -> torch.Tensor:
        """The feature encoder's patch tokens [N, D] of a read image, cached by the hash of its pixels."""
        if key in self._tokens:
            self._tokens.move_to_end(key)
            return self._tokens[key]
        x = to_model_input(self.pixels(key)[None]).to(self.device)
        out = self.encoder(x)[0].float().cpu()
        self._tokens[key] = out
        while len(self._tokens) > CACHE_SIZE:
            old, _ = self._tokens.popitem(last=False)
            self._pixels.pop(old, None)
        return out

    # -- pictures ---------------------------------------------------------------------------------------------
    def show(self, key: str) -> np.ndarray:
        """The image as the page shows it: uint8 [DISPLAY_SIZE, DISPLAY_SIZE, 3]."""
        return _upscale(self.pixels(key).permute(1, 2, 0).numpy())

    def pca(self, key: str) -> np.ndarray:
        """The image's patch features' first three principal components as RGB, uint8 [DISPLAY_SIZE]^2 x 3."""
        rgb = pca_rgb(self.tokens(key)[None], remove_position=False)[0].reshape(*self.grid, 3)
        return _upscale((rgb.numpy() * 255).round().astype(np.uint8))

    def patch_at(self, x: float, y: float) -> tuple[int, int]:
        """The (row, column) of the patch under a click at pixel (``x``, ``y``) of a shown picture."""
        gh, gw = self.grid
        return min(max(int(y * gh / DISPLAY_SIZE), 0), gh - 1), min(max(int(x * gw / DISPLAY_SIZE), 0), gw - 1)

    def similarity(self, key: str, row: int, col: int, other: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Cosine of every patch to patch (``row``, ``col``) of ``key``, over ``key`` itself (the patch outlined)
        and over the image ``other`` (dense matching; its best match outlined): heatmaps over the images."""
        tokens = self.tokens(key)
        query = tokens[row * self.grid[1] + col]
        pictures = []
        for k in (key, other):
            if k is None:
                pictures.append(None)
                continue
            sims = F.cosine_similarity(self.tokens(k), query[None], dim=1)
            best = divmod(int(sims.argmax()), self.grid[1]) if k != key else (row, col)
            pictures.append(_heatmap(self.pixels(k), sims.reshape(self.grid).numpy(), best))
        return pictures[0], pictures[1]

    def predictor_picture(self, key: str, row: int, col: int) -> np.ndarray | None:
        """The predictor view for one target block centred on (``row``, ``col``), the rest of the image as
        context; None without a predictor. The block's area is the middle of the recipe's target scale."""
        if not self.has_predictor:
            return None
        area = sum(self.settings.mask.target_scale) / 2 * self.grid[0] * self.grid[1]
        side = max(1, round(math.sqrt(area)))
        context, targets = block_masks_at(self.grid, row, col, height=side, width=side)
        view = predictor_view(self.model, self.pixels(key)[None], settings=self.settings, masks=(context, targets))[0]
        fig = predictor_view_figure([("clicked block", view)], title=f"{self.name}: predicted block at patch ({row}, {col})")
        return _figure_pixels(fig)

    @torch.no_grad()
    def nearest_images(self, key: str, k: int = 6) -> list[tuple[str, str]]:
        """The folder's ``k`` images nearest to ``key`` by cosine of pooled (mean patch) features: (path, caption)."""
        if not self.folder_paths:
            return []
        if self._folder_pooled is None:
            pooled = []
            for path in self.folder_paths:
                try:
                    pooled.append(self.tokens(self.read(path).key).mean(0))
                except ImageReadError as err:  # one broken file in the folder does not stop the search
                    log.warning("%s", err)
                    pooled.append(torch.full_like(self.tokens(key)[0], float("nan")))
            self._folder_pooled = torch.stack(pooled)
        sims = F.cosine_similarity(self._folder_pooled, self.tokens(key).mean(0)[None], dim=1).nan_to_num(-2.0)
        top = sims.topk(min(k, len(sims)))
        return [(self.folder_paths[i], f"cosine {v:.3f}") for v, i in zip(top.values.tolist(), top.indices.tolist())]


def _licence(source: str, model: Any) -> str | None:
    """The licence a repo's ``config.json`` states, else the released variant's (None: not stated)."""
    try:
        stated = (read_config(source).get("ijepa") or {}).get("license")
    except (OSError, ValueError):
        stated = None
    variant = VARIANTS.get(getattr(model, "variant", None) or "")
    return stated or (variant.license if variant else None)


def _upscale(rgb: np.ndarray) -> np.ndarray:
    """[h, w, 3] -> [DISPLAY_SIZE, DISPLAY_SIZE, 3] with nearest-neighbour pixels (patches stay sharp squares)."""
    rows = np.arange(DISPLAY_SIZE) * rgb.shape[0] // DISPLAY_SIZE
    cols = np.arange(DISPLAY_SIZE) * rgb.shape[1] // DISPLAY_SIZE
    return np.ascontiguousarray(rgb[rows][:, cols])


def _heatmap(pixels: torch.Tensor, sims: np.ndarray, mark: tuple[int, int]) -> np.ndarray:
    """The image in grey under a cosine map (-1 blue .. 1 red), patch ``mark`` outlined: uint8 for the page."""
    import matplotlib

    grey = (pixels.float().mean(0) / 255.0).numpy()
    colours = matplotlib.colormaps["coolwarm"]((np.clip(sims, -1, 1) + 1) / 2)[..., :3]
    image = 0.35 * _upscale(np.repeat(grey[..., None], 3, 2)) + 0.65 * _upscale(colours)
    gh, gw = sims.shape
    ph, pw = DISPLAY_SIZE // gh, DISPLAY_SIZE // gw
    r, c = mark
    top, left = r * ph, c * pw
    image[top:top + ph, left:left + 2] = image[top:top + ph, left + pw - 2:left + pw] = _MARK
    image[top:top + 2, left:left + pw] = image[top + ph - 2:top + ph, left:left + pw] = _MARK
    return (image * 255).round().astype(np.uint8)


def _figure_pixels(fig) -> np.ndarray:
    """A matplotlib figure as uint8 RGB, closed afterwards."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb
