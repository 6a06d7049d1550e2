"""``ijepa-finetune``: it learns, it resumes exactly, it refuses bad data, its recipes parse."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonargparse
import pytest
import torch
from conftest import sigkill_after_step

from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ijepa_hub.errors import RecipeError
from ijepa_hub.finetune import finetune, list_finetune_recipes, load_finetune_recipe
from ijepa_hub.finetune.cli import main, parse_args
from ijepa_hub.finetune.loop import build_finetune_optimizer
from ijepa_hub.finetune.model import build_classifier

ROOT = Path(__file__).resolve().parents[1]

# A depth-1 ViT-Tiny with 4 px patches at 32 px (64 tokens), random init, 512 synthetic shape images without
# crops (a crop's aspect change turns circles into ellipses): four epochs of 16 steps; seconds on one core.
TINY_FT = [
    "vit_tiny_patch4", "--model.depth", "1", "--data.num_train", "512", "--data.num_val", "200",
    "--data.crop_scale", "[1.0,1.0]", "--data.batch_size_per_device", "32", "--optim.batch_size", "32",
    "--optim.epochs", "4", "--optim.lr", "2e-3", "--train.num_workers", "0", "--train.log_every", "1",
]
# Smaller still, every random augmentation on (RandAugment, erasing, Mixup / CutMix, drop path): for resume.
TINY_AUGMENTED = [
    "vit_tiny_patch4", "--model.depth", "1", "--model.drop_path_rate", "0.1", "--data.num_train", "96",
    "--data.num_val", "32", "--data.batch_size_per_device", "8", "--optim.batch_size", "16", "--optim.epochs", "2",
    "--data.auto_augment", "rand-m9-mstd0.5-inc1", "--data.reprob", "0.25", "--data.mixup", "0.8",
    "--data.cutmix", "1.0", "--optim.layer_decay", "0.75", "--train.num_workers", "0", "--train.log_every", "1",
    "--train.checkpoint_every", "2",
]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def test_full_finetune_ends_above_the_linear_probe_of_its_start(tmp_path):
    """--mode full against --mode linear (the encoder frozen: a linear probe) from the same random init, same data,
    steps and augmentation; the probe at its best learning rate of 1e-2 / 3e-2 / 1e-1 on this budget."""
    full = finetune(parse_args(TINY_FT)[0], out_dir=tmp_path / "full", progress=False, export=False)
    assert full.step == 64 and len(full.evals) == 4 and full.losses[-1] < full.losses[0]
    probe = finetune(parse_args([*TINY_FT, "--model.mode", "linear", "--optim.lr", "3e-2"])[0],
                     out_dir=tmp_path / "linear", progress=False, export=False)
    assert full.top1 >= 40.0 and full.top1 >= probe.top1 + 8, (full.evals, probe.evals)


@pytest.mark.parametrize("mode", ["full", "attentive"])
def test_sigkill_then_resume_auto_is_bit_equal_to_an_uninterrupted_run(tmp_path, mode):
    args = [*TINY_AUGMENTED, "--model.mode", mode]
    straight = tmp_path / "straight"
    recipe, _ = parse_args(args)
    finetune(recipe, out_dir=straight, progress=False, export=False)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ijepa_hub.finetune", "--no-progress", *args, "--out", str(killed)]
    sigkill_after_step(cmd, killed, 5, _env())  # past the checkpoint of step 4
    assert 4 <= load_checkpoint(killed / CHECKPOINT_NAME)["step"] < 12
    assert main([*args, "--out", str(killed), "--resume", "auto", "--no-progress"]) == 0

    a, b = load_checkpoint(straight / CHECKPOINT_NAME), load_checkpoint(killed / CHECKPOINT_NAME)
    assert a["step"] == b["step"] == 12
    assert a["model"].keys() == b["model"].keys()
    assert any(k.startswith("attn_pool.") for k in a["model"]) == (mode == "attentive")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["evals"] == b["evals"]  # the validation top-1 of every epoch
    assert (straight / "metrics.jsonl").read_text() == (killed / "metrics.jsonl").read_text()
    assert (killed / "model" / "config.json").is_file()


def test_attentive_mode_trains_only_the_attention_pool_and_the_head(tmp_path):
    """The encoder is frozen bit for bit (no drop path either); timm's attention pool and the head learn, at the
    head's learning rate whatever the layer decay, the pool's query without weight decay."""
    args = [*TINY_AUGMENTED, "--model.mode", "attentive", "--optim.batch_size", "8", "--train.max_steps", "3"]
    recipe, _ = parse_args(args)
    torch.manual_seed(recipe.train.seed)  # as finetune() does before building the classifier
    start = build_classifier(recipe.model, ["circle", "square", "triangle", "cross"], crop_pct=1.0)
    assert start.global_pool == "map" and all(isinstance(b.drop_path1, torch.nn.Identity) for b in start.blocks)
    trained = {n for n, p in start.named_parameters() if p.requires_grad}
    assert trained == {n for n in start.state_dict() if n.startswith(("attn_pool.", "head."))}
    groups = build_finetune_optimizer(start, recipe.optim).param_groups
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in start.parameters() if p.requires_grad}
    assert all(g["lr_scale"] == 1.0 for g in groups)  # layer_decay 0.75 scales the frozen blocks only
    assert any(p is start.attn_pool.latent for g in groups if g["weight_decay"] == 0 for p in g["params"])

    assert main([*args, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    end = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["model"]
    for name, before in start.state_dict().items():
        assert torch.equal(end[name], before) == (name not in trained), name
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["model_args"]["global_pool"] == config["global_pool"] == "map"
    assert config["ijepa"]["recipe"]["model"]["mode"] == "attentive"


@pytest.mark.parametrize("first, then, message", [
    ("linear", "attentive", "holds a linear-mode run, with no attentive pooler (attn_pool.* weights) to resume with "
                            "--model.mode attentive. Fix: resume with --model.mode linear"),
    ("attentive", "full", "holds an attentive-mode run (attn_pool.* weights), not a full-mode one. Fix: resume with "
                          "--model.mode attentive"),
])
def test_resuming_in_a_mode_of_another_pooling_is_one_error_line(tmp_path, capsys, first, then, message):
    run = tmp_path / "run"
    args = [*TINY_AUGMENTED, "--train.max_steps", "1", "--out", str(run), "--no-progress"]
    assert main([*args, "--model.mode", first]) == 0
    written = (run / CHECKPOINT_NAME).read_bytes()
    capsys.readouterr()
    assert main([*args, "--model.mode", then, "--resume", "auto"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"ijepa-finetune: error: {run / CHECKPOINT_NAME} {message}, or start a new {then}-mode run " \
                  "with another --out"
    assert (run / CHECKPOINT_NAME).read_bytes() == written  # the refused run touched nothing


def _folder(root: Path, classes: dict[str, int], splits=("train", "val")) -> Path:
    from PIL import Image

    for split in splits:
        for name, count in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", (40, 40), (40 * i % 255, 9, 9)).save(root / split / name / f"{i}.png")
    return root


@pytest.mark.parametrize("classes, message", [
    ({"cat": 3}, "at least 2 classes, found 1 (cat)"),
    ({"cat": 3, "dog": 0}, "the class folder 'dog' holds no images"),
])
def test_bad_datasets_are_one_clear_error_line(tmp_path, capsys, classes, message):
    data = _folder(tmp_path / "data", classes)
    assert main(["vit_tiny_patch4", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ijepa-finetune: error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_folder_data_trains_with_the_folder_classes(tmp_path):
    data = _folder(tmp_path / "data", {"cat": 4, "dog": 4})
    recipe, _ = parse_args(["vit_tiny_patch4", "--model.depth", "1", "--data", str(data),
                            "--data.batch_size_per_device", "4", "--optim.batch_size", "8", "--optim.epochs", "1",
                            "--train.num_workers", "0"])
    result = finetune(recipe, out_dir=tmp_path / "run", progress=False)
    config = json.loads((result.export_dir / "config.json").read_text())
    assert config["num_classes"] == 2 and config["label_names"] == ["cat", "dog"] and len(result.evals) == 1


def test_a_pretrained_source_gives_its_encoder_weights_at_any_size(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "pretrained")
    for encoder, net in (("target", tiny_model.target_encoder), ("context", tiny_model.context_encoder)):
        recipe, _ = parse_args([str(folder), "--model.encoder", encoder, "--model.img_size", "48"])
        assert recipe.model.depth is None
        clf = build_classifier(recipe.model, ["a", "b"], crop_pct=1.0)
        assert clf.config.img_size == 48 and clf.pos_embed.shape[1] == 9  # 3x3 grid of 16 px patches
        mine, theirs = clf.state_dict(), net.state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs if k != "pos_embed")
        assert clf(torch.zeros(2, 3, 48, 48)).shape == (2, 2)
    with pytest.raises(RecipeError, match="model.depth applies to a random initialisation only"):
        build_classifier(parse_args([str(folder), "--model.depth", "2"])[0].model, ["a", "b"], crop_pct=1.0)


def test_recipes_parse_with_dotted_overrides_and_errors_name_the_key(capsys):
    assert list_finetune_recipes() == ["finetune_default", "finetune_vith14"]
    vith = load_finetune_recipe("finetune_vith14")
    assert (vith.model.source, vith.optim.lr, vith.optim.layer_decay, vith.model.drop_path_rate) == (
        "ijepa_vith14_1k", 4e-3, 0.75, 0.3)
    assert (vith.data.mixup, vith.data.cutmix, vith.optim.label_smoothing, vith.optim.epochs) == (0.8, 1.0, 0.1, 50)
    recipe, args = parse_args(["runs/x/model", "--recipe", "finetune_vith14", "--optim.lr", "1e-3", "--data", "/d"])
    assert (recipe.model.source, recipe.optim.lr, recipe.data.path, recipe.name) == ("runs/x/model", 1e-3, "/d",
                                                                                       "finetune_vith14")
    assert (recipe.model.img_size, recipe.model.depth) == (None, None)  # the pretrained source's own
    default, _ = parse_args(["runs/x/model", "--model.img_size", "48"])  # pretrained: its sizes unless given
    assert (default.model.img_size, default.model.depth) == (48, None)
    assert parse_args([])[0].model.depth == 4 and parse_args(["vit_tiny_patch8"])[0].model.depth == 4
    assert parse_args(["--model.mode", "attentive"])[0].model.mode == "attentive"
    with pytest.raises(jsonargparse.ArgumentError, match="model.mode"):
        parse_args(["--model.mode", "probe"])
    assert main(["--optim.learning_rate", "1"]) == 2
    assert "optim.learning_rate" in capsys.readouterr().err
    import ijepa_hub

    assert not any(name.startswith("finetune") for name in ijepa_hub.list_recipes())  # not trainer recipes


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")
def test_two_process_gloo_run_matches_one_process_with_accumulation(tmp_path):
    """Global batch 16 = micro-batches of 8: 2 processes x 1 (DDP, gloo) or 1 process x 2 (accumulation); the
    augmentation and Mixup are seeded by sample and micro-batch, so both see the same data."""
    args = [*TINY_AUGMENTED, "--model.drop_path_rate", "0.0"]  # drop path draws from each rank's own RNG
    env = _env()
    for nproc, out in ((1, "one"), (2, "two")):
        launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
                                       if nproc > 1 else [])
        done = subprocess.run([*launcher, "-m", "ijepa_hub.finetune", *args, "--no-progress", "--out",
                               str(tmp_path / out)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{nproc} process(es) x {3 - nproc} micro-batch(es) x 8" in done.stderr

    def records(out: str) -> list[dict]:
        return [json.loads(x) for x in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]

    a, b = records("one"), records("two")
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) > 12
    assert max(abs(x.get("loss", 0) - y.get("loss", 0)) for x, y in zip(a, b)) < 1e-4
    assert [r["val_top1"] for r in a if "val_top1" in r] == [r["val_top1"] for r in b if "val_top1" in r]
    wa, wb = load_checkpoint(tmp_path / "one" / CHECKPOINT_NAME)["model"], load_checkpoint(tmp_path / "two" / CHECKPOINT_NAME)["model"]
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5)
