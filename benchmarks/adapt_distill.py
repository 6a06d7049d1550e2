"""Adapt and shrink on the CPU: the evidence of docs/adapt-and-distill.md.

``adapt``: per seed, the default run (domain A: plain synthetic shapes), the same run continued for 100 steps
on domain B (``--recipe adapt_default``, ``synthetic:textured``) and a from-scratch default-recipe run of the
same 100 steps on B; linear-probe and k-NN top-1 on held-out B images, shape and count, of the three and of
their random initialisation.

``distill``: a 4-block student of the seed's default run (``--recipe distill_default``) against the same
4-block model trained by plain I-JEPA for the same 300 steps; probe margins over random initialisation on
held-out A images, and the extraction speed of student and teacher (interleaved timing).

Each row goes to ``--results`` (JSON lines, appended) with the command lines, the commit, the machine and the
threads; ``--table`` prints the tables.

    python benchmarks/adapt_distill.py adapt --seeds 0 1 2
    python benchmarks/adapt_distill.py distill --seeds 0
    python benchmarks/adapt_distill.py --table
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from common import RESULTS, cpu_model, environment, interleaved

DEFAULT_RESULTS = RESULTS / "adapt_distill_cpu.jsonl"
STEPS_B = 100  # the adaptation's N: a third of the default run's 300 steps


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()


def train(out: Path, args: list[str], threads: int) -> tuple[list[str], float]:
    """Run ``ijepa-train`` into ``out`` (skipped when it holds a finished run); the command and its seconds."""
    cmd = [sys.executable, "-m", "ijepa_hub.train", "--out", str(out), "--no-progress", "-q",
           "--train.threads", str(threads), *args]
    if (out / "model" / "config.json").is_file():
        return cmd[1:], float("nan")
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return cmd[1:], round(time.perf_counter() - start, 1)


def probe(model_dir: Path, seed: int, style: str) -> dict[str, Any]:
    """Linear and k-NN top-1 of the model and of its random initialisation on held-out ``style`` images."""
    import ijepa_hub
    from ijepa_hub.eval import random_init_encoder, synthetic_probe

    model = ijepa_hub.from_pretrained(model_dir)
    report = synthetic_probe(model.encoder, baseline=random_init_encoder(model.config, seed=seed), style=style,
                             cache_dir="")
    return {label: {"model": row["model"], "random_init": row["random_init"]} for label, row in report["labels"].items()}


def run_and_probe(specs: dict[str, tuple[Path, list[str]]], seed: int, threads: int, style: str) -> dict[str, Any]:
    """Train each ``name: (folder, overrides)`` of ``specs`` in turn, then probe each on held-out ``style`` images;
    the row records the commands, times and each run's resolved recipe (its ``recipe.yaml``)."""
    seed_args = ["--train.seed", str(seed)]
    runs = {name: train(folder, [*args, *seed_args], threads) for name, (folder, args) in specs.items()}
    return {"seed": seed, "probe_style": style,
            "probes": {name: probe(folder / "model", seed, style) for name, (folder, _) in specs.items()},
            "recipes": {name: yaml.safe_load((folder / "recipe.yaml").read_text()) for name, (folder, _) in specs.items()},
            "commands": {k: v[0] for k, v in runs.items()}, "train_s": {k: v[1] for k, v in runs.items()}}


