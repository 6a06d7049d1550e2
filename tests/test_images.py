"""One rule for which files are images: feature extraction, training folders and eval splits agree."""
import os

import pytest
import torch
from PIL import Image

from ijepa_hub.data import ImageFolder
from ijepa_hub.data.images import IMAGE_EXTENSIONS, is_image_file, list_images
from ijepa_hub.eval import folder_splits
from ijepa_hub.features import extract_folder
from ijepa_hub.precision import autocast_context, resolve_precision

ACCEPTED = ["cat/a.JPG", "cat/b.webp", "cat/c.tif", "dog/d.Jpeg", "dog/deep/e.png", "dog/f.GIF", "dog/g.bmp",
            "dog/h.TIFF"]
REJECTED = ["cat/._a.JPG", "cat/.hidden.png", ".cache/x.png", "dog/.thumbs/y.jpg", "dog/notes.txt", "dog/doc.pdf",
            "dog/scan.ps", "dog/z.jpg.txt", "dog/noext"]


def _write(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (200, 30, 30)).save(path, format="PNG")  # content irrelevant to the rule


def test_every_lister_accepts_and_rejects_the_same_names(tmp_path):
    _write(tmp_path, ACCEPTED + REJECTED)
    expected = sorted(ACCEPTED)
    assert [os.path.relpath(p, tmp_path) for p in list_images(tmp_path)] == expected
    assert [p.relative_to(tmp_path).as_posix() for p, _ in ImageFolder(tmp_path).samples] == expected
    assert ImageFolder(tmp_path).classes == ["cat", "dog"]  # no class from a hidden folder
    splits = folder_splits(tmp_path, test_fraction=0.5, seed=0)
    assert sorted(os.path.relpath(p, tmp_path) for p in splits.train_images + splits.test_images) == expected
    assert all(is_image_file(n) for n in ACCEPTED)
    assert [n for n in REJECTED if is_image_file(n)] == [".cache/x.png", "dog/.thumbs/y.jpg"]  # hidden folders
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


def test_extract_folder_uses_the_same_rule(tmp_path):
    import ijepa_hub

    _write(tmp_path, ["a.PNG", "._a.PNG", "b.txt"])
    encoder = ijepa_hub.create_model("vit_tiny_patch16", img_size=32).target_encoder
    paths, feats = extract_folder(encoder, tmp_path)
    assert paths == ["a.PNG"] and feats.pooled.shape == (1, 192)


def test_a_folder_without_images_names_the_rule(tmp_path):
    _write(tmp_path, ["._a.jpg", "b.pdf"])
    for lister in (list_images, ImageFolder):
        with pytest.raises(FileNotFoundError, match=r"no images \(\.jpg, .*\) found under"):
            lister(tmp_path)
    with pytest.raises(FileNotFoundError, match="no image folder at"):
        ImageFolder(tmp_path / "absent")


def test_one_autocast_policy():
    assert resolve_precision("auto", "cuda") == torch.bfloat16 and resolve_precision("auto", "cpu") == torch.float32
    assert resolve_precision(torch.float16, "cpu") == torch.float16
    with autocast_context("cpu", "auto"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_context(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        resolve_precision("half", "cpu")


def test_the_trainer_uses_the_same_policy():
    from ijepa_hub import load_recipe
    from ijepa_hub.engine.step import autocast_factory

    recipe = load_recipe("default")
    recipe.train.precision = "bf16"
    with autocast_factory(recipe.train.precision, torch.device("cpu"))():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    recipe.train.precision = "auto"
    with autocast_factory(recipe.train.precision, torch.device("cpu"))():
        assert not torch.is_autocast_enabled("cpu")
