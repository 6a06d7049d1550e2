"""Shared by the benchmark scripts: the FLOP formula, device facts, interleaved timing, JSON output.

FLOPs follow ``docs/performance.md`` (a multiply-add counts as 2 FLOPs). One ViT forward over ``n``
tokens, width ``D``, depth ``L``, MLP ratio ``r``:

    MACs = L * (n * (4 D^2 + 2 r D^2) + 2 n^2 D)   (+ patch embedding N * 3 * p^2 * D)

One I-JEPA training step per image, from the masks the run actually drew:

    target forward over N tokens + 3 x (context encoder over K_ctx tokens + predictor over its M
    sequences of K_ctx + K_tgt tokens, with its input and output projections)

(3 x: forward plus a backward that costs twice the forward.) The patch embedding runs over all N
patches in both encoders (the gather comes after it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ijepa_hub.registry import ModelConfig

__all__ = [
    "FLOP_FORMULA",
    "vit_forward_macs",
    "encoder_forward_flops",
    "cpu_model",
    "git_commit",
    "speedups",
    "ijepa_step_flops",
    "device_name",
    "environment",
    "peak_flops",
    "interleaved",
    "save_result",
    "RESULTS",
    "add_run_args",
    "table_requested",
    "start",
]

RESULTS = Path(__file__).parent / "results"

FLOP_FORMULA = (
    "2 FLOPs per multiply-add. ViT forward over n tokens: L*(n*(4D^2 + 2rD^2) + 2n^2 D) MACs, plus the patch "
    "embedding N*3*p^2*D over all N patches. Training step per image = target encoder forward over N tokens "
    "+ 3 x (context encoder over K_ctx tokens + predictor: K_ctx*D*d embed + M sequences of K_ctx+K_tgt tokens "
    "at width d + M*K_tgt*d*D projection), K_ctx and K_tgt the sizes of each step's actual masks."
)

# dense bf16 peak (TFLOP/s) by device-name fragment, for MFU on GPUs (docs/performance.md)
GPU_PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def add_run_args(parser: argparse.ArgumentParser, *, repeats: int, default_out: str) -> None:
    """The options every timing script shares: device, repeats, CPU threads, result name."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is); recorded")
    parser.add_argument("--out", default=None, help=f"result name under results/ (default {default_out})")


def table_requested(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    table: Callable[[Path], str]) -> bool:
    """For scripts whose docs table is generated: with ``--table`` print ``table(args.results)`` and say so;
    otherwise the positional ``model`` is required (a parser error without it)."""
    if args.table:
        print(table(args.results))
        return True
    if args.model is None:
        parser.error("the model folder is required (or --table)")
    return False


def start(args: argparse.Namespace) -> torch.device:
    """Pin the CPU threads if asked and return the device of ``args``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)


def vit_forward_macs(tokens: int, dim: int, depth: int, mlp_ratio: float = 4.0) -> float:
    """Multiply-adds of ``depth`` transformer blocks over ``tokens`` tokens of width ``dim``."""
    return depth * (tokens * (4 * dim**2 + 2 * mlp_ratio * dim**2) + 2 * tokens**2 * dim)


def _patch_embed_macs(config: ModelConfig) -> float:
    return config.num_patches * config.in_chans * config.patch_size**2 * config.embed_dim


def encoder_forward_flops(config: ModelConfig, tokens: int | None = None) -> float:
    """FLOPs of one encoder forward over ``tokens`` kept tokens (all patches by default)."""
    n = config.num_patches if tokens is None else tokens
    return 2 * (vit_forward_macs(n, config.embed_dim, config.depth, config.mlp_ratio) + _patch_embed_macs(config))


def ijepa_step_flops(config: ModelConfig, k_ctx: int, k_tgt: int, num_targets: int = 4) -> dict[str, float]:
    """FLOPs per image of one training step (forward + backward), split by network, for given mask sizes."""
    d, big = config.pred_embed_dim, config.embed_dim
    target = encoder_forward_flops(config)
    context = encoder_forward_flops(config, k_ctx)
    predictor = 2 * (
        k_ctx * big * d
        + num_targets * vit_forward_macs(k_ctx + k_tgt, d, config.pred_depth, 4.0)
        + num_targets * k_tgt * d * big
    )
    return {
        "target_forward": target,
        "context_fwd_bwd": 3 * context,
        "predictor_fwd_bwd": 3 * predictor,
        "total": target + 3 * (context + predictor),
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def git_commit() -> str:
    """The checkout's short commit, ``+dirty`` when tracked files differ from it ("not recorded" outside git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent,
                              check=True).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "not recorded"


def environment(device: torch.device) -> dict[str, Any]:
    """What every result records (the receipt of docs/performance.md#receipts): the command, the commit, the
    machine, the device, torch version, CPU threads and the load average (other jobs on shared cores)."""
    env = {"command": shlex.join(["python", *sys.argv]), "commit": git_commit(),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}",
           "device": device_name(device), "device_type": device.type, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "python": platform.python_version(),
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    return env


def peak_flops(device: torch.device, dtype: torch.dtype | None = None, trials: int = 10) -> tuple[float, str]:
    """The FLOP/s ceiling MFU is relative to, and where it comes from.

    CUDA: the dense bf16 peak of the device's data sheet (H100/H200 989, A100 312 TFLOP/s). CPU: a
    measured 2048^3 fp32 matmul on the current threads, best of ``trials`` (no data sheet for a shared
    VM's cores; other load lowers it, so scripts measure it before and after and keep the larger).
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in GPU_PEAK_BF16_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{key} dense bf16 data-sheet peak"
    n = 2048 if device.type == "cpu" else 8192
    dtype = dtype or (torch.float32 if device.type == "cpu" else torch.bfloat16)
    a = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(trials):
        _sync(device)
        t0 = time.perf_counter()
        a @ a
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best, f"measured {n}^3 {str(dtype).removeprefix('torch.')} matmul, best of {trials}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    variants: Mapping[str, Callable[[], Any]], *, repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each variant, the variants run in turn ``repeats`` times (noise hits all alike)."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def speedups(times: Mapping[str, list[float]], baseline: str) -> dict[str, dict[str, float]]:
    """Speed-up of each variant over ``baseline`` from :func:`interleaved` times.

    ``ratio_of_medians``: median baseline time / median variant time. ``median_of_paired``: the median
    over repeats of the ratio within each repeat, which cancels load that drifts between repeats (the
    figure to quote on a shared machine).
    """
    out = {}
    for name, t in times.items():
        if name == baseline:
            continue
        paired = [b / v for b, v in zip(times[baseline], t)]
        out[name] = {"ratio_of_medians": statistics.median(times[baseline]) / statistics.median(t),
                     "median_of_paired": statistics.median(paired)}
    return out


def save_result(result: Mapping[str, Any], name: str) -> Path:
    """Write ``results/<name>.json`` and return its path."""
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"saved {path}")
    return path
