"""torch.compile with variable mask lengths: dynamic shapes against bucketed lengths, with compile counts.

Every step draws fresh masks (as training does), so the context and target lengths change from step
to step. Variants, each in its own subprocess so that compiled code is never shared between them:

- ``dynamic``: ``torch.compile(dynamic=True)`` on the raw masks (what ``train.compile`` does);
- ``dynamic_bucketed``: the same on masks whose lengths are rounded down to a multiple of ``--bucket``
  (a random subset of each mask's patches kept, so few distinct shapes occur);
- ``static_bucketed``: ``torch.compile(dynamic=False)`` on bucketed masks: one specialised graph per
  shape (the recompile limit is raised so that every bucket gets one).

Inside each subprocess an eager copy of the model runs the same batches, step for step, so the
compiled/eager ratio is paired against the same background load. Reported per variant: graphs compiled
(dynamo frames), seconds spent in steps that compiled (inductor's on-disk caches off, so compiles are cold), the steady-state median step time of both and
their paired ratio, and the distinct shapes seen. Saves ``results/compile_masks_<device>.json``.

    python benchmarks/bench_compile_masks.py --threads 1        # modest_vit_tiny recipe, batch 8, CPU
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import add_run_args, environment, save_result, start  # noqa: E402

import ijepa_hub  # noqa: E402

VARIANTS = {
    "dynamic": {"dynamic": True, "bucket": 1},
    "dynamic_bucketed": {"dynamic": True, "bucket": None},  # None: --bucket
    "static_bucketed": {"dynamic": False, "bucket": None},
}


def bucketed(masks: list[torch.Tensor], multiple: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Keep a random subset of ``k // multiple * multiple`` indices of each row (at least ``multiple``)."""
    out = []
    for m in masks:
        b, k = m.shape
        keep = max(multiple, k // multiple * multiple) if k >= multiple else k
        if keep == k:
            out.append(m)
            continue
        cols = torch.rand(b, k, generator=generator).argsort(dim=1)[:, :keep].sort(dim=1).values
        out.append(torch.gather(m, 1, cols))
    return out


def run_variant(args) -> dict:
    """One variant (in this process): eager and compiled models step through the same batches."""
    import torch._dynamo.utils as dynamo_utils

    from ijepa_hub.data import MicroBatch
    from ijepa_hub.engine.step import autocast_factory
    from ijepa_hub.masks import MaskCollator
    from ijepa_hub.train.loop import train_step
    from ijepa_hub.train.optim import build_optimizer

    device = start(args)
    spec = VARIANTS[args.variant]
    bucket = spec["bucket"] or args.bucket
    if not spec["dynamic"]:
        torch._dynamo.config.recompile_limit = 64  # one graph per bucket, however many there are
    recipe = ijepa_hub.load_recipe(args.recipe)
    cfg = recipe.model_config()
    collator = MaskCollator(recipe.mask, img_size=cfg.img_size, patch_size=cfg.patch_size)
    models = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = ijepa_hub.create_model(recipe.model.name, img_size=cfg.img_size, patch_size=cfg.patch_size,
                                       pred_depth=cfg.pred_depth, pred_embed_dim=cfg.pred_embed_dim).to(device)
        forward = torch.compile(model, dynamic=spec["dynamic"]) if name == "compiled" else model
        models[name] = (model, forward, build_optimizer(model, recipe.optim))
    autocast = autocast_factory(recipe.train.precision, device)  # bf16 on CUDA, fp32 on CPU, as the trainer
    images = torch.randn(args.batch, 3, cfg.img_size, cfg.img_size, device=device)
    labels = torch.zeros(args.batch, 1, dtype=torch.long)
    gen = torch.Generator().manual_seed(1)
    records, shapes = [], set()
    for step in range(args.warmup + args.repeats):
        context, targets = collator.sample(args.batch, step)
        if bucket > 1:
            context, targets = bucketed(context, bucket, gen), bucketed(targets, bucket, gen)
        shapes.add((context[0].shape[1], targets[0].shape[1]))
        batch = MicroBatch(images, labels, [m.to(device) for m in context], [m.to(device) for m in targets], 0)
        row = {"context": context[0].shape[1], "target": targets[0].shape[1]}
        for name, (model, forward, optimizer) in models.items():
            frames = dynamo_utils.counters["frames"]["ok"]
            t0 = time.perf_counter()
            train_step(forward, [batch], optimizer, device=device, autocast=autocast)
            model.update_target(0.996)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            row[name] = time.perf_counter() - t0
            if name == "compiled":
                row["compiled_graphs"] = dynamo_utils.counters["frames"]["ok"] - frames
        records.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    steady = [r for r in records[args.warmup:] if not r["compiled_graphs"]]
    return {
        "variant": args.variant, **spec, "bucket": bucket,
        "graphs_compiled": sum(r["compiled_graphs"] for r in records),
        "seconds_in_compiling_steps": sum(r["compiled"] for r in records if r["compiled_graphs"]),
        "distinct_shapes": len(shapes),
        "steady_steps": len(steady),
        "steady_median_s": {n: statistics.median(r[n] for r in steady) for n in ("eager", "compiled")} if steady else None,
        "steady_speedup_vs_eager": statistics.median(r["eager"] / r["compiled"] for r in steady) if steady else None,
        "mean_context_tokens": statistics.mean(r["context"] for r in records),
        "mean_target_tokens": statistics.mean(r["target"] for r in records),
        "steps": records,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="modest_vit_tiny", help="model and (corrected) masks of this recipe")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--bucket", type=int, default=8)
    p.add_argument("--warmup", type=int, default=20, help="steps before the steady state is timed")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # the subprocess's one variant
    add_run_args(p, repeats=20, default_out="compile_masks_<device type>")
    args = p.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    device = start(args)
    result = {**environment(device), "recipe": args.recipe, "batch_size": args.batch, "warmup": args.warmup,
              "repeats": args.repeats, "variants": []}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", variant, *sys.argv[1:]]
        env = {**os.environ, "TORCHINDUCTOR_FX_GRAPH_CACHE": "0", "TORCHINDUCTOR_AUTOGRAD_CACHE": "0"}  # cold compiles
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
        row = json.loads(out.strip().splitlines()[-1])
        result["variants"].append(row)
        sp = row["steady_speedup_vs_eager"]
        print(f"{variant:18s} graphs {row['graphs_compiled']:3d}  compiling steps {row['seconds_in_compiling_steps']:6.0f} s  "
              f"distinct shapes {row['distinct_shapes']:3d}  steady compiled/eager speed-up "
              f"{'n/a' if sp is None else f'{sp:.2f}x'} over {row['steady_steps']} steps", flush=True)
    save_result(result, args.out or f"compile_masks_{device.type}")


if __name__ == "__main__":
    main()
