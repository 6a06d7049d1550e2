"""Issue 26, items 3-7: hostile settings are refused in one line naming the key, before anything is built."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from ijepa_hub.bounds import Bound, Pair, check_value
from ijepa_hub.cli_common import default_device
from ijepa_hub.data.preprocess import preprocess
from ijepa_hub.errors import DataError, MaskError, RecipeError
from ijepa_hub.eval.attentive import attentive_probe
from ijepa_hub.eval.checks import check_heads, check_probe_size
from ijepa_hub.eval.data import folder_splits
from ijepa_hub.eval.fit import fit_probe
from ijepa_hub.eval.linear import linear_probe
from ijepa_hub.eval.segdata import folder_segmentation_splits
from ijepa_hub.finetune.recipe import FinetuneRecipe
from ijepa_hub.masks import MaskCollator
from ijepa_hub.models.classifier import Classifier
from ijepa_hub.models.extract import block_indices, extract_features
from ijepa_hub.recipe import MaskSection, load_recipe, recipe_from_dict

# ---------------------------------------------------------------------------------------------- item 3: masks

ZERO_CONTEXT = dict(target_scale=(0.85, 0.85), num_targets=4, context_scale=(1.0, 1.0))


def test_the_zero_context_repro_is_refused_by_validate():
    for img in (96, 224):
        with pytest.raises(MaskError, match="context"):
            MaskCollator(MaskSection(**ZERO_CONTEXT), img_size=img, patch_size=16).validate()


def test_the_sampler_raises_rather_than_returning_a_short_context_unvalidated():
    collator = MaskCollator(MaskSection(target_scale=(1.0, 1.0), context_scale=(0.5, 0.5)), img_size=64, patch_size=16)
    with pytest.raises(MaskError, match="context patches after"):
        collator.sample(4, 0)


SETTINGS = [
    dict(), dict(num_targets=8), dict(target_scale=(0.3, 0.5), num_targets=6), dict(context_scale=(0.4, 0.6)),
    dict(target_scale=(0.5, 0.6), num_targets=4, context_scale=(0.85, 1.0)), dict(min_keep=40), dict(min_keep=0),
    dict(target_scale=(0.2, 0.4), context_scale=(0.3, 0.5), num_targets=3), ZERO_CONTEXT,
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("img", [64, 128])
def test_settings_that_validate_always_give_more_than_min_keep_context(settings, img):
    collator = MaskCollator(MaskSection(**settings), img_size=img, patch_size=16)
    try:
        collator.validate()
    except MaskError:
        return  # refused up front: nothing to draw
    for step in range(25):
        context, _ = collator.sample(16, step)
        assert context[0].shape[1] > collator.config.min_keep


# ---------------------------------------------------------------------------------------------- item 4: bounds

TRAIN_BAD = [
    ("model.depth", 100000), ("model.img_size", 10**6), ("model.num_heads", 0), ("model.embed_dim", 60000),
    ("mask.num_targets", 1000000), ("mask.num_targets", 0), ("data.num_samples", 10**12), ("data.stream_size", 10**16),
    ("data.source_size", 10**6), ("data.batch_size_per_device", 0), ("data.crop_scale", [0.9, 0.1]),
    ("train.seed", -1), ("train.seed", 2**70), ("train.monitor_batch", 0), ("train.checkpoint_every", 0),
    ("optim.lr", -1.0), ("optim.lr", float("nan")), ("optim.batch_size", -8), ("optim.warmup_epochs", -1.0),
    ("optim.ema", [1.0, 0.9]), ("eval.k", 0),
]


def _nested(key, value):
    section, name = key.split(".")
    return {section: {name: value}}


@pytest.mark.parametrize(("key", "value"), TRAIN_BAD)
def test_training_recipe_values_out_of_range_are_refused_by_key(key, value):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(_nested(key, value))
    message = str(err.value)
    assert key.split(".")[1] in message and "\n" not in message


FINETUNE_BAD = [
    ("data.batch_size_per_device", 0), ("data.auto_augment", "bogus"), ("optim.label_smoothing", 1.5),
    ("optim.lr", -1.0), ("model.depth", 0), ("data.reprob", 2.0), ("data.crop_scale", [1.0, 0.08]),
    ("optim.warmup_epochs", -1.0), ("model.img_size", 10**6), ("data.num_train", 10**12), ("data.val_batch_size", 0),
]


@pytest.mark.parametrize(("key", "value"), FINETUNE_BAD)
def test_finetune_recipe_values_out_of_range_are_refused_by_key(key, value):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(_nested(key, value), schema=FinetuneRecipe)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_every_shipped_recipe_is_within_bounds():
    from ijepa_hub.finetune.recipe import list_finetune_recipes, load_finetune_recipe
    from ijepa_hub.recipe import list_recipes

    for name in list_recipes():
        load_recipe(name).validate()
    for name in list_finetune_recipes():
        load_finetune_recipe(name).validate()


BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("schema", [None, FinetuneRecipe])
def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path, schema):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 600
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="alias bomb"):
        load_recipe(path, schema=schema)
    assert time.perf_counter() - start < 5


def test_a_yaml_alias_cycle_and_a_bomb_in_a_section_file_are_refused(tmp_path):
    from ijepa_hub.train.cli import parse_args

    (tmp_path / "cycle.yaml").write_text("a: &a [*a]\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "cycle.yaml")
    (tmp_path / "bomb.yaml").write_text(BOMB)
    with pytest.raises(RecipeError, match="alias bomb"):
        parse_args(["--optim", str(tmp_path / "bomb.yaml")])


@pytest.mark.parametrize(("bound", "good", "bad"), [
    (Bound(1, 10, integer=True), [1, 10], [0, 11, 2.5, True, "3", float("inf")]),
    (Bound(0.0, 1.0, lo_open=True), [1e-9, 1.0], [0.0, 1.5, float("nan")]),
    (Pair(0.0, 1.0), [[0.1, 0.2], (0.5, 0.5)], [[0.2, 0.1], [0.1], [0.1, 2.0]]),
])
def test_bounds(bound, good, bad):
    for value in good:
        check_value("k", value, bound)
    for value in bad:
        with pytest.raises(RecipeError, match="k="):
            check_value("k", value, bound)


# ---------------------------------------------------------------------------------------------- item 5: splits, cache


def _image(path, colour, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, format="PNG")


def _classes(root, classes=("a", "b"), n=2):
    for c in classes:
        for i in range(n):
            _image(root / c / f"{i}.png", (40 * i, 100 if c == "a" else 200, 0))


@pytest.mark.parametrize("held_out", ["val", "valid", "validation", "test"])
def test_every_usual_held_out_name_is_a_split_not_a_class(tmp_path, held_out):
    _classes(tmp_path / "train")
    _classes(tmp_path / held_out)
    splits = folder_splits(tmp_path)
    assert splits.classes == ["a", "b"] and len(splits.test_images) == 4


def test_a_class_folder_named_train_is_refused(tmp_path):
    _classes(tmp_path, classes=("train", "other"))
    with pytest.raises(DataError, match="split names"):
        folder_splits(tmp_path)


def test_segmentation_folders_accept_validation(tmp_path):
    for split in ("train", "validation"):
        for i in range(2):
            _image(tmp_path / split / "images" / f"{i}.png", (i * 50, 0, 0))
            (tmp_path / split / "masks").mkdir(exist_ok=True)
            Image.fromarray(np.full((8, 8), i, dtype=np.uint8)).save(tmp_path / split / "masks" / f"{i}.png")
    assert len(folder_segmentation_splits(tmp_path).test_images) == 2


def test_the_feature_cache_key_follows_content_not_times(tmp_path):
    _classes(tmp_path / "train")
    _classes(tmp_path / "val")
    before = folder_splits(tmp_path).fingerprint
    target = tmp_path / "val" / "a" / "0.png"
    stat = target.stat()
    _image(target, (250, 3, 7))  # same size (8x8 PNG of one colour), new content
    target.write_bytes(target.read_bytes()[: stat.st_size].ljust(stat.st_size, b"\0"))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size and target.stat().st_mtime_ns == stat.st_mtime_ns
    assert folder_splits(tmp_path).fingerprint != before


# ---------------------------------------------------------------------------------------------- item 6: degenerate evals

ONE_CLASS = torch.zeros(8, dtype=torch.long)


def test_one_class_probes_are_errors():
    x = torch.randn(8, 16)
    with pytest.raises(DataError, match="1 class"):
        linear_probe(x, ONE_CLASS, x, ONE_CLASS)
    with pytest.raises(DataError, match="1 class"):
        attentive_probe(torch.randn(8, 4, 16), ONE_CLASS, torch.randn(8, 4, 16), ONE_CLASS, num_heads=2, epochs=1)


def test_zero_epochs_heads_and_sizes_are_errors():
    with pytest.raises(ValueError, match="epochs=0"):
        fit_probe(torch.nn.Linear(2, 2), lambda idx: torch.zeros(()), 4, epochs=0, batch_size=2, lr=1e-3, weight_decay=0.0)
    with pytest.raises(ValueError, match="num_heads=0"):
        check_heads(0, 192, what="attentive probe")
    with pytest.raises(ValueError, match="--img-size 7"):
        check_probe_size(7, 16)


# ---------------------------------------------------------------------------------------------- item 7: one line each


def test_bad_library_arguments_are_one_line_errors(tiny_model):
    clf = Classifier(tiny_model.config, ["cat", "dog"]).eval()
    image = torch.rand(3, 32, 32)
    for kwargs in (dict(top_k=-1), dict(batch_size=0), dict(batch_size=-1)):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            clf.classify([image], **kwargs)
    with pytest.raises(ValueError, match="crop_pct"):
        Classifier(tiny_model.config, ["cat", "dog"], crop_pct=0.0)
    with pytest.raises(ValueError, match="integers"):
        block_indices(12, [0.5])
    with pytest.raises(ValueError, match="no images"):
        extract_features(tiny_model, [])
    for crop in (0.0, -1.0, 1.5):
        with pytest.raises(ValueError, match="crop_pct"):
            preprocess(image, 32, crop_pct=crop)
    with pytest.raises(ValueError, match="empty"):
        preprocess(np.zeros((0, 0, 3), dtype=np.uint8), 32)
    assert preprocess(torch.rand(3, 20, 20, dtype=torch.bfloat16), 16).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="not a device"):
        default_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            default_device("cuda")
