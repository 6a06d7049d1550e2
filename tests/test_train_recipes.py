"""Recipes: every shipped YAML validates through the jsonargparse schema; released numbers are intact."""
from __future__ import annotations

import pytest

import ijepa_hub
from ijepa_hub.recipe import RecipeError, recipe_from_dict
from ijepa_hub.registry import VARIANTS


def test_every_shipped_recipe_builds_a_model_config():
    names = ijepa_hub.list_recipes()
    assert {"default", "modest_vit_tiny", "modest_vit_small", "modest_vit_base"} <= set(names)
    assert {v.recipe for v in VARIANTS.values()} <= set(names)
    for name in names:
        recipe = ijepa_hub.load_recipe(name)
        assert recipe.name == name
        config = recipe.model_config()
        assert config.img_size % config.patch_size == 0
        assert recipe.optim.batch_size % recipe.data.batch_size_per_device == 0


def test_default_recipe_is_a_small_cpu_run():
    r = ijepa_hub.load_recipe("default")
    config = r.model_config()
    assert (config.arch, config.img_size, config.patch_size, r.data.dataset, r.data.path) == ("tiny", 64, 8, "synthetic", None)
    assert r.data.num_samples // r.optim.batch_size * r.optim.epochs == 300  # optimiser steps
    assert r.mask.mode == "corrected" and r.optim.warmup_epochs > 0


def test_recipe_errors_name_the_key():
    with pytest.raises(RecipeError, match="optim.lr"):
        recipe_from_dict({"optim": {"lr": "fast"}})
    with pytest.raises(RecipeError, match="lrr"):
        recipe_from_dict({"optim": {"lrr": 1.0}})
    with pytest.raises(RecipeError, match="mask.target_scale"):
        recipe_from_dict({"mask": {"target_scale": [0.1, 0.2, 0.3]}})
    with pytest.raises(RecipeError, match="train.precision"):
        recipe_from_dict({"train": {"precision": "fp8"}})


def test_recipe_file_round_trips(tmp_path):
    import yaml

    recipe = ijepa_hub.load_recipe("in22k_vitg16")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(recipe.to_dict()))
    assert ijepa_hub.load_recipe(path) == recipe
