"""Does bf16 autocast pay off for training on this CPU? The receipt behind ``train.precision: auto`` on CPU.

Three measurements, one process, written to ``results/cpu_train_precision.json`` after each part (an
interrupted run keeps what it measured):

1. the ceiling: a 1024^3 matmul in fp32 and in bf16, interleaved rounds;
2. the default recipe's trainer step (``train_step`` on its model, batch and masks), fp32 against bf16
   autocast, interleaved rounds, median of the paired ratios;
3. the default run, whole (``ijepa-train`` in a subprocess, then the probe of ``ijepa-eval synthetic``),
   for each seed fp32 then bf16 back to back: wall time and the linear / k-NN probe margins over random
   initialisation (``benchmarks/sweep_default_recipe.py``'s ``run_one``), in the order of ``--runs``.

    python benchmarks/bench_cpu_train_precision.py --threads 1
    python benchmarks/bench_cpu_train_precision.py --threads 1 --runs      # parts 1-2 only
    python benchmarks/bench_cpu_train_precision.py --table                 # the runs as a Markdown table
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, environment, interleaved, save_result, speedups  # noqa: E402
from sweep_default_recipe import run_one  # noqa: E402

import ijepa_hub  # noqa: E402
from ijepa_hub.data import MicroBatch  # noqa: E402
from ijepa_hub.masks import MaskCollator  # noqa: E402
from ijepa_hub.models import IJepa  # noqa: E402
from ijepa_hub.precision import autocast_context, cpu_native_bf16  # noqa: E402
from ijepa_hub.train.loop import train_step  # noqa: E402
from ijepa_hub.train.optim import build_optimizer  # noqa: E402

CPU = torch.device("cpu")
PRECISIONS = ("fp32", "bf16")
# seed 0 of both first (a paired whole-run time early), then the rest
DEFAULT_RUNS = ["bf16:0", "fp32:0", "bf16:1", "bf16:2", "fp32:1", "fp32:2"]


def matmul_ceiling(repeats: int, n: int = 1024) -> dict:
    """GFLOP/s of an ``n``^3 matmul per dtype (best round) and bf16's speed-up (median of paired rounds)."""
    a32 = torch.randn(n, n)
    a16 = a32.bfloat16()
    times = interleaved({"fp32": lambda: a32 @ a32, "bf16": lambda: a16 @ a16}, repeats=repeats, device=CPU, warmup=2)
    return {"n": n, "gflops": {k: 2 * n**3 / min(t) / 1e9 for k, t in times.items()},
            "bf16_speedup": speedups(times, "fp32")["bf16"], "times_s": times}


def step_times(repeats: int) -> dict:
    """Seconds per trainer step of the default recipe, fp32 and bf16 autocast in turn, each on its own
    model copy (same initial weights) and the same images and mask draws."""
    recipe = ijepa_hub.load_recipe("default")
    config = recipe.model_config()
    batch = recipe.data.batch_size_per_device
    collator = MaskCollator(recipe.mask, img_size=config.img_size, patch_size=config.patch_size)
    images = torch.randn(batch, 3, config.img_size, config.img_size)
    labels = torch.zeros(batch, 1, dtype=torch.long)
    draws = [MicroBatch(images, labels, *collator.sample(batch, i), 0) for i in range(repeats + 2)]
    steps = {}
    for precision in PRECISIONS:
        torch.manual_seed(0)
        model = IJepa(config, loss=recipe.optim.loss)
        optimizer = build_optimizer(model, recipe.optim)
        position = iter(range(10**9))

        def step(model=model, optimizer=optimizer, precision=precision, position=position) -> None:
            micro = draws[next(position) % len(draws)]
            train_step(model, [micro], optimizer, device=CPU, autocast=lambda: autocast_context(CPU, precision))

        steps[precision] = step
    times = interleaved(steps, repeats=repeats, device=CPU, warmup=2)
    return {"model": recipe.model.name, "img_size": config.img_size, "batch_size": batch,
            "median_s_per_step": {k: statistics.median(t) for k, t in times.items()},
            "bf16_speedup": speedups(times, "fp32")["bf16"], "times_s": times}


