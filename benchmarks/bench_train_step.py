"""Throughput and peak memory of the trainer's step (``ijepa_hub.train.train_step``) for a recipe.

One process, one micro-batch of ``data.batch_size_per_device`` images, the recipe's masks, fused AdamW
and bf16 autocast on CUDA (fp32 on CPU), the EMA update included. Prints and saves
``results/train_step_<recipe>_<device>.json``. Any ``ijepa-train`` override works:

    python benchmarks/bench_train_step.py                                  # the default recipe, CPU
    python benchmarks/bench_train_step.py --recipe in1k_vith14 --data.batch_size_per_device 128 \\
        --train.grad_checkpointing false --train.compile true              # ViT-H/14 on one GPU
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from ijepa_hub.masks import MaskCollator
from ijepa_hub.models import IJepa
from ijepa_hub.optim import build_optimizer, set_hyperparams
from ijepa_hub.train.cli import parse_args
from ijepa_hub.train.distributed import ema_update
from ijepa_hub.train.loop import _autocast_factory, effective_precision, train_step
from ijepa_hub.data import MicroBatch


def main(argv: list[str]) -> None:
    repeats = int(argv.pop(argv.index("--repeats") + 1)) if "--repeats" in argv else 10
    if "--repeats" in argv:
        argv.remove("--repeats")
    recipe, _ = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and recipe.train.device != "cpu" else "cpu")
    config, b = recipe.model_config(), recipe.data.batch_size_per_device
    torch.manual_seed(0)
    model = IJepa(config, loss=recipe.optim.loss).to(device)
    model.set_grad_checkpointing(recipe.train.grad_checkpointing)
    forward = torch.compile(model, dynamic=True) if recipe.train.compile else model
    optimizer = build_optimizer(model, recipe.optim)
    set_hyperparams(optimizer, recipe.optim.lr, recipe.optim.weight_decay)
    collator = MaskCollator(recipe.mask, img_size=config.img_size, patch_size=config.patch_size)
    autocast = _autocast_factory(recipe, device)
    images = torch.randn(b, 3, config.img_size, config.img_size)
    labels = torch.zeros(b, 1, dtype=torch.long)
    times, ctx_sizes, tgt_sizes = [], [], []
    for step in range(repeats + 3):
        context, targets = collator.sample(b, step)
        batch = MicroBatch(images, labels, context, targets, 0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = train_step(forward, [batch], optimizer, device=device, autocast=autocast)
        ema_update(model, 0.996)
        float(loss)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 3:  # warm-up (and compilation) excluded
            times.append(time.perf_counter() - t0)
            ctx_sizes.append(context[0].shape[1])
            tgt_sizes.append(targets[0].shape[1])
    median = statistics.median(times)
    result = {
        "recipe": recipe.name, "model": config.name, "img_size": config.img_size, "batch": b,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "precision": effective_precision(recipe, device),
        "compile": recipe.train.compile, "grad_checkpointing": recipe.train.grad_checkpointing,
        "median_s_per_step": median, "images_per_s": b / median,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "mean_context_tokens": statistics.mean(ctx_sizes), "mean_target_tokens": statistics.mean(tgt_sizes),
        "repeats": repeats,
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / f"train_step_{recipe.name}_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
