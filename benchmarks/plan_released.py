"""The planner (``ijepa-train --plan``) on the four released recipes, on 16 x H100 and 16 x H200; and its
check against real CPU steps at tiny and small sizes (FLOPs vs ``FlopCounterMode``, peak memory vs the
tensors alive). Writes ``results/plan_released.json`` and prints the Markdown table docs/performance.md shows.

    python benchmarks/plan_released.py            # ~1 minute on one core
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import environment, save_result  # noqa: E402

import ijepa_hub  # noqa: E402
from ijepa_hub.flops import FLOP_FORMULA  # noqa: E402
from ijepa_hub.train.plan import DEFAULT_MFU, measure_step, plan_recipe  # noqa: E402

RECIPES = ("in1k_vith14", "in1k_vith16_448", "in22k_vith14", "in22k_vitg16")
GPUS = ("H100", "H200")
CHECKS = {  # name: (model, img_size, micro-batch, activation checkpointing)
    "vit_tiny_patch8 64 px b16": ("vit_tiny_patch8", 64, 16, False),
    "vit_tiny_patch8 64 px b16 ckpt": ("vit_tiny_patch8", 64, 16, True),
    "vit_small_patch16 64 px b32": ("vit_small_patch16", 64, 32, False),
}


def check_recipe(name: str, img_size: int, batch: int, checkpointing: bool):
    """The default recipe (with its objectives) at another size, one micro-batch per step."""
    r = ijepa_hub.load_recipe("default")
    return dataclasses.replace(
        r, model=dataclasses.replace(r.model, name=name, img_size=img_size),
        data=dataclasses.replace(r.data, batch_size_per_device=batch), optim=dataclasses.replace(r.optim, batch_size=batch),
        train=dataclasses.replace(r.train, grad_checkpointing=checkpointing))


def table(rows: list[dict]) -> str:
    out = ["| recipe | params (trained) | GFLOPs / image | GPUs | step | epoch | run | peak GiB / device (ckpt) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for g in r["gpus"]:
            out.append(
                f"| {r['recipe']} ({r['model']}, {r['img_size']} px, batch {r['global_batch']}) | "
                f"{r['params']['trained'] / 1e6:.0f} M | {r['gflops_per_image']['total']:.0f} | {g['num_gpus']} x {g['gpu']} | "
                f"{g['step_s']:.2f} s | {g['epoch_s'] / 3600:.2f} h | {g['run_s'] / 3600:.1f} h | "
                f"{g['peak_gib']:.1f} ({g['peak_gib_checkpointing']:.1f}) of {g['memory_gib']:.0f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpus", type=int, default=16)
    p.add_argument("--mfu", type=float, default=DEFAULT_MFU)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = {**environment(torch.device("cpu")), "command": " ".join(sys.argv), "load_average": os.getloadavg(),
              "flop_formula": FLOP_FORMULA, "mfu": args.mfu, "recipes": [], "checks": {}}
    for name in RECIPES:
        plan = plan_recipe(ijepa_hub.load_recipe(name))
        result["recipes"].append(plan.to_dict(list(GPUS), args.gpus, args.mfu))
    for label, spec in CHECKS.items():
        m = measure_step(check_recipe(*spec))
        m["flops_ratio"] = m["flops_planned"] / m["flops_counted"]
        m["peak_ratio"] = m["peak_bytes_planned"] / m["peak_bytes_measured"]
        result["checks"][label] = m
        print(f"{label}: planned / counted FLOPs {m['flops_ratio']:.4f}, planned / measured peak {m['peak_ratio']:.3f}")
    save_result(result, "plan_released")
    print(table(result["recipes"]))


if __name__ == "__main__":
    main()
