"""``train.compile`` against eager on the CPU: the tour's tiny recipe trained a few steps both ways (as
``tests/test_train_precision_compile.py`` does), with the compile time and the largest differences.
Writes ``results/compile_train_cpu.json``. Needs a C++ compiler; minutes of code generation on 2 cores.

    python benchmarks/check_compile_train.py --steps 3 --threads 1
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import environment, save_result  # noqa: E402
from tour import TINY_TRAIN  # noqa: E402  (the tour's tiny overrides, as the tests')

import ijepa_hub  # noqa: E402
from ijepa_hub.train import train  # noqa: E402
from ijepa_hub.train.cli import parse_args  # noqa: E402


def run(recipe, out: Path, steps: int, compiled: bool) -> dict:
    recipe = copy.deepcopy(recipe)
    recipe.train.max_steps, recipe.train.compile = steps, compiled
    start = time.perf_counter()
    result = train(recipe, out_dir=out, progress=False)
    model = ijepa_hub.from_pretrained(result.export_dir, with_context_encoder=True)
    return {"seconds": time.perf_counter() - start, "losses": result.losses, "state": model.state_dict()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    recipe = parse_args(list(TINY_TRAIN))[0]
    with tempfile.TemporaryDirectory() as tmp:
        eager = run(recipe, Path(tmp) / "eager", args.steps, False)
        compiled = run(recipe, Path(tmp) / "compiled", args.steps, True)
    diff = max(float((compiled["state"][k].float() - v.float()).abs().max()) for k, v in eager["state"].items())
    result = {**environment(torch.device("cpu")), "command": " ".join(sys.argv), "load_average": os.getloadavg(),
              "steps": args.steps, "eager_s": eager["seconds"], "compiled_s": compiled["seconds"],
              "eager_losses": eager["losses"], "compiled_losses": compiled["losses"], "max_weight_difference": diff}
    print(f"eager {eager['seconds']:.0f} s, compiled {compiled['seconds']:.0f} s; losses {eager['losses']} vs "
          f"{compiled['losses']}; largest weight difference {diff:.2e}")
    save_result(result, "compile_train_cpu")


if __name__ == "__main__":
    main()
