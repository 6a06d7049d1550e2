"""The run engine under both tasks: 0.1 recipes and checkpoints still load and resume, moved and renamed names
still import (with a warning), the fine-tune size rule lives in the library, and each step's values reach the
optimiser's groups as each task built them."""
from __future__ import annotations

import importlib
import sys

import pytest
import torch
import yaml

from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from ijepa_hub.engine.optim import set_hyperparams
from ijepa_hub.engine.schedules import Hyperparams, WarmupCosineSchedules
from ijepa_hub.finetune import finetune, load_finetune_recipe
from ijepa_hub.finetune.cli import parse_args as finetune_args
from ijepa_hub.finetune.loop import build_finetune_optimizer
from ijepa_hub.finetune.model import build_classifier
from ijepa_hub.recipe import Recipe, load_recipe, recipe_from_dict

TINY_FT = [
    "vit_tiny_patch4", "--model.depth", "1", "--model.drop_path_rate", "0.1", "--data.num_train", "96",
    "--data.num_val", "32", "--data.batch_size_per_device", "8", "--optim.batch_size", "16", "--optim.epochs", "2",
    "--data.mixup", "0.8", "--optim.layer_decay", "0.75", "--train.num_workers", "0", "--train.log_every", "1",
    "--train.checkpoint_every", "4", "--train.threads", "1",
]

# train and optim sections as 0.1 wrote them in recipe.yaml (its key order, before the engine's shared sections)
OLD_TRAIN_KEYS = ["seed", "max_steps", "checkpoint_every", "log_every", "monitor_every", "monitor_batch", "eval_every",
                  "num_workers", "threads", "device", "precision", "compile", "grad_checkpointing", "fsdp",
                  "tensorboard"]
OLD_OPTIM_KEYS = ["batch_size", "epochs", "warmup_epochs", "ipe_scale", "start_lr", "lr", "final_lr", "weight_decay",
                  "final_weight_decay", "betas", "eps", "ema", "clip_grad", "loss"]


def test_a_recipe_yaml_in_the_0_1_key_order_loads_to_the_same_recipe(tmp_path):
    recipe = load_recipe("default")
    saved = recipe.to_dict()
    assert set(saved["train"]) == set(OLD_TRAIN_KEYS) and set(saved["optim"]) == set(OLD_OPTIM_KEYS)
    old = {**saved, "train": {k: saved["train"][k] for k in OLD_TRAIN_KEYS},
           "optim": {k: saved["optim"][k] for k in OLD_OPTIM_KEYS}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert load_recipe(tmp_path / "recipe.yaml") == recipe
    assert recipe_from_dict(old) == recipe
    assert list(Recipe().to_dict()["train"])[:8] == ["seed", "max_steps", "checkpoint_every", "log_every",
                                                      "num_workers", "threads", "device", "precision"]


def test_a_0_1_finetune_checkpoint_resumes_bit_equal(tmp_path):
    """0.1 kept the validations under "monitor" and wrote the recipe in its own key order; such a checkpoint
    resumed now continues the run exactly."""
    recipe, _ = finetune_args(TINY_FT)
    straight = finetune(recipe, out_dir=tmp_path / "straight", progress=False, export=False)
    assert straight.step == 12 and len(straight.evals) == 2

    half, _ = finetune_args([*TINY_FT, "--train.max_steps", "4"])
    finetune(half, out_dir=tmp_path / "old", progress=False, export=False)
    path = tmp_path / "old" / CHECKPOINT_NAME
    state = load_checkpoint(path)
    state["monitor"] = state.pop("evals")  # as 0.1 saved it
    state["recipe"] = {**state["recipe"], "train": dict(reversed(state["recipe"]["train"].items()))}
    save_checkpoint(path, state)

    resumed = finetune(recipe, out_dir=tmp_path / "old", resume="auto", progress=False, export=False)
    a, b = load_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME), load_checkpoint(path)
    assert resumed.start_step == 4 and a["step"] == b["step"] == 12
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["evals"]["history"] == straight.evals and "monitor" not in b
    # the validations carried over from the old key: the cut run's own at its last step (4), then the same as straight
    assert [e["step"] for e in b["evals"]["history"]] == [4, 6, 12] and b["evals"]["history"][1:] == straight.evals


def test_moved_engine_modules_and_renamed_names_still_import_with_a_warning():
    for moved in ("checkpoint", "resume", "faults", "schedules"):
        sys.modules.pop(f"ijepa_hub.train.{moved}", None)
        with pytest.warns(FutureWarning, match=f"ijepa_hub.engine.{moved}"):
            module = importlib.import_module(f"ijepa_hub.train.{moved}")
        assert module is importlib.import_module(f"ijepa_hub.engine.{moved}")
    import ijepa_hub.finetune as ft

    with pytest.warns(FutureWarning, match="WarmupCosineSchedules"):
        assert ft.FinetuneSchedules is WarmupCosineSchedules
    with pytest.raises(AttributeError):
        ft.NoSuchName  # noqa: B018


def test_a_pretrained_source_brings_its_own_sizes_in_the_library_too():
    recipe = load_finetune_recipe()
    assert (recipe.model.img_size, recipe.model.depth) == (32, 4)  # the demo's random-init sizes
    recipe.set_source("ijepa_vith14_1k")
    assert (recipe.model.source, recipe.model.img_size, recipe.model.depth) == ("ijepa_vith14_1k", None, None)
    recipe.set_source("ijepa_vith14_1k", img_size=112)
    assert recipe.model.img_size == 112 and recipe.model.depth is None
    recipe = load_finetune_recipe()
    recipe.set_source("vit_small_patch4", depth=2)
    assert (recipe.model.img_size, recipe.model.depth) == (32, 2)
    cli, _ = finetune_args(["ijepa_vith14_1k", "--model.img_size", "96"])
    assert (cli.model.img_size, cli.model.depth) == (96, None)


def test_step_values_keep_each_groups_own_weight_decay_and_lr_scale():
    recipe = load_finetune_recipe()
    recipe.optim.layer_decay, recipe.optim.weight_decay = 0.5, 0.05
    torch.manual_seed(0)
    model = build_classifier(recipe.model, ["a", "b"], crop_pct=1.0)
    optimizer = build_finetune_optimizer(model, recipe.optim)
    before = [g["weight_decay"] for g in optimizer.param_groups]
    assert 0.0 in before and 0.05 in before
    set_hyperparams(optimizer, Hyperparams(lr=2.0, weight_decay=0.3))
    assert [g["weight_decay"] for g in optimizer.param_groups] == before  # fine-tuning decays at a constant rate
    assert sorted({g["lr"] for g in optimizer.param_groups}) == sorted({2.0 * g["lr_scale"] for g in optimizer.param_groups})
    assert max(g["lr"] for g in optimizer.param_groups) == 2.0 and min(g["lr"] for g in optimizer.param_groups) < 0.2


def test_names_that_moved_to_the_engine_warn_and_are_the_engines():
    import ijepa_hub.engine.cli as engine_cli
    import ijepa_hub.engine.metrics as metrics
    import ijepa_hub.train.cli as train_cli
    import ijepa_hub.train.monitor as monitor

    for name in ("MetricsWriter", "progress_bar", "StepLogger"):
        with pytest.warns(FutureWarning, match=f"ijepa_hub.engine.metrics.{name}"):
            assert getattr(monitor, name) is getattr(metrics, name)
    for name in ("add_run_args", "setup_rank_logging"):
        with pytest.warns(FutureWarning, match=f"ijepa_hub.engine.cli.{name}"):
            assert getattr(train_cli, name) is getattr(engine_cli, name)
