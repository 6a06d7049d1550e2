"""Train the built-in default recipe (with overrides) on several seeds and probe each run against its
random initialisation: the sweep behind ``docs/anticollapse-sweep.md``.

Each (name, seed) trains with ``ijepa-train`` in a subprocess (the same parser and defaults a user gets),
then runs the probe of ``tests/test_eval_default_run.py`` (``ijepa-eval synthetic``: linear probe and
k-NN top-1 on held-out shapes, by shape and by count) on the trained target encoder and on the network
the run started from. One JSON line per run is appended to ``--results``; a (name, seed) already there
is skipped, so an interrupted sweep continues where it stopped.

Each row records the run's resolved recipe (the ``recipe.yaml`` the run wrote: every key, not only the
overrides), the command, the commit, the machine, the threads and the load, so ``--rerun NAME SEED`` trains that
row again from exactly its recipe and threads and compares the margins. Rows written before rows recorded their
recipe (``"recipe": null``) cannot be rerun exactly: their overrides applied to whatever the default was then.

    python benchmarks/sweep_default_recipe.py --name vcreg --seeds 0 1 2 3 4 -- --loss.vcreg_variance 1.0
    python benchmarks/sweep_default_recipe.py --name default_ijepa --recipe default_ijepa --seeds 1 --threads 1
    python benchmarks/sweep_default_recipe.py --rerun default_ijepa 1
    python benchmarks/sweep_default_recipe.py --table     # the Markdown table of every name in the results
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_RESULTS = Path(__file__).parent / "results" / "sweep_default_recipe.jsonl"


def done_runs(results: Path) -> set[tuple[str, int]]:
    if not results.is_file():
        return set()
    rows = (json.loads(line) for line in results.read_text().splitlines() if line.strip())
    return {(r["name"], r["seed"]) for r in rows}


def last_metrics(out_dir: Path) -> dict[str, Any]:
    """The last logged value of each metric the run wrote (loss, RankMe, online probe...)."""
    from ijepa_hub.eval.plots import read_metrics

    last: dict[str, Any] = {}
    for record in read_metrics(out_dir / "metrics.jsonl"):
        last.update(record)
    return last


def probe(out_dir: Path, seed: int) -> dict[str, Any]:
    import ijepa_hub
    from ijepa_hub.eval import random_init_encoder, synthetic_probe

    model = ijepa_hub.from_pretrained(out_dir / "model")
    baseline = random_init_encoder(model.config, seed=seed)
    return synthetic_probe(model.encoder, baseline=baseline, cache_dir="")


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()


def run_one(name: str, seed: int, overrides: list[str], *, root: Path, threads: int,
            recipe: str = "default") -> dict[str, Any]:
    import yaml
    from common import cpu_model

    out_dir = root / f"{name}-s{seed}"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    cmd = [sys.executable, "-m", "ijepa_hub.train", "--recipe", recipe, "--out", str(out_dir), "--no-progress", "-q",
           "--train.seed", str(seed), "--train.threads", str(threads), *overrides]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    report = probe(out_dir, seed)
    probe_s = time.perf_counter() - start
    labels = report["labels"]
    return {
        "name": name, "seed": seed, "overrides": overrides, "threads": threads,
        "recipe": yaml.safe_load((out_dir / "recipe.yaml").read_text()),  # resolved: every key the run used
        "command": ["python", *cmd[1:]], "commit": commit(), "machine": cpu_model(),
        "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
        "train_s": round(train_s, 1), "probe_s": round(probe_s, 1),
        "margin": {label: {k: round(v, 2) for k, v in row["margin"].items()} for label, row in labels.items()},
        "top1": {label: {who: row[who] for who in ("model", "random_init")} for label, row in labels.items()},
        "last_metrics": last_metrics(out_dir),
    }


def find_row(results: Path, name: str, seed: int) -> dict[str, Any]:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    match = [r for r in rows if r["name"] == name and r["seed"] == seed]
    if not match:
        raise SystemExit(f"{results}: no row {name!r} seed {seed}")
    return match[-1]


def rerun(results: Path, name: str, seed: int, *, root: Path) -> int:
    """Train row (name, seed) again from its recorded recipe and threads; 0 when the margins come out equal."""
    import tempfile

    import yaml

    row = find_row(results, name, seed)
    if not row.get("recipe") or not row.get("threads"):
        raise SystemExit(f"{name} seed {seed} was measured before rows recorded their resolved recipe and threads: "
                         "it cannot be rerun exactly. Measure it anew with --name and --recipe.")
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(row["recipe"], sort_keys=False))
        again = run_one(f"rerun-{name}", seed, [], root=root, threads=row["threads"], recipe=str(recipe))
    shutil.rmtree(root / f"rerun-{name}-s{seed}", ignore_errors=True)
    same = again["margin"] == row["margin"]
    print(f"{name} seed {seed}: recorded {row['margin']}\n{' ' * len(name)} again    {again['margin']}\n"
          + ("equal" if same else "DIFFERENT"))
    return 0 if same else 1


def table(results: Path) -> str:
    """Per configuration: linear-probe margins by seed, then the worst seed and the mean, shape and count."""
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    for line in results.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.setdefault(row["name"], {})[row["seed"]] = row
    out = ["| run | seeds | linear shape, by seed | linear count, by seed | shape worst / mean | count worst / mean "
           "| k-NN shape / count, mean |", "|---|---|---|---|---|---|---|"]
    for name, by_seed in rows.items():
        seeds = sorted(by_seed)
        cells = []
        for label in ("shape", "count"):
            cells.append(" / ".join(f"{by_seed[s]['margin'][label]['linear_top1']:+.1f}" for s in seeds))
        stats = []
        for label in ("shape", "count"):
            values = [by_seed[s]["margin"][label]["linear_top1"] for s in seeds]
            stats.append(f"{min(values):+.1f} / {sum(values) / len(values):+.1f}")
        knn = " / ".join(f"{sum(by_seed[s]['margin'][label]['knn_top1'] for s in seeds) / len(seeds):+.1f}"
                         for label in ("shape", "count"))
        out.append(f"| {name} | {', '.join(map(str, seeds))} | {cells[0]} | {cells[1]} | {stats[0]} | {stats[1]} | {knn} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, overrides = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", help="label of this configuration in the results")
    parser.add_argument("--table", action="store_true", help="print the results as a Markdown table and exit")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--root", type=Path, default=Path("runs/sweep"), help="parent of the run folders")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON lines, appended")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads per run")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (default: delete after probing)")
    parser.add_argument("--recipe", default="default", help="the recipe the overrides apply to (name or file)")
    parser.add_argument("--rerun", nargs=2, metavar=("NAME", "SEED"),
                        help="train a recorded row again from its resolved recipe and threads; compare the margins")
    args = parser.parse_args(own)
    if args.table:
        print(table(args.results))
        return 0
    if args.rerun:
        return rerun(args.results, args.rerun[0], int(args.rerun[1]), root=args.root)
    if not args.name:
        parser.error("--name is required to run a configuration")
    import torch

    torch.set_num_threads(args.threads)  # the probe, too, keeps to its share of the cores
    done = done_runs(args.results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        if (args.name, seed) in done:
            print(f"{args.name} seed {seed}: already in {args.results}, skipped")
            continue
        row = run_one(args.name, seed, overrides, root=args.root, threads=args.threads, recipe=args.recipe)
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        m = row["margin"]
        print(f"{args.name} seed {seed}: linear margins shape {m['shape']['linear_top1']:+.1f} count "
              f"{m['count']['linear_top1']:+.1f}, k-NN {m['shape']['knn_top1']:+.1f} / {m['count']['knn_top1']:+.1f}; "
              f"train {row['train_s']:.0f} s, probe {row['probe_s']:.0f} s", flush=True)
        if not args.keep:
            shutil.rmtree(args.root / f"{args.name}-s{seed}", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
