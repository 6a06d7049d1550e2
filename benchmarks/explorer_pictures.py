"""The explorer's README pictures and numbers: the predictor view of a trained run against its random init,
the demo page's screenshot, and the time to first picture on CPU.

    python -m ijepa_hub.train --out runs/default          # the default run (a few minutes on CPU)
    python benchmarks/explorer_pictures.py runs/default [--screenshot] [--vitb]

Writes docs/images/predictor_view.png (``ijepa-eval predict RUN --baseline``: trained rows above random-init rows,
each image's own patches as the bank), docs/images/demo_page.png (``--screenshot``: the browser test's page after a
click, saved by tests/test_demo_browser.py) and benchmarks/results/explorer_cpu.json: mean cosine(predicted,
actual) and self-retrieval for both, and wall seconds of (a) ``Explorer.load`` + the first PCA picture and (b) the
whole ``ijepa-eval predict`` command, for the run and (``--vitb``) a ViT-B/16 at 224 px with random weights.
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

import torch
from common import environment, save_result

ROOT = Path(__file__).resolve().parent.parent
PICTURE = ROOT / "docs" / "images" / "predictor_view.png"
SCREENSHOT = ROOT / "docs" / "images" / "demo_page.png"


def first_picture_seconds(source: str) -> float:
    """Load ``source`` as the demo does and draw the first PCA picture of a synthetic shape (one process)."""
    from ijepa_hub.eval.demo_app import image_outputs
    from ijepa_hub.eval.explorer import Explorer

    start = time.perf_counter()
    explorer = Explorer.load(source)
    out = image_outputs(explorer, None, "synthetic #1")
    if "pca" not in out:
        raise RuntimeError(out["status"])
    return time.perf_counter() - start


def predict_seconds(source: str, out: Path, *extra: str) -> tuple[float, list[str]]:
    """Wall seconds of the ``ijepa-eval predict`` command (a fresh process: imports included)."""
    cmd = [sys.executable, "-m", "ijepa_hub.eval.cli", "predict", source, "--out", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start, cmd[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run folder (ijepa-train's default recipe)")
    parser.add_argument("--seed", type=int, default=0, help="mask seed of the picture")
    parser.add_argument("--num", type=int, default=3, help="synthetic images in the picture")
    parser.add_argument("--screenshot", action="store_true", help="also run the browser test to save the page's screenshot")
    parser.add_argument("--vitb", action="store_true", help="also time a random-init ViT-B/16 at 224 px")
    args = parser.parse_args()
    json_out = Path(tempfile.mkdtemp()) / "predict.json"
    seconds, cmd = predict_seconds(args.run, PICTURE, "--baseline", "--num", str(args.num), "--seed", str(args.seed),
                                   "--json", str(json_out))
    result = {
        "what": "ijepa-eval predict on the default run against random init (same architecture, the train seed's init); "
                "bank: each image's own patches",
        "picture": str(PICTURE.relative_to(ROOT)), "predict_command": cmd,
        **environment(torch.device("cpu")),
        "predict": json.loads(json_out.read_text()),
        "timings": {"default_run": {"predict_command_s": round(seconds, 1),
                                    "load_and_first_pca_s": round(first_picture_seconds(args.run), 2)}},
    }
    if args.vitb:
        import ijepa_hub
        from ijepa_hub.eval.probes import random_init_model

        folder = Path(tempfile.mkdtemp()) / "vitb16"
        config = ijepa_hub.registry.get_model_config("vit_base_patch16").replace(img_size=224)
        ijepa_hub.save_pretrained(random_init_model(config, with_predictor=True), folder)
        vitb_seconds, _ = predict_seconds(str(folder), folder / "p.png", "--num", "1")
        result["timings"]["vit_base_patch16_224_random_weights"] = {
            "predict_command_s": round(vitb_seconds, 1), "load_and_first_pca_s": round(first_picture_seconds(str(folder)), 2)}
    if args.screenshot:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "IJEPA_HUB_SCREENSHOT": str(SCREENSHOT)}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_demo_browser.py"],
                       check=True, cwd=ROOT, env=env)
        result["screenshot"] = str(SCREENSHOT.relative_to(ROOT))
    save_result(result, "explorer_cpu")


if __name__ == "__main__":
    main()
