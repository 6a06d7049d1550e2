"""The trainer's step (``ijepa_hub.train.train_step`` + ``ema_update``): images/s, MFU, peak memory.

For each model of ``--models`` and each combination of ``--compile`` and ``--checkpointing``: one
process, micro-batches of ``--batch`` random images with the masks of ``--mask-recipe`` (a fresh draw
for every step, made before the clock starts, so mask lengths vary as in training), fused AdamW and
bf16 autocast on CUDA (fp32 on CPU), the EMA update included, exactly as ``ijepa-train`` runs them. MFU is computed from each timed step's
actual mask sizes with the formula in ``common.FLOP_FORMULA``, against the device's dense bf16 peak on
GPUs and a measured fp32 matmul ceiling on CPUs. ``--max-batch`` (GPU) also searches the largest
micro-batch that fits and times it. Prints a table and saves ``results/train_step_<device>.json``.

    python benchmarks/bench_train_step.py --threads 1                       # CPU: tiny, small, base
    python benchmarks/bench_train_step.py --device cuda --models vit_huge_patch14 --batch 128 \\
        --compile both --checkpointing both --max-batch                      # one GPU
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
import torch._dynamo.utils as dynamo_utils

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    FLOP_FORMULA,
    add_run_args,
    environment,
    ijepa_step_flops,
    peak_flops,
    save_result,
    start,
)

import ijepa_hub  # noqa: E402
from ijepa_hub.data import MicroBatch  # noqa: E402
from ijepa_hub.engine.step import autocast_factory
from ijepa_hub.masks import MaskCollator  # noqa: E402
from ijepa_hub.precision import resolve_precision
from ijepa_hub.recipe import OptimSection  # noqa: E402
from ijepa_hub.train.loop import train_step  # noqa: E402
from ijepa_hub.train.optim import build_optimizer  # noqa: E402
from ijepa_hub.train.parallel import ema_update  # noqa: E402

CHOICES = {"off": [False], "on": [True], "both": [False, True]}


def make_step(name: str, args, batch: int, device: torch.device, *, steps: int, compiled: bool, checkpointing: bool):
    """A closure running one trainer step per call, on ``steps`` mask draws made up front (in training
    the DataLoader workers draw them, off the step's clock); also the model config, the number of target
    blocks and the precision."""
    torch.manual_seed(0)
    model = ijepa_hub.create_model(name, img_size=args.img_size, patch_size=args.patch_size).to(device)
    model.set_grad_checkpointing(checkpointing)
    forward = torch.compile(model, dynamic=True) if compiled else model  # as train.compile does
    optimizer = build_optimizer(model, OptimSection())
    cfg = model.config
    recipe = ijepa_hub.load_recipe(args.mask_recipe)
    mask = dataclasses.replace(recipe.mask, mode=args.mask_mode) if args.mask_mode else recipe.mask
    collator = MaskCollator(mask, img_size=cfg.img_size, patch_size=cfg.patch_size)
    images = torch.randn(batch, 3, cfg.img_size, cfg.img_size, device=device)
    labels = torch.zeros(batch, 1, dtype=torch.long)
    draws = []
    for i in range(steps):
        context, targets = collator.sample(batch, i)
        draws.append(MicroBatch(images, labels, [m.to(device) for m in context], [m.to(device) for m in targets], 0))
    autocast = autocast_factory(recipe.train.precision, device)  # bf16 on CUDA, fp32 on CPU, as the trainer
    position = itertools.count()

    def step() -> tuple[int, int]:
        micro = draws[next(position) % steps]
        loss = train_step(forward, [micro], optimizer, device=device, autocast=autocast)
        ema_update(model, 0.996)
        float(loss)  # waits for the device
        return micro.context_masks[0].shape[1], micro.target_masks[0].shape[1]

    return step, cfg, mask.num_targets, {torch.bfloat16: "bf16", torch.float32: "fp32"}[resolve_precision(recipe.train.precision, device)]


def measure(name: str, args, batch: int, device: torch.device, peak: float, *, compiled: bool, checkpointing: bool) -> dict:
    """Time ``args.repeats`` steps after ``args.warmup`` (compilation happens in the warm-up)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    frames_before = dynamo_utils.counters["frames"]["ok"]
    step, cfg, num_targets, precision = make_step(
        name, args, batch, device, steps=args.warmup + args.repeats, compiled=compiled, checkpointing=checkpointing
    )
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warmup_s = time.perf_counter() - t0
    times, flops, ctx, tgt = [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        k_ctx, k_tgt = step()
        times.append(time.perf_counter() - t0)
        flops.append(ijepa_step_flops(cfg, k_ctx, k_tgt, num_targets)["total"] * batch)
        ctx.append(k_ctx)
        tgt.append(k_tgt)
    achieved = sum(flops) / sum(times)
    median = statistics.median(times)
    row = {
        "model": name, "img_size": cfg.img_size, "patch_size": cfg.patch_size, "batch_size": batch,
        "precision": precision, "compile": compiled, "grad_checkpointing": checkpointing,
        "median_s_per_step": median, "images_per_s": batch / median,
        "tflops_per_s": achieved / 1e12, "mfu": achieved / peak,
        "gflops_per_image_mean": statistics.mean(flops) / batch / 1e9,
        "mean_context_tokens": statistics.mean(ctx), "mean_target_tokens": statistics.mean(tgt),
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "warmup_s": warmup_s, "dynamo_frames_compiled": dynamo_utils.counters["frames"]["ok"] - frames_before,
        "repeats": args.repeats, "step_times_s": times,
    }
    memory = "n/a" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.1f} GiB"
    print(f"{name:20s} b={batch:<4d} compile={int(compiled)} ckpt={int(checkpointing)}  {row['images_per_s']:9.1f} img/s  "
          f"MFU {100 * row['mfu']:5.1f} %  ctx {row['mean_context_tokens']:.0f} tgt {row['mean_target_tokens']:.0f}  "
          f"peak {memory}  (warm-up {warmup_s:.0f} s)", flush=True)
    return row


def fits(name: str, args, batch: int, device: torch.device, *, compiled: bool, checkpointing: bool) -> bool:
    """Whether two steps at ``batch`` run without running out of device memory."""
    step = None
    try:
        step, *_ = make_step(name, args, batch, device, steps=2, compiled=compiled, checkpointing=checkpointing)
        step()
        step()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        del step  # the model, optimiser and activations of this try, before the next one allocates
        gc.collect()
        torch.cuda.empty_cache()


def largest_batch(name: str, args, device: torch.device, *, compiled: bool, checkpointing: bool) -> int:
    """Double from ``--batch`` until a step runs out of memory, then bisect to a multiple of 8."""
    lo, hi = 0, args.batch
    while fits(name, args, hi, device, compiled=compiled, checkpointing=checkpointing):
        lo, hi = hi, hi * 2
    while hi - lo > 8:
        mid = (lo + hi) // 2 // 8 * 8
        if mid <= lo:
            break
        if fits(name, args, mid, device, compiled=compiled, checkpointing=checkpointing):
            lo = mid
        else:
            hi = mid
    return lo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit_tiny_patch16,vit_small_patch16,vit_base_patch16",
                   help="comma-separated registry names (ijepa_hub.list_models())")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=None, help="default: the model's")
    p.add_argument("--batch", type=int, default=8, help="micro-batch per step")
    p.add_argument("--mask-recipe", default="in1k_vith14", help="recipe whose mask section draws the masks")
    p.add_argument("--mask-mode", choices=["legacy", "corrected"], default=None, help="override the recipe's")
    p.add_argument("--compile", choices=CHOICES, default="off")
    p.add_argument("--checkpointing", choices=CHOICES, default="off")
    p.add_argument("--max-batch", action="store_true", help="also find and time the largest batch that fits (CUDA)")
    p.add_argument("--warmup", type=int, default=3)
    add_run_args(p, repeats=5, default_out="train_step_<device type>")
    args = p.parse_args()
    device = start(args)
    # every configuration and largest-batch try builds a new model: let each keep its own compiled graph
    # instead of falling back to eager once dynamo's default limit of 8 recompiles is reached
    torch._dynamo.config.recompile_limit = 256
    if args.max_batch and device.type != "cuda":
        p.error("--max-batch needs --device cuda (on a CPU the limit is host memory, not a useful figure)")
    peak, peak_source = peak_flops(device)
    result = {**environment(device), "flop_formula": FLOP_FORMULA, "peak_flops": peak, "peak_source": peak_source,
              "mask_recipe": args.mask_recipe, "mask_mode": args.mask_mode, "rows": []}
    print(f"{result['device']}, torch {result['torch']}, {result['threads']} threads; MFU against {peak / 1e12:.2f} "
          f"TFLOP/s ({peak_source})")
    for name in args.models.split(","):
        for compiled in CHOICES[args.compile]:
            for checkpointing in CHOICES[args.checkpointing]:
                kw = dict(compiled=compiled, checkpointing=checkpointing)
                try:
                    result["rows"].append(measure(name, args, args.batch, device, peak, **kw))
                except torch.OutOfMemoryError:
                    print(f"{name} b={args.batch} compile={int(compiled)} ckpt={int(checkpointing)}: out of memory")
                    result["rows"].append({"model": name, "batch_size": args.batch, **kw, "out_of_memory": True})
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if args.max_batch:
                    best = largest_batch(name, args, device, **kw)
                    if best:
                        row = measure(name, args, best, device, peak, **kw)
                        result["rows"].append({**row, "largest_batch": True})
                    gc.collect()
                    torch.cuda.empty_cache()
    final = max(peak, peak_flops(device)[0])  # the ceiling again, after the runs; keep the larger
    if final > peak:
        result["peak_flops"] = final
        for row in result["rows"]:
            if "mfu" in row:
                row["mfu"] = row["tflops_per_s"] * 1e12 / final
    save_result(result, args.out or f"train_step_{device.type}")


if __name__ == "__main__":
    main()
