"""Shared by the benchmark scripts: device facts, interleaved timing, JSON output.

The FLOP formulas (``FLOP_FORMULA``, ``ijepa_step_flops``...) and the GPU peaks are the library's
(:mod:`ijepa_hub.flops`, :data:`ijepa_hub.train.plan.GPUS`, the planner's too), re-exported here.
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

from ijepa_hub.flops import FLOP_FORMULA, encoder_forward_flops, ijepa_step_flops, vit_forward_macs
from ijepa_hub.train.plan import GPUS

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

# dense bf16 peak (TFLOP/s) by device-name fragment, for MFU on GPUs: the planner's table
GPU_PEAK_BF16_TFLOPS = {name: gpu.peak_bf16_tflops for name, gpu in GPUS.items()}


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
