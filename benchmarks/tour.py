"""The README's tour, run as written: train, evaluate, draw, fine-tune, classify, export.

``STEPS`` is the one list of the tour's commands: the README shows them, this script times them at full size
on the CPU (each in a subprocess from a fresh working folder, as a user runs them) and writes the receipts to
``benchmarks/results/tour_cpu.json``; ``tests/test_tour.py`` runs the same commands with ``tiny=True`` (the
``TINY`` overrides appended, a few steps each) in-process, so the tour cannot rot.

    python benchmarks/tour.py            # ~10 minutes on 2 cores; --workdir DIR keeps the runs
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLASSIFY = ("import ijepa_hub; from ijepa_hub.data import SyntheticShapes; image, _ = SyntheticShapes(1, seed=1)[0]; "
            "print(ijepa_hub.from_pretrained('runs/ft/model').classify(image, top_k=2))")


@dataclass(frozen=True)
class Step:
    """One command of the tour: its tool and arguments as the README shows them, the overrides that make it
    take seconds (``tiny``), and the pattern of the output lines that hold its key numbers."""

    name: str
    argv: tuple[str, ...]
    tiny: tuple[str, ...] = ()
    key: str = ""

    def command(self, *, tiny: bool = False) -> list[str]:
        return [*self.argv, *(self.tiny if tiny else ())]

    def shown(self) -> str:
        """The command as the README shows it."""
        return shlex.join(self.argv)


TINY_TRAIN = (  # as tests/conftest.py TINY_TRAIN_ARGS, two steps, the online probe on (the summary shows it)
    "--model.img_size", "32", "--model.pred_depth", "2", "--data.num_samples", "64", "--data.source_size", "32",
    "--data.batch_size_per_device", "8", "--mask.min_keep", "2", "--optim.batch_size", "8", "--optim.epochs", "1",
    "--train.num_workers", "0", "--train.monitor_every", "0", "--train.max_steps", "2", "--train.eval_every", "2",
    "--loss.vcreg_variance", "0", "--loss.vcreg_covariance", "0", "--loss.sigreg_weight", "0", "--no-progress",
)

STEPS: tuple[Step, ...] = (
    Step("train", ("ijepa-train",), TINY_TRAIN, key=r"^ijepa-train: steps"),
    Step("synthetic", ("ijepa-eval", "synthetic", "runs/default/model"), ("--num-train", "24", "--num-test", "12"),
         key=r"train / .* test images|^(shape|count) +(model|random_init|margin) "),
    Step("seg", ("ijepa-eval", "seg", "runs/default/model", "--picture", "seg.png"),
         ("--num-train", "8", "--num-test", "4", "--epochs", "1", "--num-pictures", "2"),
         key=r"train / .* test images|^model +\d|^wrote"),
    Step("finetune", ("ijepa-finetune", "runs/default/model", "--out", "runs/ft"),
         ("--data.num_train", "16", "--data.num_val", "8", "--data.batch_size_per_device", "8",
          "--optim.batch_size", "8", "--optim.epochs", "1", "--train.num_workers", "0", "--no-progress"),
         key=r"^ijepa-finetune: steps"),
    Step("classify", ("python", "-c", CLASSIFY), key=r"^\[\["),
    Step("export", ("ijepa-hub", "export", "runs/ft/model", "out/", "--format", "onnx"), key=r"^wrote"),
)


def key_lines(step: Step, output: str) -> list[str]:
    """The lines of ``output`` that hold ``step``'s key numbers."""
    return [line.rstrip() for line in output.splitlines() if re.search(step.key, line)]


def run_in_process(step: Step, *, tiny: bool = True) -> tuple[int, str]:
    """``step`` through the CLIs' ``main`` (or ``exec`` for ``python -c``) in this process: ``(exit code, stdout)``."""
    import contextlib
    import io

    argv = step.command(tiny=tiny)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if argv[0] == "python":
            exec(compile(argv[2], "<tour>", "exec"), {})  # noqa: S102 - the tour's own one-line program
            code = 0
        else:
            code = _main(argv[0])(argv[1:])
    return code, out.getvalue()


def _main(tool: str):
    if tool == "ijepa-train":
        from ijepa_hub.train.cli import main
    elif tool == "ijepa-eval":
        from ijepa_hub.eval.cli import main
    elif tool == "ijepa-finetune":
        from ijepa_hub.finetune.cli import main
    else:
        from ijepa_hub.hub.cli import main
    return main


def run_subprocess(step: Step, cwd: Path, *, tiny: bool = False) -> dict[str, Any]:
    """``step`` as a user runs it (the console script on PATH), timed: its record for the JSON file."""
    argv = step.command(tiny=tiny)
    argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"tour step {step.name} failed ({proc.returncode}): {step.shown()}\n{proc.stderr[-3000:]}")
    return {"name": step.name, "command": step.shown(), "seconds": round(seconds, 1),
            "key_lines": key_lines(step, proc.stdout), "stdout": proc.stdout[-4000:]}


def _receipt() -> dict[str, Any]:
    """The machine and the code the figures come from: CPU model, cores, torch's threads, git commit."""
    import torch
    from common import environment

    root = Path(__file__).resolve().parent.parent
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                           text=True)
    return {**environment(torch.device("cpu")), "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
            "git_commit": git.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import RESULTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--results", default=str(RESULTS / "tour_cpu.json"))
    args = parser.parse_args()
    receipt = _receipt()
    with tempfile.TemporaryDirectory(prefix="ijepa-tour-") as tmp:
        cwd = Path(args.workdir or tmp)
        cwd.mkdir(parents=True, exist_ok=True)
        steps = []
        for step in STEPS:
            steps.append(run_subprocess(step, cwd))
            print(f"{step.name:10s} {steps[-1]['seconds']:7.1f} s  {' | '.join(steps[-1]['key_lines'])}", flush=True)
    result = {"what": "the README tour: each command in a subprocess from one fresh working folder, full size, CPU",
              "total_seconds": round(sum(s["seconds"] for s in steps), 1), "steps": steps,
              "environment": {**receipt, "load_average_after": os.getloadavg()}}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
