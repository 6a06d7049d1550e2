"""Fine-tuning against the frozen probes, from a pretrained run and from its random initialisation: the
top-1 table of docs/finetuning.md ("Fine-tuning and deployment").

For each start (the run's ``model`` folder, and the same architecture at the initialisation the run began
from) and each mode (``full``, ``linear``, ``attentive``), ``ijepa-finetune`` runs in a subprocess on the
built-in synthetic shapes with the same split, steps and seed; the last validation top-1, the wall time
and the trained parameter count are saved to ``--results`` and printed as a Markdown table.

    python benchmarks/finetune_table.py runs/default/model --epochs 4
    python benchmarks/finetune_table.py --table [--results FILE]   # the docs' table from a results file
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, environment, table_requested

from ijepa_hub.eval.plots import read_metrics

MODES = {  # mode -> its own overrides: the frozen modes take a higher learning rate, as probes do
    "full": ["--optim.lr", "1e-3"],
    "linear": ["--optim.lr", "3e-2"],
    "attentive": ["--optim.lr", "1e-3"],
}
HEADERS = {"full": "full fine-tuning (lr 1e-3)", "linear": "linear probe (`--model.mode linear`, lr 3e-2)",
           "attentive": "attentive probe (`--model.mode attentive`, lr 1e-3)"}
STARTS = {"pretrained run": "default `ijepa-train` run", "its random initialisation": "its random initialisation"}


def table(results: Path) -> str:
    """The Markdown table of docs/finetuning.md from a results file: last validation top-1 (%) by start and
    mode, the pretraining's gain (pretrained minus random init) and each run's wall time."""
    rows = json.loads(results.read_text())["rows"]
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    cell = {(r["start"], r["mode"]): r for r in rows}
    out = ["| start | " + " | ".join(HEADERS[m] for m in modes) + " |", "|---|" + "---|" * len(modes)]
    for start, shown in STARTS.items():
        out.append(f"| {shown} | " + " | ".join(f"{cell[start, m]['val_top1']:.1f}" for m in modes) + " |")
    gains = [cell["pretrained run", m]["val_top1"] - cell["its random initialisation", m]["val_top1"] for m in modes]
    out.append("| pretraining's gain | " + " | ".join(f"{g:+.1f}" for g in gains) + " |")
    for start, shown in STARTS.items():
        out.append(f"| wall time, {shown} | " + " | ".join(f"{cell[start, m]['seconds']:.0f} s" for m in modes) + " |")
    return "\n".join(out)


def save_random_init(model_dir: Path, out: Path) -> Path:
    """The network ``model_dir``'s run started from (its recipe's seed), saved as a model folder."""
    import ijepa_hub
    from ijepa_hub.eval import random_init_model

    config = ijepa_hub.from_pretrained(model_dir).config
    recipe = json.loads((model_dir / "config.json").read_text()).get("ijepa", {}).get("recipe", {})
    return ijepa_hub.save_pretrained(random_init_model(config, seed=int(recipe.get("train", {}).get("seed", 0))), out)


def finetune(source: Path, mode: str, out: Path, common: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "ijepa_hub.finetune", str(source), "--out", str(out), "--no-progress", "-q",
           "--model.mode", mode, *MODES[mode], *common]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    evals = [r for r in read_metrics(out / "metrics.jsonl") if "val_top1" in r]
    return {"mode": mode, "val_top1": evals[-1]["val_top1"], "best_val_top1": max(e["val_top1"] for e in evals),
            "steps": evals[-1]["step"], "seconds": round(seconds, 1), "command": cmd[1:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="?", help="an ijepa-train run's model folder (e.g. runs/default/model)")
    parser.add_argument("--table", action="store_true", help="print the Markdown table of --results and exit")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--results", type=Path, default=RESULTS / "finetune_table_cpu.json")
    args = parser.parse_args(argv)
    if table_requested(parser, args, table):
        return 0
    common = ["--optim.epochs", str(args.epochs), "--data.source_size", "96", "--train.threads", str(args.threads)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ijepa-ft-table-") as tmp:
        starts = {"pretrained run": args.model, "its random initialisation": save_random_init(args.model, Path(tmp) / "init")}
        for start, source in starts.items():
            for mode in args.modes:
                row = {"start": start, **finetune(source, mode, Path(tmp) / f"{len(rows)}-{mode}", common)}
                rows.append(row)
                print(f"{start}, {mode}: val top-1 {row['val_top1']:.1f} % (best {row['best_val_top1']:.1f}), "
                      f"{row['steps']} steps, {row['seconds']:.0f} s", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"model": str(args.model), "epochs": args.epochs, "rows": rows,
                                        "environment": environment(torch.device("cpu"))}, indent=2) + "\n")
    print(table(args.results))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