def adapt(seed: int, root: Path, threads: int) -> dict[str, Any]:
    a = root / f"default-s{seed}"
    specs = {
        "domain_a": (a, []),
        "adapted": (root / f"adapt-s{seed}", ["--recipe", "adapt_default", "--init", str(a)]),
        "scratch": (root / f"scratch-b-s{seed}", ["--data", "synthetic:textured", "--optim.epochs",
                                                  str(STEPS_B * 32 // 3200)]),
    }
    return {"kind": "adapt", "steps_b": STEPS_B, **run_and_probe(specs, seed, threads, "textured")}


def extraction_speed(student: Path, teacher: Path, threads: int, repeats: int = 5) -> dict[str, float]:
    """Images per second of each encoder's forward on 256 preprocessed 64 px images, timed in turn."""
    import ijepa_hub

    torch.set_num_threads(threads)
    models = {"student": ijepa_hub.from_pretrained(student).encoder, "teacher": ijepa_hub.from_pretrained(teacher).encoder}
    images = torch.randn(256, 3, 64, 64)

    def run(encoder):
        def call():
            with torch.inference_mode():
                for chunk in images.split(64):
                    encoder(chunk)
        return call

    times = interleaved({k: run(m) for k, m in models.items()}, repeats=repeats, device=torch.device("cpu"))
    return {k: round(len(images) / min(v), 1) for k, v in times.items()}


def distill(seed: int, root: Path, threads: int) -> dict[str, Any]:
    teacher, student = root / f"default-s{seed}", root / f"distill-s{seed}"
    specs = {
        "teacher": (teacher, []),
        "student": (student, ["--recipe", "distill_default", "--teacher", str(teacher)]),
        "plain": (root / f"plain4-s{seed}", ["--model.depth", "4", "--model.pred_depth", "4"]),
    }
    row = run_and_probe(specs, seed, threads, "plain")
    return {"kind": "distill", **row,
            "images_per_s": extraction_speed(student / "model", teacher / "model", threads)}


def _top1(row: dict[str, Any], name: str, label: str, who: str = "model", metric: str = "linear_top1") -> float:
    return row["probes"][name][label][who][metric]


def _pair(values: list[float], sign: str = "") -> str:
    return " / ".join(f"{v:{sign}.1f}" for v in values)


def _diff(a: list[float], b: list[float]) -> str:
    return " / ".join(f"{x - y:+.1f}" for x, y in zip(a, b))


def table(results: Path) -> str:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    latest = {(r["kind"], r["seed"]): r for r in rows}  # a re-run replaces its seed's row
    out = ["Adaptation: linear-probe top-1 (%) on held-out domain-B images, shape / count",
           "", "| seed | random init | domain-A model (frozen) | from scratch on B, 100 steps | adapted, 100 steps "
           "| adapted - frozen | adapted - scratch |", "|---|---|---|---|---|---|---|"]
    for (kind, seed), r in sorted(latest.items()):
        if kind != "adapt":
            continue
        cell = {n: [_top1(r, n, lab) for lab in ("shape", "count")] for n in ("domain_a", "scratch", "adapted")}
        rnd = [_top1(r, "adapted", lab, "random_init") for lab in ("shape", "count")]
        out.append(f"| {seed} | {_pair(rnd)} | {_pair(cell['domain_a'])} | {_pair(cell['scratch'])} | "
                   f"{_pair(cell['adapted'])} | {_diff(cell['adapted'], cell['domain_a'])} | "
                   f"{_diff(cell['adapted'], cell['scratch'])} |")
    out += ["", "Distillation: linear-probe margin over random init (points) on held-out domain-A images, shape / "
            "count; extraction speed (images/s)", "",
            "| seed | teacher (12 blocks) | distilled student (4) | plain I-JEPA student (4) | student / teacher "
            "margin | student - plain | student / teacher speed |", "|---|---|---|---|---|---|---|"]
    for (kind, seed), r in sorted(latest.items()):
        if kind != "distill":
            continue
        margin = {n: [_top1(r, n, lab) - _top1(r, n, lab, "random_init") for lab in ("shape", "count")]
                  for n in ("teacher", "student", "plain")}
        ratio = " / ".join(f"{s / t:.0%}" for s, t in zip(margin["student"], margin["teacher"]))
        diff = _diff(margin["student"], margin["plain"])
        speed = r["images_per_s"]
        out.append(f"| {seed} | {_pair(margin['teacher'], '+')} | {_pair(margin['student'], '+')} | "
                   f"{_pair(margin['plain'], '+')} | "
                   f"{ratio} | {diff} | {speed['student'] / speed['teacher']:.1f}x ({speed['student']:.0f} vs "
                   f"{speed['teacher']:.0f}) |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", nargs="?", choices=("adapt", "distill"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("runs/adapt_distill"), help="parent of the run folders")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--table", action="store_true", help="print the tables of --results and exit")
    args = parser.parse_args(argv)
    if args.table or args.kind is None:
        print(table(args.results))
        return 0
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        row = (adapt if args.kind == "adapt" else distill)(seed, args.root, args.threads)
        row.update(commit=commit(), machine=f"{platform.node()} ({cpu_model()})", command=sys.argv,
                   **{"env": environment(torch.device("cpu"))})
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("kind", "seed", "probes", "train_s")}))
    print(table(args.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
