"""The two built-in synthetic domains side by side: docs/images/synthetic_domains.png (docs/training.md).

One column per image index: the plain style (``synthetic``), the same index textured
(``synthetic:textured``) and the segmentation mask the two share, titled with the shared labels.

    python benchmarks/domains_picture.py [--num 6] [--seed 7] [--output docs/images/synthetic_domains.png]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ijepa_hub.data.synthetic import SEGMENTATION_CLASSES, SHAPES, STYLES, SyntheticShapes, synthetic_spec
from ijepa_hub.eval.plots import label_colours

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "images" / "synthetic_domains.png"


def draw(path: Path, *, num: int = 6, seed: int = 7, size: int = 96) -> Path:
    """Write the grid (``num`` indices of the ``seed`` set, ``size`` px) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    domains = [SyntheticShapes(num, size=size, seed=seed, style=style) for style in STYLES]
    fig, axes = plt.subplots(len(STYLES) + 1, num, figsize=(1.45 * num + 0.9, 1.5 * (len(STYLES) + 1)), squeeze=False)
    for i in range(num):
        pairs = [ds.segmentation(i) for ds in domains]
        masks = [np.asarray(mask) for _, mask in pairs]
        if any((m != masks[0]).any() for m in masks):
            raise RuntimeError(f"image {i}: the styles draw different masks; they must share the geometry")
        shape, count = domains[0][i][1]
        pictures = [np.asarray(image) for image, _ in pairs]
        pictures.append(label_colours(torch.tensor(masks[0]).long(), len(SEGMENTATION_CLASSES)))
        for row, picture in enumerate(pictures):
            axes[row, i].imshow(picture, interpolation="nearest")
            axes[row, i].set_xticks([]), axes[row, i].set_yticks([])
        axes[0, i].set_title(f"{SHAPES[shape]} x{count}", fontsize=8)
    for row, name in enumerate([*(synthetic_spec(s) for s in STYLES), "mask (both)"]):
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(f"Built-in synthetic domains: same geometry, labels and masks per index (seed {seed})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=6, help="image indices (columns)")
    parser.add_argument("--seed", type=int, default=7, help="the synthetic set's seed")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    path = draw(args.output, num=args.num, seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
