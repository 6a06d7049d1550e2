"""Input pipeline: images/s of one worker for JPEG decode + RandomResizedCrop + masks, draft mode on and off.

Writes ``--images`` JPEGs (quality 90, smooth random content with noise, sizes drawn uniformly in each
``--sizes`` range) into a temporary folder, then runs the trainer's own code on them in this one
process (what one DataLoader worker does): ``ImageFolder`` -> ``MicroBatchSampler`` keys ->
``TrainingSamples`` (``load_rgb``: Pillow's draft mode when even the smallest crop allows it, the
released RandomResizedCrop, normalisation) -> ``MaskedCollate`` (the recipe's masks). "Draft off"
hands the same files over as opened PIL images, which ``load_rgb`` decodes at full size. Variants
are interleaved; medians reported. Prints whether ``--workers`` such workers keep up with
``--target`` images/s, and saves ``results/data_<cpu>.json``.

    python benchmarks/bench_data.py                   # ViT-H/14 recipe (224 px crops), 16 workers vs 745 img/s
    python benchmarks/bench_data.py --loader-workers 16 --out data_cuda    # and a real 16-worker DataLoader
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from common import environment, interleaved, save_result  # noqa: E402

import ijepa_hub  # noqa: E402
from ijepa_hub.data import BatchPlan, ImageFolder, MaskedCollate, MicroBatchSampler, TrainingSamples  # noqa: E402
from ijepa_hub.data.transforms import min_crop_fraction, training_transform  # noqa: E402
from ijepa_hub.masks import MaskCollator  # noqa: E402


def write_jpegs(folder: Path, count: int, size_range: tuple[int, int, int, int], seed: int) -> list[tuple[int, int]]:
    """``count`` JPEGs (quality 90) of sizes in ``(w_min, h_min, w_max, h_max)``: smooth colour fields
    plus noise, so they compress like photographs rather than flat or white-noise images."""
    rng = np.random.default_rng(seed)
    w0, h0, w1, h1 = size_range
    sizes = []
    for i in range(count):
        w, h = int(rng.integers(w0, w1 + 1)), int(rng.integers(h0, h1 + 1))
        coarse = rng.integers(0, 256, (rng.integers(4, 12), rng.integers(4, 12), 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
        pixels = np.clip(field + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
        sizes.append((w, h))
    return sizes


class OpenedImages(torch.utils.data.Dataset):
    """The folder's images as opened PIL images: ``load_rgb`` then decodes them at full size (no draft)."""

    def __init__(self, folder: ImageFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int):
        path, label = self.folder[index]
        return Image.open(path), label


def pipeline(dataset, recipe, *, batch: int, batches: int):
    """A function that builds ``batches`` micro-batches of ``batch`` images as one worker would."""
    cfg = recipe.model_config()
    min_fraction = min_crop_fraction(recipe.data.crop_scale, recipe.data.crop_ratio)
    samples = TrainingSamples(
        dataset, training_transform(cfg.img_size, crop_scale=recipe.data.crop_scale, crop_ratio=recipe.data.crop_ratio),
        img_size=cfg.img_size, min_fraction=min_fraction,
    )
    collate = MaskedCollate(MaskCollator(recipe.mask, img_size=cfg.img_size, patch_size=cfg.patch_size))
    plan = BatchPlan(batch, batch)
    sampler = MicroBatchSampler(len(dataset), plan, end_step=10**6)

    def run() -> None:
        keys = iter(sampler)
        for _ in range(batches):
            collate([samples[k] for k in next(keys)])

    return run


