"""ijepa_hub's training step against the reference-style baseline, side by side in one run.

Same weights, same masks, same batch. Default: the CPU case of the issue (ViT-Tiny, patch 8, 64 px,
predictor depth 6 width 96, batch 16, fp32). Repeats are interleaved and the median ratio reported,
with the TFLOP/s and MFU of each (FLOPs from the masks of the run, ``common.FLOP_FORMULA``). ijepa_hub
runs as its trainer does: SDPA attention, fused AdamW, one fused EMA pass, ``torch.compile(dynamic=True)``
with ``--compile``. Prints and saves ``results/vs_reference_<device>.json``.

    python benchmarks/bench_vs_reference.py --threads 1                     # CPU
    python benchmarks/bench_vs_reference.py --threads 1 --masks legacy      # the released mask sampler
    python benchmarks/bench_vs_reference.py --device cuda --model vit_huge_patch14 --img-size 224 \\
        --patch-size 14 --pred-depth 12 --pred-dim 384 --batch 128 --bf16 --compile
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    FLOP_FORMULA,
    add_run_args,
    environment,
    ijepa_step_flops,
    interleaved,
    peak_flops,
    save_result,
    speedups,
    start,
)
from reference_style import ReferenceStyleStep  # noqa: E402

import ijepa_hub  # noqa: E402
from ijepa_hub.masks import MaskCollator  # noqa: E402
from ijepa_hub.recipe import MaskSection, OptimSection  # noqa: E402
from ijepa_hub.train.optim import build_optimizer  # noqa: E402


def ijepa_hub_step(model, optimizer, *, bf16: bool, compiled: bool):
    forward = torch.compile(model, dynamic=True) if compiled else model  # as train.compile
    device_type = next(model.parameters()).device.type

    def step(images, ctx, tgt, momentum=0.996):
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss = forward(images, ctx, tgt)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_target(momentum)
        return loss.detach()

    return step


def runner(fn, batches, per_call: int):
    """A callable running ``fn`` on the next ``per_call`` batches (cycling), waiting for the last loss."""
    position = itertools.count()

    def run() -> None:
        out = None
        for _ in range(per_call):
            images, ctx, tgt = batches[next(position) % len(batches)]
            out = fn(images, ctx, tgt)
        float(out)

    return run


GEMM_OPS = ("aten::mm", "aten::addmm")  # the linear layers (attention's matmuls not included)


def op_profile(run, device: torch.device, steps: int, top: int = 12) -> dict:
    """Self time per step of the ``top`` most expensive operators of ``run`` and the share of the linear
    layers' matmuls in the operators' total."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run()
    cuda = device.type == "cuda"
    averages = prof.key_averages()
    # self time per operator (on CUDA: per kernel); a matmul's time is its aten op's (device) time
    events = [(e.key, (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3 / steps) for e in averages]
    gemm = sum((e.device_time_total if cuda else e.self_cpu_time_total) for e in averages if e.key in GEMM_OPS)
    total = sum(ms for _, ms in events)
    events.sort(key=lambda e: -e[1])
    return {
        "ms_per_step_total": total,
        "linear_matmul_share": gemm / 1e3 / steps / total,
        "top_ops_ms_per_step": {k: ms for k, ms in events[:top]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_tiny_patch16")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--patch-size", type=int, default=8)
    p.add_argument("--pred-depth", type=int, default=6)
    p.add_argument("--pred-dim", type=int, default=96)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", action="store_true", help="also time ijepa_hub with torch.compile")
    p.add_argument("--masks", "--mask-mode", dest="mask_mode", choices=("legacy", "corrected"), default="corrected",
                   help="mask sampler: the released one (legacy) or corrected (default); recorded as mask_mode")
    p.add_argument("--mask-draws", type=int, default=10, help="distinct batches (mask draws) cycled through")
    p.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    p.add_argument("--profile", action="store_true", help="also record each variant's per-operator profile")
    add_run_args(p, repeats=15, default_out="vs_reference_<device type>")
    args = p.parse_args()
    device = start(args)
    torch.manual_seed(0)
    model = ijepa_hub.create_model(args.model, img_size=args.img_size, patch_size=args.patch_size,
                                   pred_depth=args.pred_depth, pred_embed_dim=args.pred_dim).to(device)
    baseline = ReferenceStyleStep(model, bf16=args.bf16)
    collator = MaskCollator(MaskSection(mode=args.mask_mode, min_keep=4), img_size=args.img_size,
                            patch_size=args.patch_size)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for i in range(args.mask_draws):
        ctx, tgt = collator.sample(args.batch, i)
        images = torch.randn(args.batch, 3, args.img_size, args.img_size, generator=gen)
        batches.append((images.to(device), [m.to(device) for m in ctx], [m.to(device) for m in tgt]))

    # parity on the first batch before any step: same weights, same masks -> same loss
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
        ours_loss = model(*batches[0]).item()
    ref_loss = baseline(*batches[0])
    optimizer = build_optimizer(model, OptimSection())
    variants = {"reference_style": baseline, "ijepa_hub_eager": ijepa_hub_step(model, optimizer, bf16=args.bf16, compiled=False)}
    if args.compile:
        variants["ijepa_hub_compiled"] = ijepa_hub_step(model, optimizer, bf16=args.bf16, compiled=True)
    runs = {name: runner(fn, batches, args.steps) for name, fn in variants.items()}
    for fn in variants.values():  # warm-up (and compilation): every mask shape once
        runner(fn, batches, len(batches))()
    peak, peak_source = peak_flops(device)
    times = interleaved(runs, repeats=args.repeats, device=device, warmup=0)
    times = {name: [t / args.steps for t in ts] for name, ts in times.items()}
    peak = max(peak, peak_flops(device)[0])
    med = {name: statistics.median(t) for name, t in times.items()}
    images_per_s = {name: args.batch / t for name, t in med.items()}
    flops_per_step = statistics.mean(
        ijepa_step_flops(model.config, ctx[0].shape[1], tgt[0].shape[1], len(tgt))["total"] * args.batch
        for _, ctx, tgt in batches
    )
    result = {
        **environment(device), "model": args.model, "img_size": args.img_size, "patch_size": args.patch_size,
        "pred_depth": args.pred_depth, "pred_dim": args.pred_dim, "batch_size": args.batch, "bf16": args.bf16,
        "flop_formula": FLOP_FORMULA, "gflops_per_step_mean": flops_per_step / 1e9,
        "peak_flops": peak, "peak_source": peak_source,
        "mean_context_tokens": statistics.mean(c[0].shape[1] for _, c, _ in batches),
        "mean_target_tokens": statistics.mean(t[0].shape[1] for _, _, t in batches),
        "first_step_loss": {"ijepa_hub": ours_loss, "reference_style": ref_loss},
        "mask_mode": args.mask_mode, "distinct_masks": args.mask_draws, "steps_per_round": args.steps, "rounds": args.repeats,
        "seconds_per_step_median": med, "seconds_per_step_all": times, "images_per_s": images_per_s,
        "tflops_per_s": {n: flops_per_step / t / 1e12 for n, t in med.items()},
        "mfu": {n: flops_per_step / t / peak for n, t in med.items()},
        "speedup_vs_reference": speedups(times, "reference_style"),
    }
    if args.profile:
        result["profile"] = {name: op_profile(run, device, args.steps) for name, run in runs.items()}
    print(f"{result['device']}, torch {result['torch']}, {result['threads']} threads, batch {args.batch}, "
          f"{flops_per_step / 1e9:.1f} GFLOP/step; MFU against {peak / 1e12:.3f} TFLOP/s ({peak_source})")
    for name in variants:
        print(f"{name:20s} {images_per_s[name]:9.1f} img/s  ({med[name] * 1e3:.1f} ms/step, "
              f"MFU {100 * result['mfu'][name]:.1f} %)")
    for name, prof in result.get("profile", {}).items():
        print(f"{name:20s} profile: {100 * prof['linear_matmul_share']:.0f} % of operator time in linear layers; top: "
              + ", ".join(f"{k} {v:.0f} ms" for k, v in list(prof["top_ops_ms_per_step"].items())[:4]))
    for name, r in result["speedup_vs_reference"].items():
        print(f"{name} / reference_style: {r['median_of_paired']:.2f}x (median of paired rounds; "
              f"{r['ratio_of_medians']:.2f}x ratio of medians)")
    print(f"first-step loss: ijepa_hub {ours_loss:.6f}, reference style {ref_loss:.6f}")
    save_result(result, args.out or f"vs_reference_{device.type}")


if __name__ == "__main__":
    main()
