"""Exported model speed on CPU: onnxruntime and a ``torch.export`` program against eager PyTorch.

Exports an encoder (patch tokens + pooled features) or a fine-tuned classifier with
:func:`ijepa_hub.deploy.export_deployable` (fp32, dynamic batch, checked against eager), then times eager
PyTorch, the ``torch.export`` program and an onnxruntime session on the same random batch, in turn
(:func:`common.interleaved`, so load drifting on a shared machine hits all alike). Reports seconds per
batch, images/s and the speed-up over eager (median of the paired ratios). Saves
``results/onnx_<name>.json``.

    python benchmarks/bench_onnx.py --model vit_tiny_patch16 --img-size 64 --batch 8 --threads 1
    python benchmarks/bench_onnx.py --source runs/ft/model --batch 16        # a fine-tuned classifier
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import add_run_args, environment, interleaved, save_result, speedups, start  # noqa: E402

import ijepa_hub  # noqa: E402
from ijepa_hub.deploy import deployable, export_deployable  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_tiny_patch16", help="architecture, random init (ignored with --source)")
    p.add_argument("--source", default=None, help="anything from_pretrained loads (a fine-tuned classifier too)")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    add_run_args(p, repeats=20, default_out="onnx_<model>_cpu")
    args = p.parse_args()
    device = start(args)
    if device.type != "cpu":
        raise SystemExit("onnxruntime runs here on CPU: use --device cpu")
    import onnxruntime as ort

    torch.manual_seed(0)
    if args.source:
        model = ijepa_hub.from_pretrained(args.source)
        name = Path(args.source.rstrip("/")).name
    else:
        model = ijepa_hub.create_model(args.model, img_size=args.img_size, with_predictor=False)
        name = args.model
    model.eval()
    module, outputs = deployable(model)
    size = (model if hasattr(model, "patch_embed") else model.encoder).patch_embed.img_size
    x = torch.randn(args.batch, 3, *size)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_deployable(model, Path(tmp) / "onnx", format="onnx")
        pt2 = export_deployable(model, Path(tmp) / "pt2", format="torch-export")
        options = ort.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = options.inter_op_num_threads = args.threads
        session = ort.InferenceSession(str(onnx.file), options, providers=["CPUExecutionProvider"])
        program = torch.export.load(str(pt2.file)).module()
        feed = {"images": x.numpy()}
        with torch.inference_mode():
            times = interleaved({
                "eager": lambda: module(x),
                "torch_export": lambda: program(x),
                "onnxruntime": lambda: session.run(None, feed),
            }, repeats=args.repeats, device=device, warmup=2)
    result = {
        "what": "forward of one batch on CPU, fp32: eager PyTorch vs the torch.export program vs onnxruntime",
        "model": name, "outputs": outputs, "img_size": list(size), "batch": args.batch, "threads": args.threads,
        "onnxruntime_version": ort.__version__, "export_max_abs_diff": {"onnx": onnx.max_abs_diff, "torch_export": pt2.max_abs_diff},
        "seconds_median": {k: statistics.median(v) for k, v in times.items()},
        "images_per_s": {k: args.batch / statistics.median(v) for k, v in times.items()},
        "speedup_over_eager": speedups(times, "eager"),
        "environment": environment(device),
    }
    for k, v in result["seconds_median"].items():
        ratio = result["speedup_over_eager"].get(k, {}).get("median_of_paired", 1.0)
        print(f"{k:14s} {v * 1e3:8.2f} ms/batch  {result['images_per_s'][k]:8.1f} img/s  x{ratio:.2f} vs eager")
    save_result(result, args.out or f"onnx_{name}_cpu")


if __name__ == "__main__":
    main()
