"""CPU fast paths (issue 24): bf16 autocast and int8 extraction, and the int8 ONNX export, against fp32.

One process, every variant of a row timed in interleaved rounds, median ratios. A row is one encoder at
224 px with random weights (seed 0), shared by all variants:

- ``transformers_fp32``: ``transformers.IJepaModel`` (SDPA) holding the same weights (through ijepa_hub's
  transformers export, as ``bench_features.py``): the baseline of the extraction goals;
- ``fp32`` / ``bf16`` / ``int8``: ``ijepa_hub.extract_features`` with ``dtype="fp32"``, ``dtype="bf16"``,
  ``quantize="int8"`` (onnxruntime dynamic int8, built once before timing);
- ``onnx_int8_export``: the file ``ijepa-hub export --format onnx --quantize int8`` writes (the same two
  library calls: ``models.int8.export_onnx`` of the deployable encoder, then ``quantize_int8``), run in
  onnxruntime: the goal of the export is against eager ``fp32``;
- ``torchao_int8`` (``--torchao``, if installed): torchao's dynamic int8 on the eager encoder, the other
  backend the issue named, kept to show why onnxruntime was chosen.

Each row also measures the matrix-product ceiling at the model's own MLP shape (tokens x D @ D x 4D): fp32
and bf16 ``torch.mm`` and the int8 path the model takes (an onnxruntime dynamically quantized MatMul), and
reports each variant's speed-up beside the ceiling's. Pooled-feature cosine to fp32 is recorded per variant.

    python benchmarks/bench_cpu_fastpaths.py --threads 1
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

from bench_features import transformers_model  # noqa: E402
from common import add_run_args, environment, interleaved, save_result, speedups, start  # noqa: E402
from tour import _receipt  # noqa: E402  (machine, threads, load, git commit)

import ijepa_hub  # noqa: E402
from ijepa_hub.deploy import deployable  # noqa: E402
from ijepa_hub.models.int8 import export_onnx, ort_session, quantize_int8  # noqa: E402
from ijepa_hub.precision import cpu_native_bf16  # noqa: E402


def gemm_ceiling(m: int, k: int, n: int, repeats: int, folder: Path) -> dict:
    """Seconds and speed-ups of [m, k] @ [k, n] in fp32, bf16 (torch.mm) and onnxruntime dynamic int8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a, w = torch.randn(m, k), torch.randn(k, n)
    ab, wb = a.bfloat16(), w.bfloat16()
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              initializer=[numpy_helper.from_array(w.numpy(), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "mm.onnx")
    quantize_int8(folder / "mm.onnx", folder / "mm_int8.onnx")
    session, feed = ort_session(folder / "mm_int8.onnx"), {"a": a.numpy()}
    times = interleaved({"fp32": lambda: a @ w, "bf16": lambda: ab @ wb, "int8": lambda: session.run(None, feed)},
                        repeats=repeats, device=torch.device("cpu"), warmup=2)
    med = {v: statistics.median(t) for v, t in times.items()}
    return {"shape": [m, k, n], "gflops": {v: 2 * m * k * n / t / 1e9 for v, t in med.items()},
            "speedup_vs_fp32": {v: r["median_of_paired"] for v, r in speedups(times, "fp32").items()}}


def measure_row(name: str, batch: int, args, folder: Path) -> dict:
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = ijepa_hub.create_model(name, img_size=args.img_size, with_predictor=False)
    config, encoder = model.config, model.target_encoder.eval()
    del model
    hf = transformers_model(encoder, config, torch.float32, device)
    images = torch.randn(batch, 3, args.img_size, args.img_size, generator=torch.Generator().manual_seed(0))

    def ours(**how):
        return lambda: ijepa_hub.extract_features(encoder, images, preprocessed=True, batch_size=batch, **how).pooled

    @torch.inference_mode()
    def theirs():
        return hf(pixel_values=images).last_hidden_state.mean(dim=1)

    variants = {"transformers_fp32": theirs, "fp32": ours(dtype="fp32"), "bf16": ours(dtype="bf16"),
                "int8": ours(quantize="int8")}
    t0 = time.perf_counter()
    variants["int8"]()  # quantizes the encoder (ONNX export + onnxruntime quantization), once
    setup = {"int8_quantize_s": time.perf_counter() - t0}
    if args.export:
        t0 = time.perf_counter()
        module, outputs = deployable(encoder)
        export_onnx(module, images[:2], folder / "model_fp32.onnx", outputs)
        quantize_int8(folder / "model_fp32.onnx", folder / "model.onnx")
        (folder / "model_fp32.onnx").unlink()
        for extra in folder.glob("model_fp32.onnx*"):  # external weights of a > 2 GB graph
            extra.unlink()
        session, feed = ort_session(folder / "model.onnx"), {"images": images.numpy()}
        variants["onnx_int8_export"] = lambda: torch.from_numpy(session.run(None, feed)[1])
        setup["onnx_export_s"] = time.perf_counter() - t0
    if args.torchao:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        ao = copy.deepcopy(encoder)
        quantize_(ao, Int8DynamicActivationInt8WeightConfig())
        variants["torchao_int8"] = lambda: ijepa_hub.extract_features(ao, images, preprocessed=True, batch_size=batch,
                                                                      dtype="fp32").pooled
    reference = variants["fp32"]()
    cosine = {v: float(F.cosine_similarity(fn().float(), reference).min()) for v, fn in variants.items()}
    times = interleaved(variants, repeats=args.repeats, device=device, warmup=1)
    med = {v: statistics.median(t) for v, t in times.items()}
    tokens = config.num_patches * batch
    ceiling = gemm_ceiling(tokens, config.embed_dim, int(config.embed_dim * config.mlp_ratio), args.gemm_repeats, folder)
    vs_hf = speedups(times, "transformers_fp32")
    vs_fp32 = speedups(times, "fp32")
    row = {
        "model": name, "img_size": args.img_size, "batch_size": batch, "repeats": args.repeats, "setup_seconds": setup,
        "seconds_per_batch_median": med, "seconds_per_batch_all": times,
        "images_per_s": {v: batch / t for v, t in med.items()},
        "speedup_vs_transformers_fp32": vs_hf, "speedup_vs_fp32": vs_fp32,
        "min_pooled_cosine_to_fp32": cosine,
        "gemm_ceiling": ceiling,
        "share_of_ceiling": {  # the model's speed-up over eager fp32 as a share of the matmul's at its MLP shape
            v: vs_fp32[v]["median_of_paired"] / ceiling["speedup_vs_fp32"]["bf16" if v == "bf16" else "int8"]
            for v in ("bf16", "int8", "onnx_int8_export") if v in vs_fp32
        },
        "goals": {"bf16_vs_transformers": 2.5, "int8_vs_transformers": 3.0, "onnx_int8_export_vs_fp32": 3.0},
        "loadavg_after": os.getloadavg(),
    }
    print(f"{name} b={batch}: " + ", ".join(
        f"{v} {vs_hf[v]['median_of_paired']:.2f}x transformers (cos {cosine[v]:.5f})" for v in vs_hf), flush=True)
    print(f"  gemm {ceiling['shape']}: " + ", ".join(f"{v} {g:.0f} GFLOP/s" for v, g in ceiling["gflops"].items()), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="vit_base_patch16:4,vit_huge_patch14:1:3",
                   help="model:batch[:repeats], comma-separated (repeats: default --repeats)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--export", action=argparse.BooleanOptionalAction, default=True, help="time the int8 ONNX export file")
    p.add_argument("--torchao", action=argparse.BooleanOptionalAction, default=True,
                   help="add torchao's dynamic int8 (when installed)")
    p.add_argument("--gemm-repeats", type=int, default=9)
    add_run_args(p, repeats=5, default_out="cpu_fastpaths")
    args = p.parse_args()
    start(args)
    if args.torchao:
        try:
            import torchao  # noqa: F401
        except ImportError:
            args.torchao = False
    result = {**_receipt(), **environment(torch.device("cpu")), "native_bf16": cpu_native_bf16(), "rows": []}
    print(f"{result['device']}, torch {result['torch']}, {result['threads']} threads, load {result['load_average_before']}")
    for spec in args.rows.split(","):
        name, batch, *repeats = spec.split(":")
        row_args = argparse.Namespace(**{**vars(args), "repeats": int(repeats[0]) if repeats else args.repeats})
        with tempfile.TemporaryDirectory(prefix="bench_fastpaths_") as tmp:
            result["rows"].append(measure_row(name, int(batch), row_args, Path(tmp)))
    result["loadavg_after"] = os.getloadavg()
    save_result(result, args.out or "cpu_fastpaths")


if __name__ == "__main__":
    main()
