"""The scripts in examples/ run as a user would run them, on tiny models and the loopback Hub."""
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, TINY_TRAIN_ARGS
from test_eval_cli import write_colour_classes

import ijepa_hub
from ijepa_hub.eval.cli import main as eval_cli
from ijepa_hub.hub.load import read_config


def run_example(name, *args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / name), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    return ijepa_hub.save_pretrained(tiny_model, tmp_path_factory.mktemp("model"))


def test_extract_features_example(model_dir, tmp_path, images):
    from PIL import Image

    paths = []
    for i, pixels in enumerate(images[:3]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    out = run_example("extract_features.py", "--model", model_dir, *paths, "--out", tmp_path / "f.pt", cwd=tmp_path)
    assert "pooled (3, 192)" in out and "cosine similarity" in out
    saved = torch.load(tmp_path / "f.pt", weights_only=True)
    expected = ijepa_hub.from_pretrained(model_dir).extract_features([str(p) for p in paths]).pooled
    torch.testing.assert_close(saved["pooled"], expected)
    # the centred similarities: the features minus their mean over the given images, then cosine
    centred = torch.nn.functional.normalize(expected - expected.mean(0), dim=1)
    printed = [[float(v) for v in line.split()[1:]] for line in out.split("subtracting their mean")[1].splitlines()[1:4]]
    torch.testing.assert_close(torch.tensor(printed), centred @ centred.T, atol=0.006, rtol=0)


def test_linear_head_example(model_dir, tmp_path):
    write_colour_classes(tmp_path / "data", per_class=8)
    out = run_example("linear_head.py", "--model", model_dir, "--data", tmp_path / "data", "--layers", "1",
                      "--save-head", tmp_path / "head.pt", cwd=tmp_path)
    assert "linear probe top-1 100.0 %" in out
    head = torch.load(tmp_path / "head.pt", weights_only=True)
    assert head["classes"] == ["blue", "red"] and head["head"]["weight"].shape == (2, 192)


def test_train_on_folder_example_then_publish(tmp_path, hub_server):
    write_colour_classes(tmp_path / "data", per_class=8, size=48)
    # The tiny test settings, as ijepa-train overrides of the example's recipe.
    args = [*TINY_TRAIN_ARGS, "--train.max_steps", "2", "--model.img_size", "32", "--optim.epochs", "1"]
    out = run_example("train_on_folder.py", tmp_path / "data", "--out", tmp_path / "run", *args, cwd=tmp_path)
    assert "trained steps 0 -> 2" in out and (tmp_path / "run" / "model" / "model.safetensors").is_file()

    assert "ijepa-eval knn" in out and "ijepa-hub push" in out  # the trainer's next steps

    # --metrics takes what ijepa-eval --json writes (here a list: linear probes of two depths)
    assert eval_cli(["linear", str(tmp_path / "run" / "model"), "--data", str(tmp_path / "data"), "--layers", "1", "4",
                     "--cache-dir", "", "--json", str(tmp_path / "linear.json")]) == 0
    out = run_example("publish_to_hub.py", tmp_path / "run" / "model", "tester/example-push",
                      "--metrics", tmp_path / "linear.json", cwd=tmp_path)
    assert "pushed:" in out and "reloaded tester/example-push: vit_tiny_patch8 at 32 px (width 192" in out
    rows = json.loads((tmp_path / "linear.json").read_text())
    metrics = read_config("tester/example-push")["ijepa"]["metrics"]
    data = rows[0]["data"]
    assert metrics == {f"{data}: linear probe top-1 % (last {r['layers']} blocks)": round(r["top1"], 2) for r in rows}


def test_train_on_folder_names_a_bad_override(tmp_path):
    write_colour_classes(tmp_path / "data", per_class=2)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "train_on_folder.py"), str(tmp_path / "data"),
                           "--optim.learning_rate", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "optim.learning_rate" in proc.stderr and "Traceback" not in proc.stderr
