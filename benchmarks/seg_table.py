"""The segmentation probe of a trained run against its random initialisation: the table of docs/evaluation.md
("Downstream"), and the picture ``docs/images/seg_default.png``.

``ijepa-eval seg MODEL --baseline`` runs in a subprocess (as a user runs it) once per ``--layers`` setting, on
the built-in synthetic shapes with their per-pixel labels; the first setting also draws ``--picture``. The
results (mIoU, pixel accuracy, the majority-class baseline, seconds) go to ``--results`` with the command,
commit, machine, threads and load; ``--table`` prints the Markdown table from them.

    python benchmarks/seg_table.py runs/default/model --picture docs/images/seg_default.png
    python benchmarks/seg_table.py --table
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, environment, table_requested

LAYERS = {"1": "last block", "4": "last four blocks"}


def run_seg(model: Path, layers: str, picture: str | None, threads: int) -> dict[str, Any]:
    """``ijepa-eval seg`` with ``--baseline`` at ``layers``: its JSON results, command and wall time."""
    with tempfile.TemporaryDirectory(prefix="ijepa-seg-table-") as tmp:
        out = Path(tmp) / "seg.json"
        cmd = [sys.executable, "-m", "ijepa_hub.eval.cli", "seg", str(model), "--baseline", "--layers", layers,
               "--json", str(out), "--cache-dir", "", *(["--picture", picture] if picture else [])]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        seconds = time.perf_counter() - start
        results = json.loads(out.read_text())
    return {"layers": layers, "command": ["python", *cmd[1:]], "seconds": round(seconds, 1),
            "results": {r["encoder"]: {k: r[k] for k in ("miou", "pixel_accuracy", "majority", "per_class_iou",
                                                          "num_train", "num_test", "seconds") if k in r}
                        for r in results}}


def table(results: Path) -> str:
    """Markdown: mIoU of the run and of its random initialisation by layers, then the majority baseline."""
    data = json.loads(results.read_text())
    out = ["| segmentation probe (synthetic, held out) | trained run | random init |", "|---|---|---|"]
    for row in data["rows"]:
        r = row["results"]
        out.append(f"| mIoU, {LAYERS.get(row['layers'], 'layers ' + row['layers'])} | {r['model']['miou']:.3f} | "
                   f"{r['random_init']['miou']:.3f} |")
    for row in data["rows"]:
        r = row["results"]
        out.append(f"| pixel accuracy, {LAYERS.get(row['layers'], 'layers ' + row['layers'])} | "
                   f"{r['model']['pixel_accuracy']:.3f} | {r['random_init']['pixel_accuracy']:.3f} |")
    majority = data["rows"][0]["results"]["model"]["majority"]
    out.append(f"| majority class everywhere: mIoU / pixel accuracy | {majority['miou']:.3f} / "
               f"{majority['pixel_accuracy']:.3f} | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="?", help="a trained run's model folder (e.g. runs/default/model)")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), help="--layers settings of ijepa-eval seg")
    parser.add_argument("--picture", default=None, help="PNG drawn by the first setting (the trained run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS / "seg_default_cpu.json")
    parser.add_argument("--table", action="store_true", help="print the Markdown table of --results and exit")
    args = parser.parse_args(argv)
    if table_requested(parser, args, table):
        return 0
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = [run_seg(args.model, layers, args.picture if i == 0 else None, args.threads)
            for i, layers in enumerate(args.layers)]
    recipe = json.loads((args.model / "config.json").read_text()).get("ijepa", {}).get("recipe", {})
    result = {**environment(torch.device("cpu")), "model": str(args.model),
              "model_recipe": {"name": recipe.get("name"), "train": recipe.get("train")},
              "load_average_before": list(load_before), "rows": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    print(table(args.results))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
