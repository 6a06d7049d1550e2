"""Feature extraction: ``ijepa_hub.extract_features`` against ``transformers.IJepaModel`` (SDPA), one run.

Both models hold the same random weights (ijepa_hub's encoder written with its transformers export,
``ijepa_hub.hub.save.export_transformers``, and read with ``IJepaModel.from_pretrained``; their outputs
are compared before timing) and get the
same preprocessed batch. Each call returns the pooled feature (mean of the normed patch tokens) and the
patch tokens on the CPU. fp32 on CPU; on CUDA both hold bf16 weights (``--dtype``). Repeats are
interleaved and the median ratio reported. ``--compile`` adds ijepa_hub with its encoder compiled
(``torch.compile`` of ``forward_intermediates``, what ``extract_features`` calls). Prints and saves
``results/features_<device>.json``.

    python benchmarks/bench_features.py --threads 1                         # CPU: ViT-H/14 batch 2, ViT-B/16 batch 8
    python benchmarks/bench_features.py --device cuda --rows vit_huge_patch14:64,vit_base_patch16:256 --compile
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    add_run_args,
    encoder_forward_flops,
    environment,
    interleaved,
    peak_flops,
    save_result,
    speedups,
    start,
)

import ijepa_hub  # noqa: E402
from ijepa_hub.hub.save import export_transformers  # noqa: E402


def transformers_model(encoder, config, dtype: torch.dtype, device: torch.device):
    """``transformers.IJepaModel`` with SDPA attention and ``encoder``'s weights.

    Goes through ijepa_hub's transformers export (``timm_to_transformers`` + ``transformers_config``),
    then ``from_pretrained``, which maps the file's keys onto transformers' current module names.
    """
    from transformers import IJepaModel

    with tempfile.TemporaryDirectory() as folder:
        export_transformers(encoder, config, folder)
        model = IJepaModel.from_pretrained(folder, attn_implementation="sdpa", dtype=dtype)
    return model.eval().to(device)


def measure_row(name: str, batch: int, args, device: torch.device, dtype: torch.dtype, peak: float) -> dict:
    torch.manual_seed(0)
    model = ijepa_hub.create_model(name, img_size=args.img_size, with_predictor=False)
    config, encoder = model.config, model.target_encoder.eval()
    del model.context_encoder
    hf = transformers_model(encoder, config, dtype, device)
    encoder.to(device=device, dtype=dtype)
    images = torch.randn(batch, 3, args.img_size, args.img_size, generator=torch.Generator().manual_seed(0))

    def ours():
        return ijepa_hub.extract_features(encoder, images, preprocessed=True, batch_size=batch, dtype=dtype)

    @torch.inference_mode()
    def theirs():
        tokens = hf(pixel_values=images.to(device=device, dtype=dtype)).last_hidden_state
        return tokens.mean(dim=1).float().cpu(), tokens.float().cpu()

    a, (b_pooled, _) = ours(), theirs()
    max_diff = (a.pooled - b_pooled).abs().max().item()
    variants = {"transformers_sdpa": theirs, "ijepa_hub": ours}
    if args.compile:
        compiled = copy.deepcopy(encoder)
        compiled.forward_intermediates = torch.compile(compiled.forward_intermediates)
        variants["ijepa_hub_compiled"] = lambda: ijepa_hub.extract_features(
            compiled, images, preprocessed=True, batch_size=batch, dtype=dtype
        )
    times = interleaved(variants, repeats=args.repeats, device=device, warmup=args.warmup)
    med = {n: statistics.median(t) for n, t in times.items()}
    flops = encoder_forward_flops(config) * batch
    row = {
        "model": name, "img_size": args.img_size, "batch_size": batch, "dtype": str(dtype).removeprefix("torch."),
        "max_abs_diff_pooled": max_diff, "gflops_per_image": flops / batch / 1e9,
        "seconds_per_batch_median": med, "seconds_per_batch_all": times,
        "images_per_s": {n: batch / t for n, t in med.items()},
        "mfu": {n: flops / t / peak for n, t in med.items()},
        "speedup_vs_transformers": speedups(times, "transformers_sdpa"),
        "repeats": args.repeats,
    }
    print(f"{name} b={batch} ({dtype}), max |pooled difference| {max_diff:.2e}")
    for n in variants:
        print(f"  {n:20s} {row['images_per_s'][n]:8.2f} img/s  MFU {100 * row['mfu'][n]:5.1f} %"
              + (f"  {row['speedup_vs_transformers'][n]['median_of_paired']:.2f}x transformers (paired median)"
                 if n in row["speedup_vs_transformers"] else ""),
              flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="vit_huge_patch14:2,vit_base_patch16:8", help="model:batch, comma-separated")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true")
    add_run_args(p, repeats=5, default_out="features_<device type>")
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args()
    device = start(args)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    peak, peak_source = peak_flops(device)
    result = {**environment(device), "peak_flops": peak, "peak_source": peak_source,
              "flop_formula": "encoder forward over all N patches: 2 * (L*(N*(4D^2 + 2rD^2) + 2N^2 D) + N*3*p^2*D)",
              "rows": []}
    print(f"{result['device']}, torch {result['torch']}, {result['threads']} threads")
    for spec in args.rows.split(","):
        name, batch = spec.split(":")
        result["rows"].append(measure_row(name, int(batch), args, device, dtype, peak))
    final = max(peak, peak_flops(device)[0])  # the ceiling again, after the runs; keep the larger
    if final > peak:
        result["peak_flops"] = final
        for row in result["rows"]:
            row["mfu"] = {n: m * peak / final for n, m in row["mfu"].items()}
    save_result(result, args.out or f"features_{device.type}")


if __name__ == "__main__":
    main()
