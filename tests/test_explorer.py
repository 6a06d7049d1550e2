"""The demo page's logic without a browser: reading uploads, cached features, similarity, nearest images, errors."""
import builtins

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ijepa_hub
from ijepa_hub.eval import demo_app
from ijepa_hub.eval.explorer import DISPLAY_SIZE, Explorer
from ijepa_hub.hub.cli import main as hub_main

pytest.importorskip("matplotlib")


@pytest.fixture
def explorer(tiny_ijepa, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
        Image.new("RGB", (40, 40), colour).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return Explorer(tiny_ijepa.eval(), name="tiny", license="apache-2.0", folder=folder)


def test_features_are_cached_by_pixels_and_match_the_encoder(explorer):
    a = explorer.read("synthetic #1")
    again = explorer.read("synthetic #1")
    assert a.key == again.key and a.key != explorer.read("synthetic #2").key
    tokens = explorer.tokens(a.key)
    assert explorer.tokens(a.key) is tokens  # cached
    with torch.no_grad():
        want = explorer.model.target_encoder(ijepa_hub.eval.predictor_view.to_model_input(a.pixels[None]))[0]
    torch.testing.assert_close(tokens, want)
    assert explorer.pca(a.key).shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)


def test_similarity_of_a_patch_to_itself_is_the_highest(explorer):
    key = explorer.read("synthetic #3").key
    assert explorer.patch_at(DISPLAY_SIZE - 1, 0) == (0, 3) and explorer.patch_at(0, DISPLAY_SIZE / 2) == (2, 0)
    same, other = explorer.similarity(key, 2, 1, key)
    assert same.shape == other.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3) and same.dtype == np.uint8
    tokens = explorer.tokens(key)
    sims = F.cosine_similarity(tokens, tokens[2 * 4 + 1][None], dim=1)
    assert int(sims.argmax()) == 9  # the clicked patch is its own best match
    picture = explorer.predictor_picture(key, 2, 1)
    assert picture.ndim == 3 and picture.shape[2] == 3


def test_nearest_images_rank_the_same_picture_first_and_skip_broken_files(explorer):
    green = explorer.read(str(explorer.folder_paths[1])).key
    nearest = explorer.nearest_images(green, k=3)
    assert nearest[0][0].endswith("1.png") and nearest[0][1] == "cosine 1.000"
    assert all(not path.endswith("broken.png") for path, _ in nearest)


def test_page_actions_report_bad_uploads_and_describe_greyscale_and_animation(explorer, tmp_path):
    out = demo_app.image_outputs(explorer, str(explorer.folder_paths[-1]), None)  # broken.png (sorted last)
    assert set(out) == {"status"} and "cannot decode the image" in out["status"]
    Image.new("L", (30, 50), 90).save(tmp_path / "grey.png")
    out = demo_app.image_outputs(explorer, str(tmp_path / "grey.png"), None)
    assert "greyscale" in out["status"] and out["image"].shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)
    frames = [Image.new("RGB", (32, 32), (60 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert "animated (3 frames)" in demo_app.image_outputs(explorer, str(tmp_path / "a.gif"), None)["status"]
    assert "no image is loaded" in demo_app.click_outputs(explorer, None, None, 1, 1)["status"]
    clicked = demo_app.click_outputs(explorer, out["key"], "synthetic #2", 10, 10)
    assert clicked["status"].startswith("Patch (0, 0)") and clicked["match"] is not None
    assert "apache-2.0" in explorer.describe() and "cpu" in explorer.describe()


def test_huge_images_are_refused(explorer, tmp_path, monkeypatch):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 pixels: over the limit, not yet twice it
    status = demo_app.image_outputs(explorer, str(tmp_path / "big.png"), None)["status"]
    assert status.startswith("**Error:**") and "DecompressionBombWarning" in status


def test_demo_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio":
            raise ImportError("no gradio")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert hub_main(["demo", "anything"]) == 1
    assert capsys.readouterr().err.strip() == f"ijepa-hub demo: error: {demo_app.GRADIO_MISSING}"


def test_demo_refuses_a_missing_images_folder(tmp_path, capsys):
    pytest.importorskip("gradio")
    assert hub_main(["demo", "anything", "--images", str(tmp_path / "nope")]) == 1
    assert "is not a folder" in capsys.readouterr().err
