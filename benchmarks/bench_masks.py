"""Mask collator cost and statistics: ViT-H/14 at 224 px, 128 images per batch, one CPU core.

Prints and saves ``results/masks.json``: median / p90 milliseconds per batch for both modes, mean
context and target sizes, and per-patch coverage maps.

    python benchmarks/bench_masks.py [--batches 200]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import environment  # noqa: E402

import ijepa_hub  # noqa: E402
from ijepa_hub.masks import MaskCollator, mask_statistics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "masks.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = ijepa_hub.load_recipe("in1k_vith14")
    cfg = recipe.model_config()
    results = {**environment(torch.device("cpu")), "batch_size": args.batch_size, "grid": cfg.grid_size, "modes": {}}
    for mode in ("legacy", "corrected"):
        col = MaskCollator(dataclasses.replace(recipe.mask, mode=mode), img_size=cfg.img_size, patch_size=cfg.patch_size)
        torch.manual_seed(0)
        times = []
        for step in range(args.batches):
            t0 = time.perf_counter()
            col.sample(args.batch_size, step)
            times.append((time.perf_counter() - t0) * 1e3)
        stats = mask_statistics(col, batches=50, batch_size=args.batch_size)
        small = mask_statistics(col, batches=200, batch_size=8, start=10_000)
        results["modes"][mode] = {
            "ms_per_batch_median": float(np.median(times)),
            "ms_per_batch_p90": float(np.percentile(times, 90)),
            "mean_context": stats.mean_context,
            "mean_context_at_batch_8": small.mean_context,
            "mean_target": stats.mean_target,
            "target_range": [stats.min_target, stats.max_target],
            "target_coverage": np.round(stats.target_coverage, 3).tolist(),
            "context_coverage": np.round(stats.context_coverage, 3).tolist(),
        }
        r = results["modes"][mode]
        print(f"{mode:9s} {r['ms_per_batch_median']:6.2f} ms/batch (p90 {r['ms_per_batch_p90']:.2f})  "
              f"context {r['mean_context']:.1f} (at 8/device {r['mean_context_at_batch_8']:.1f})  "
              f"targets {r['mean_target']:.1f} in {r['target_range']}  "
              f"min target coverage {stats.target_coverage.min():.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
