"""The ``textured`` look of the synthetic shapes: a second image distribution over the same geometry.

Given where the shapes are (an instance-id map), paint a bright two-colour pastel background pattern
(stripes or checks at a random angle and period) and the shapes in dark colours, hatched with a second
dark colour and ringed by a near-black outline. Colours, textures and edges differ from the plain style
(dark plain background, bright flat shapes) while every shape pixel stays exactly where it was, so the
labels and segmentation masks of the two styles are the same.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["paint_textured"]

PERIOD = (0.08, 0.2)  # background pattern period, as a fraction of the image side
PASTEL = (185, 256)  # background channel values (bright)
PASTEL_STEP = (45, 85)  # how much darker the second background colour is, per channel
DARK = (10, 100)  # shape channel values (dark)


def paint_textured(ids: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An RGB image for the instance map ``ids`` ([H, W] ints: 0 background, k >= 1 the k-th shape), its
    colours and patterns drawn from ``rng`` (the style's own stream, not the geometry's)."""
    h, w = ids.shape
    side = min(h, w)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    light = rng.integers(*PASTEL, 3)
    second = np.clip(light - rng.integers(*PASTEL_STEP, 3), 0, 255)
    checks = bool(rng.integers(2))
    image = np.where(_pattern(x, y, rng, side, checks)[..., None], second, light)

    hatch = _pattern(x, y, rng, max(side // 3, 6), checks=False)  # finer stripes inside the shapes
    outline = _outline(ids, width=max(1, side // 48))
    for k in range(1, int(ids.max()) + 1):
        inside = ids == k
        fill = rng.integers(*DARK, 3)
        stripe = fill // 2
        image[inside] = np.where(hatch[inside][:, None], stripe, fill)
    image[outline] = rng.integers(0, DARK[0] + 1, 3)
    return Image.fromarray(image.astype(np.uint8), "RGB")


def _pattern(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, side: int, checks: bool) -> np.ndarray:
    """A boolean [H, W] map of stripes (or checks) at a random angle, period a random share of ``side``."""
    angle = rng.uniform(0, np.pi)
    half = max(1.0, rng.uniform(*PERIOD) * side / 2)
    u = np.floor((x * np.cos(angle) + y * np.sin(angle)) / half)
    if not checks:
        return u % 2 == 1
    v = np.floor((-x * np.sin(angle) + y * np.cos(angle)) / half)
    return (u + v) % 2 == 1


def _outline(ids: np.ndarray, *, width: int) -> np.ndarray:
    """Shape pixels within ``width`` px of their shape's edge (an erosion of each shape by a square)."""
    layer = Image.fromarray(ids.astype(np.uint8), "L")
    low = np.asarray(layer.filter(ImageFilter.MinFilter(2 * width + 1)))
    high = np.asarray(layer.filter(ImageFilter.MaxFilter(2 * width + 1)))
    return (ids > 0) & ((low != ids) | (high != ids))
