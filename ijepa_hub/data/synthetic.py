"""A built-in dataset of procedurally drawn shapes, labelled with the shape kind and the count.

It needs no download, is deterministic by seed (image ``i`` depends only on ``(seed, i)``) and has two
labels a linear probe can check: which shape is drawn and how many copies. :meth:`SyntheticShapes.segmentation`
draws the same image with a per-pixel label mask (0 background, 1 + shape index where a shape is): the
segmentation probe's built-in data.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

__all__ = ["SyntheticShapes", "SHAPES", "SEGMENTATION_CLASSES"]

SHAPES = ("circle", "square", "triangle", "cross")
SEGMENTATION_CLASSES = ("background", *SHAPES)  # mask value = index here
MAX_COUNT = 4


class SyntheticShapes(Dataset):
    """``num_samples`` RGB images of ``size`` px, each with 1..4 copies of one shape on a plain background.

    Items are ``(PIL.Image, (shape_index, count))``; ``count`` is 1-based. Colours, sizes and positions
    vary per image; copies do not overlap (a placement that would is retried, then dropped, and the
    label counts what was drawn).
    """

    label_names = ("shape", "count")

    def __init__(self, num_samples: int = 4096, *, size: int = 96, seed: int = 0) -> None:
        if num_samples < 1 or size < 16:
            raise ValueError(f"SyntheticShapes needs num_samples >= 1 and size >= 16, got {num_samples}, {size}")
        self.num_samples, self.size, self.seed = num_samples, size, seed

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
        rng = np.random.default_rng((self.seed, index))
        shape = int(rng.integers(len(SHAPES)))
        wanted = int(rng.integers(1, MAX_COUNT + 1))
        background = tuple(int(c) for c in rng.integers(0, 96, 3))
        image = Image.new("RGB", (self.size, self.size), background)
        draw = ImageDraw.Draw(image)
        mask = Image.new("L", (self.size, self.size), 0) if with_mask else None
        mask_draw = ImageDraw.Draw(mask) if mask is not None else None
        placed: list[tuple[float, float, float]] = []
        for _ in range(wanted):
            for _attempt in range(20):
                r = float(rng.uniform(0.08, 0.16)) * self.size
                cx, cy = (float(v) for v in rng.uniform(r, self.size - r, 2))
                if all(math.hypot(cx - x, cy - y) > r + q + 1 for x, y, q in placed):
                    placed.append((cx, cy, r))
                    colour = tuple(int(c) for c in rng.integers(128, 256, 3))
                    angle = float(rng.uniform(0, math.pi))
                    _draw_shape(draw, SHAPES[shape], cx, cy, r, colour, angle)
                    if mask_draw is not None:  # the same geometry, filled with the class index
                        _draw_shape(mask_draw, SHAPES[shape], cx, cy, r, 1 + shape, angle)
                    break
        return image, mask, (shape, len(placed))


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
