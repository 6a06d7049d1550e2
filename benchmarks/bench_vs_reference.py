"""ijepa_hub's training step against the reference-style baseline, side by side in one run.

Same weights, same masks, same batch. Default: the CPU case of the issue (ViT-Tiny, patch 8, 64 px,
predictor depth 6 width 96, batch 16, fp32). Repeats are interleaved and the median ratio reported.
Prints and saves ``results/vs_reference_<device>.json``.

    python benchmarks/bench_vs_reference.py                       # CPU
    python benchmarks/bench_vs_reference.py --device cuda --model vit_huge_patch14 --img-size 224 \\
        --patch-size 14 --pred-depth 12 --pred-dim 384 --batch 128 --bf16 --compile
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import ijepa_hub  # noqa: E402
from ijepa_hub.masks import MaskCollator  # noqa: E402
from ijepa_hub.optim import build_optimizer  # noqa: E402
from ijepa_hub.recipe import MaskSection, OptimSection  # noqa: E402
from reference_style import ReferenceStyleStep  # noqa: E402


def ijepa_hub_step(model, optimizer, *, bf16: bool, compiled: bool):
    forward = torch.compile(model) if compiled else model
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


def timed(fn, batches, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = None
    for images, ctx, tgt in batches:
        out = fn(images, ctx, tgt)
    float(out)  # wait for the last step
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / len(batches)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="vit_tiny_patch16")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--patch-size", type=int, default=8)
    p.add_argument("--pred-depth", type=int, default=6)
    p.add_argument("--pred-dim", type=int, default=96)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", action="store_true", help="also time ijepa_hub with torch.compile")
    p.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = ijepa_hub.create_model(args.model, img_size=args.img_size, patch_size=args.patch_size,
                                   pred_depth=args.pred_depth, pred_embed_dim=args.pred_dim).to(device)
    baseline = ReferenceStyleStep(model, bf16=args.bf16)
    collator = MaskCollator(MaskSection(min_keep=4), img_size=args.img_size, patch_size=args.patch_size)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for i in range(args.steps):
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
    for fn in variants.values():  # warm-up (and compilation)
        timed(fn, batches[:3], device)
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, batches, device))
    med = {name: statistics.median(t) for name, t in times.items()}
    images_per_s = {name: args.batch / t for name, t in med.items()}
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__, "model": args.model, "img_size": args.img_size, "patch_size": args.patch_size,
        "pred_depth": args.pred_depth, "pred_dim": args.pred_dim, "batch_size": args.batch, "bf16": args.bf16,
        "first_step_loss": {"ijepa_hub": ours_loss, "reference_style": ref_loss},
        "seconds_per_step_median": med, "images_per_s": images_per_s,
        "speedup_vs_reference": {n: med["reference_style"] / t for n, t in med.items() if n != "reference_style"},
    }
    for name in variants:
        print(f"{name:20s} {images_per_s[name]:9.1f} img/s  ({med[name] * 1e3:.1f} ms/step)")
    for name, r in result["speedup_vs_reference"].items():
        print(f"{name} / reference_style: {r:.2f}x")
    print(f"first-step loss: ijepa_hub {ours_loss:.6f}, reference style {ref_loss:.6f}")
    out = Path(args.out or Path(__file__).parent / "results" / f"vs_reference_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
