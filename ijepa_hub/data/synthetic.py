"""A built-in dataset of procedurally drawn shapes, labelled with the shape kind and the count.

It needs no download, is deterministic by seed (image ``i`` depends only on ``(seed, i)``) and has two
labels a linear probe can check: which shape is drawn and how many copies. :meth:`SyntheticShapes.segmentation`
draws the same image with a per-pixel label mask (0 background, 1 + shape index where a shape is): the
segmentation probe's built-in data.

Two styles draw the same geometry (and so the same labels and masks) for a given ``(seed, index)``:
``plain`` (shapes in bright flat colours on a dark plain background) and ``textured`` (dark hatched,
outlined shapes on a bright striped or checked pastel background, :mod:`~ijepa_hub.data.textures`): two
domains to adapt between without a download. A data spec names them: ``synthetic`` and
``synthetic:textured`` (:func:`synthetic_style` reads one).
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from .textures import paint_textured

__all__ = ["SyntheticShapes", "SHAPES", "SEGMENTATION_CLASSES", "STYLES", "SYNTHETIC", "SYNTHETIC_SPECS",
           "synthetic_style", "synthetic_spec"]

SHAPES = ("circle", "square", "triangle", "cross")
SEGMENTATION_CLASSES = ("background", *SHAPES)  # mask value = index here
MAX_COUNT = 4
STYLES = ("plain", "textured")  # the first is the default
SYNTHETIC = "synthetic"  # the data spec of the plain style; "synthetic:<style>" names another
_STYLE_STREAM = 1  # the style's colours come from np.random.default_rng((seed, index, _STYLE_STREAM))


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown synthetic style {style!r}; known: {', '.join(STYLES)}")


def synthetic_spec(style: str) -> str:
    """The data spec that names ``style``: ``synthetic`` (plain) or ``synthetic:<style>``."""
    _check_style(style)
    return SYNTHETIC if style == STYLES[0] else f"{SYNTHETIC}:{style}"


SYNTHETIC_SPECS = tuple(synthetic_spec(style) for style in STYLES)


def synthetic_style(spec: str | None) -> str | None:
    """The style a data spec names (``synthetic`` -> ``"plain"``, ``synthetic:textured`` -> ``"textured"``),
    or None when ``spec`` is not the built-in synthetic data (a folder, shards, ``hfds/NAME``, None).

    Raises ValueError for ``synthetic:<unknown>``, naming the known specs.
    """
    if spec is None or (spec != SYNTHETIC and not spec.startswith(SYNTHETIC + ":")):
        return None
    if spec not in SYNTHETIC_SPECS:  # one spelling per style (so one feature-cache fingerprint)
        raise ValueError(f"unknown synthetic data spec {spec!r}: the built-in synthetic data is one of "
                         f"{', '.join(SYNTHETIC_SPECS)}")
    return STYLES[SYNTHETIC_SPECS.index(spec)]


class SyntheticShapes(Dataset):
    """``num_samples`` RGB images of ``size`` px, each with 1..4 copies of one shape, in ``style``
    (:data:`STYLES`).

    Items are ``(PIL.Image, (shape_index, count))``; ``count`` is 1-based. Colours, sizes and positions
    vary per image; copies do not overlap (a placement that would is retried, then dropped, and the
    label counts what was drawn). The style changes the pixels only, never the geometry or the labels.
    """

    label_names = ("shape", "count")

    def __init__(self, num_samples: int = 4096, *, size: int = 96, seed: int = 0, style: str = STYLES[0]) -> None:
        if num_samples < 1 or size < 16:
            raise ValueError(f"SyntheticShapes needs num_samples >= 1 and size >= 16, got {num_samples}, {size}")
        _check_style(style)
        self.num_samples, self.size, self.seed, self.style = num_samples, size, seed, style

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[Image.Image, tuple[int, int]]:
        image, _, labels = self._draw(index, with_mask=False)
        return image, labels

    def segmentation(self, index: int) -> tuple[Image.Image, Image.Image]:
        """Image ``index`` (the very pixels ``self[index]`` gives) and its label mask, a mode-"L" image of the
        same size: 0 background, ``1 + SHAPES.index(kind)`` inside a shape (see :data:`SEGMENTATION_CLASSES`)."""
        image, mask, _ = self._draw(index, with_mask=True)
        return image, mask

    def _draw(self, index: int, *, with_mask: bool) -> tuple[Image.Image, Image.Image | None, tuple[int, int]]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} synthetic images")
        background, shape, placed = self._geometry(index)
        kind, canvas = SHAPES[shape], (self.size, self.size)
        if self.style == "plain":
            image = Image.new("RGB", canvas, background)
            draw = ImageDraw.Draw(image)
            for cx, cy, r, colour, angle in placed:
                _draw_shape(draw, kind, cx, cy, r, colour, angle)
        else:  # the same silhouettes, numbered, painted from the style's own random stream
            ids = Image.new("L", canvas, 0)
            draw = ImageDraw.Draw(ids)
            for k, (cx, cy, r, _, angle) in enumerate(placed, start=1):
                _draw_shape(draw, kind, cx, cy, r, k, angle)
            image = paint_textured(np.asarray(ids), np.random.default_rng((self.seed, index, _STYLE_STREAM)))
        mask = None
        if with_mask:  # the same geometry, filled with the class index
            mask = Image.new("L", canvas, 0)
            draw = ImageDraw.Draw(mask)
            for cx, cy, r, _, angle in placed:
                _draw_shape(draw, kind, cx, cy, r, 1 + shape, angle)
        return image, mask, (shape, len(placed))

    def _geometry(self, index: int) -> tuple[tuple[int, ...], int, list[tuple[float, float, float, tuple[int, ...], float]]]:
        """Image ``index``'s plain background colour, shape index and placed copies ``(cx, cy, r, colour,
        angle)``: every draw of the plain style, in its order, whatever the style (so the geometry agrees)."""
        rng = np.random.default_rng((self.seed, index))
        shape = int(rng.integers(len(SHAPES)))
        wanted = int(rng.integers(1, MAX_COUNT + 1))
        background = tuple(int(c) for c in rng.integers(0, 96, 3))
        placed: list[tuple[float, float, float, tuple[int, ...], float]] = []
        for _ in range(wanted):
            for _attempt in range(20):
                r = float(rng.uniform(0.08, 0.16)) * self.size
                cx, cy = (float(v) for v in rng.uniform(r, self.size - r, 2))
                if all(math.hypot(cx - x, cy - y) > r + q + 1 for x, y, q, _, _ in placed):
                    colour = tuple(int(c) for c in rng.integers(128, 256, 3))
                    angle = float(rng.uniform(0, math.pi))
                    placed.append((cx, cy, r, colour, angle))
                    break
        return background, shape, placed


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, colour, angle: float) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        draw.regular_polygon((cx, cy, r), 4, rotation=math.degrees(angle), fill=colour)
    elif kind == "triangle":
        draw.regular_polygon((cx, cy, r), 3, rotation=math.degrees(angle), fill=colour)
    elif kind == "cross":
        w = r / 3  # half-width; half-length 0.9 r keeps the cross inside its circle of radius r
        c, s = math.cos(angle), math.sin(angle)
        for dx, dy in ((1, 0), (0, 1)):
            ux, uy = dx * c - dy * s, dx * s + dy * c  # bar direction
            vx, vy = -uy, ux  # its normal
            corners = [
                (cx + a * 0.9 * r * ux + b * w * vx, cy + a * 0.9 * r * uy + b * w * vy)
                for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
            ]
            draw.polygon(corners, fill=colour)
    else:
        raise ValueError(f"unknown shape {kind!r}; known: {SHAPES}")
