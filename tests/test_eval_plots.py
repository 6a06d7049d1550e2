import dataclasses

import pytest
import torch
from PIL import Image

import ijepa_hub
from ijepa_hub.masks import MaskCollator

plots = pytest.importorskip("ijepa_hub.eval.plots")
pytest.importorskip("matplotlib")


def check_png(path, min_w=300, min_h=200):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= min_w and im.height >= min_h
        # not a blank canvas: several distinct colours
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or range(1 << 20)) > 50


def test_mask_picture_renders_both_modes(tmp_path):
    mask = ijepa_hub.load_recipe("in1k_vith14").mask
    collators = {m: MaskCollator(dataclasses.replace(mask, mode=m), img_size=224, patch_size=14) for m in ("legacy", "corrected")}
    images = (torch.rand(3, 3, 224, 224) * 255).to(torch.uint8)
    check_png(plots.plot_masks(images, collators, tmp_path / "masks.png"))


def test_pca_is_scaled_to_unit_range_and_renders(tmp_path):
    tokens = torch.randn(2, 16, 8)
    tokens[:, :8, 0] += 10  # one dominant direction: the first channel separates the two halves
    rgb = plots.pca_rgb(tokens, remove_position=False)
    assert rgb.shape == (2, 16, 3) and rgb.min() >= 0 and rgb.max() <= 1
    first, second = rgb[:, :8, 0].flatten(), rgb[:, 8:, 0].flatten()
    low, high = (first, second) if first.mean() < second.mean() else (second, first)  # the sign is arbitrary
    assert low.max() < high.min()  # the first component alone separates the two halves
    check_png(plots.plot_pca(torch.randn(2, 3, 32, 32), tokens, tmp_path / "pca.png"), min_w=150)


def test_pca_removes_what_all_images_share_at_a_position():
    torch.manual_seed(0)
    tokens = 0.1 * torch.randn(4, 16, 8)
    tokens[:, :, 0] += 10 * torch.linspace(-1, 1, 16)  # a top-to-bottom gradient, the same in every image
    tokens[:2, :, 1] += 3  # content: two images differ from the other two
    rgb = plots.pca_rgb(tokens)[..., 0]  # the first component now follows content, not position
    low, high = sorted([rgb[:2].flatten(), rgb[2:].flatten()], key=lambda t: t.mean())
    assert low.max() < high.min()
    assert plots.pca_variance_ratio(tokens, 1, remove_position=False)[0] > 0.9  # without: position dominates


def test_mask_picture_is_the_same_on_every_run(tmp_path):
    recipe = ijepa_hub.load_recipe("default")
    config = recipe.model_config()
    collators = {mode: MaskCollator(dataclasses.replace(recipe.mask, mode=mode), img_size=config.img_size,
                                    patch_size=config.patch_size, seed=0) for mode in ("legacy", "corrected")}
    images = torch.rand(3, 3, config.img_size, config.img_size)
    first = plots.plot_masks(images, collators, tmp_path / "a.png").read_bytes()
    torch.rand(100)  # the global RNG moved on: the legacy sampler draws from it, the picture seeds it
    assert plots.plot_masks(images, collators, tmp_path / "b.png").read_bytes() == first


def test_training_curves_render_and_bad_lines_are_named(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(f'{{"step": {i}, "loss": {1 / (i + 1)}, "lr": 0.001, "rankme": {50 - i}}}' for i in range(30)))
    check_png(plots.plot_training_curves(metrics, tmp_path / "curves.png"))
    metrics.write_text('{"step": 0, "loss": 1}\nnot json\n')
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        plots.read_metrics(metrics)