def loader_rate(dataset, recipe, *, batch: int, workers: int, batches: int) -> float:
    """Images/s of a real DataLoader with ``workers`` processes (as ``ijepa-train`` builds it), after warm-up."""
    cfg = recipe.model_config()
    min_fraction = min_crop_fraction(recipe.data.crop_scale, recipe.data.crop_ratio)
    samples = TrainingSamples(
        dataset, training_transform(cfg.img_size, crop_scale=recipe.data.crop_scale, crop_ratio=recipe.data.crop_ratio),
        img_size=cfg.img_size, min_fraction=min_fraction,
    )
    sampler = MicroBatchSampler(len(dataset), BatchPlan(batch, batch), end_step=2 * workers + batches)
    collate = MaskedCollate(MaskCollator(recipe.mask, img_size=cfg.img_size, patch_size=cfg.patch_size))
    loader = torch.utils.data.DataLoader(samples, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                                         prefetch_factor=4)
    it = iter(loader)
    for _ in range(2 * workers):  # every worker started and its first batches out
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def draft_scale(size: tuple[int, int], img_size: int, min_fraction: float) -> float:
    """The decode scale ``draft_for_crop`` asks Pillow for (1 when it leaves the image alone)."""
    factor = img_size / min_fraction / math.sqrt(size[0] * size[1])
    if factor >= 0.5:
        return 1.0
    return next(s for s in (1 / 8, 1 / 4, 1 / 2) if s >= factor)  # Pillow picks the smallest scale >= asked


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="in1k_vith14")
    p.add_argument("--sizes", default="500x375-1000x800,2000x1500-3000x2250",
                   help="comma-separated WxH-WxH ranges, each its own image set")
    p.add_argument("--images", type=int, default=64, help="images per set")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--target", type=float, default=745.0, help="training rate to keep up with (images/s)")
    p.add_argument("--loader-workers", type=int, default=0,
                   help="also time a real DataLoader with this many worker processes (draft mode on)")
    p.add_argument("--out", default="data_cpu")
    args = p.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs with one torch thread
    recipe = ijepa_hub.load_recipe(args.recipe)
    cfg = recipe.model_config()
    min_fraction = min_crop_fraction(recipe.data.crop_scale, recipe.data.crop_ratio)
    batches = max(1, args.images // args.batch)
    result = {**environment(torch.device("cpu")), "recipe": args.recipe, "img_size": cfg.img_size,
              "crop_scale": list(recipe.data.crop_scale), "mask_mode": recipe.mask.mode, "batch_size": args.batch,
              "jpeg_quality": 90, "workers": args.workers, "target_images_per_s": args.target, "sets": []}
    print(f"{result['device']}, torch {result['torch']}, one process = one worker, 1 torch thread")
    for spec in args.sizes.split(","):
        lo, hi = spec.split("-")
        (w0, h0), (w1, h1) = (tuple(int(v) for v in s.split("x")) for s in (lo, hi))
        with tempfile.TemporaryDirectory() as tmp:
            sizes = write_jpegs(Path(tmp), args.images, (w0, h0, w1, h1), seed=w0)
            folder = ImageFolder(tmp)
            variants = {
                "draft": pipeline(folder, recipe, batch=args.batch, batches=batches),
                "no_draft": pipeline(OpenedImages(folder), recipe, batch=args.batch, batches=batches),
            }
            times = interleaved(variants, repeats=args.repeats, device=torch.device("cpu"))
            bytes_mean = statistics.mean(f.stat().st_size for f in Path(tmp).glob("*.jpg"))
            loader = None
            if args.loader_workers:
                loader = loader_rate(folder, recipe, batch=args.batch, workers=args.loader_workers,
                                     batches=max(4, 2 * args.loader_workers))
        per_worker = {n: batches * args.batch / statistics.median(t) for n, t in times.items()}
        scales = [draft_scale(s, cfg.img_size, min_fraction) for s in sizes]
        row = {
            "size_range": spec, "mean_file_kib": bytes_mean / 1024,
            "fraction_decoded_in_draft": sum(s < 1 for s in scales) / len(scales),
            "mean_draft_scale": statistics.mean(scales),
            "images_per_s_per_worker": per_worker,
            "images_per_s_with_workers": {n: v * args.workers for n, v in per_worker.items()},
            "keeps_up": {n: v * args.workers >= args.target for n, v in per_worker.items()},
            "dataloader": None if loader is None else {"workers": args.loader_workers, "images_per_s": loader},
            "seconds_all": times,
        }
        result["sets"].append(row)
        print(f"{spec}: {bytes_mean / 1024:.0f} KiB/file, {100 * row['fraction_decoded_in_draft']:.0f} % decoded in "
              f"draft mode (mean scale {row['mean_draft_scale']:.2f})")
        for n, v in per_worker.items():
            print(f"  {n:9s} {v:7.1f} img/s per worker -> {v * args.workers:7.0f} with {args.workers} workers "
                  f"({'keeps up with' if row['keeps_up'][n] else 'falls short of'} {args.target:.0f} img/s)")
        if loader is not None:
            print(f"  DataLoader with {args.loader_workers} workers: {loader:.1f} img/s")
    save_result(result, args.out)


if __name__ == "__main__":
    main()