def margin_table(result: dict) -> str:
    """The whole runs of ``result`` as Markdown: linear-probe margins by seed and their mean, train time."""
    out = ["| precision | seeds | linear shape, by seed: mean | linear count, by seed: mean | k-NN shape / count, mean "
           "| train s, by seed |", "|---|---|---|---|---|---|"]
    for precision in PRECISIONS:
        rows = sorted((r for r in result.get("runs", []) if r["name"] == precision), key=lambda r: r["seed"])
        if not rows:
            continue
        cells = []
        for label in ("shape", "count"):
            values = [r["margin"][label]["linear_top1"] for r in rows]
            cells.append(" / ".join(f"{v:+.1f}" for v in values) + f": **{statistics.mean(values):+.1f}**")
        knn = " / ".join(f"{statistics.mean(r['margin'][label]['knn_top1'] for r in rows):+.1f}" for label in ("shape", "count"))
        times = " / ".join(f"{r['train_s']:.0f}" for r in rows)
        out.append(f"| {precision} | {', '.join(str(r['seed']) for r in rows)} | {cells[0]} | {cells[1]} | {knn} | {times} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, here and in each training run")
    p.add_argument("--repeats", type=int, default=10, help="interleaved rounds of parts 1 and 2")
    p.add_argument("--runs", nargs="*", default=DEFAULT_RUNS,
                   help="whole default runs as PRECISION:SEED, in this order (none: parts 1-2 only)")
    p.add_argument("--root", type=Path, default=None, help="parent of the run folders (default: a temporary one)")
    p.add_argument("--out", default="cpu_train_precision")
    p.add_argument("--table", action="store_true", help="print the saved runs as a Markdown table and exit")
    args = p.parse_args()
    if args.table:
        print(margin_table(json.loads((RESULTS / f"{args.out}.json").read_text())))
        return
    runs = [(r.partition(":")[0], r.partition(":")[2]) for r in args.runs]
    if any(precision not in PRECISIONS or not seed.isdigit() for precision, seed in runs):
        p.error(f"--runs: each is PRECISION:SEED, PRECISION one of {', '.join(PRECISIONS)} (e.g. bf16:0)")
    runs = [(precision, int(seed)) for precision, seed in runs]
    torch.set_num_threads(args.threads)
    result = {**environment(CPU), "cpu_native_bf16": cpu_native_bf16(), "command": " ".join(sys.argv),
              "load_average_before": os.getloadavg()}
    result["matmul"] = matmul_ceiling(args.repeats)
    print(f"matmul 1024^3: {result['matmul']['gflops']}, bf16 x{result['matmul']['bf16_speedup']['median_of_paired']:.2f}",
          flush=True)
    save_result(result, args.out)
    result["step"] = step_times(args.repeats)
    print(f"default step: {result['step']['median_s_per_step']}, bf16 x{result['step']['bf16_speedup']['median_of_paired']:.2f}",
          flush=True)
    result["load_average_after_steps"] = os.getloadavg()
    save_result(result, args.out)
    root = args.root or Path(tempfile.mkdtemp(prefix="cpu_train_precision_"))
    result["runs"] = []
    for precision, seed in runs:
        load = os.getloadavg()
        row = run_one(precision, seed, ["--train.precision", precision], root=root, threads=args.threads)
        row["load_average_before"], row["load_average_after"] = load, os.getloadavg()
        result["runs"].append(row)
        shutil.rmtree(root / f"{precision}-s{seed}", ignore_errors=True)
        m = row["margin"]
        print(f"{precision} seed {seed}: train {row['train_s']:.0f} s, linear margins shape "
              f"{m['shape']['linear_top1']:+.1f} count {m['count']['linear_top1']:+.1f}", flush=True)
        save_result(result, args.out)

if __name__ == "__main__":
    main()
