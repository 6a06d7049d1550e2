"""Downstream probes on frozen features: synthetic label masks, the linear segmentation probe (library and
``ijepa-eval seg``), its data checks and picture, and the attentive probe (library and ``ijepa-eval attentive``)."""
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

import ijepa_hub
from ijepa_hub.data.synthetic import SEGMENTATION_CLASSES, SyntheticShapes
from ijepa_hub.errors import DataError
from ijepa_hub.eval.attentive import attentive_probe
from ijepa_hub.eval.cli import main
from ijepa_hub.eval.segdata import folder_segmentation_splits, synthetic_segmentation_splits
from ijepa_hub.eval.segmentation import evaluate_segmentation, segmentation_scores
from ijepa_hub.models import AttentivePooler


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    return ijepa_hub.save_pretrained(tiny_model, tmp_path_factory.mktemp("model"))


def test_synthetic_images_are_unchanged_and_masks_cover_exactly_the_shapes():
    # digests of the images (and labels) as drawn before label masks existed: the masks change no pixel
    for (seed, size), want in (((0, 96), "c940ebc938b857a5905af8add2053919399c0237f33369291cef012d3cc33656"),
                               ((1001, 64), "391ef10475d69949c65856a9a213764e16a8b7dfae112fa710c7bfd3b00a1090")):
        ds, digest = SyntheticShapes(6, size=size, seed=seed), hashlib.sha256()
        for i in range(6):
            image, label = ds[i]
            digest.update(np.asarray(image).tobytes())
            digest.update(str(label).encode())
            same, mask = ds.segmentation(i)
            pixels, mask = np.asarray(same), np.asarray(mask)
            assert np.array_equal(pixels, np.asarray(image)) and mask.shape == (size, size)
            assert set(np.unique(mask)) == {0, 1 + label[0]}
            background = pixels[mask == 0][0]  # shapes are drawn in brighter colours than any background
            assert np.array_equal((pixels != background).any(-1), mask > 0)
        assert digest.hexdigest() == want
    assert SEGMENTATION_CLASSES == ("background", "circle", "square", "triangle", "cross")


def test_scores_are_mean_iou_per_class_iou_and_pixel_accuracy():
    labels = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    s = segmentation_scores(pred, labels, 4)
    assert s.per_class_iou == pytest.approx([1 / 3, 2 / 3, 1 / 2, None])  # class 3 absent from both
    assert s.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3) and s.pixel_accuracy == pytest.approx(4 / 6)


def write_voc_like(root, *, num_classes_file=True, size=(40, 36)):
    """Two splits of images whose left half is class 1 (red) and right half class 2 (blue); a 255 border."""
    rng = np.random.default_rng(0)
    w, h = size
    for split, n in (("train", 6), ("val", 3)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 40, (h, w, 3)).astype(np.uint8)
            cut = int(rng.integers(w // 3, 2 * w // 3))
            pixels[:, :cut, 0] += 200
            pixels[:, cut:, 2] += 200
            mask = np.full((h, w), 2, np.uint8)
            mask[:, :cut] = 1
            mask[0, :] = 255
            Image.fromarray(pixels).save(root / split / "images" / f"im{i}.jpg")
            Image.fromarray(mask).save(root / split / "masks" / f"im{i}.png")
    if num_classes_file:
        (root / "classes.txt").write_text("background\nred\nblue\n")


def test_seg_cli_on_a_voc_like_folder_reports_miou_and_draws_the_picture(model_dir, tmp_path, capsys):
    write_voc_like(tmp_path / "voc")
    out, picture = tmp_path / "seg.json", tmp_path / "seg.png"
    assert main(["seg", str(model_dir), "--data", str(tmp_path / "voc"), "--layers", "4", "--epochs", "5",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(out), "--picture", str(picture)]) == 0
    r = json.loads(out.read_text())
    assert 0.0 <= r["miou"] <= 1.0 and 0.0 <= r["pixel_accuracy"] <= 1.0
    assert r["layers"] == 4 and r["num_train"] == 6 and r["num_test"] == 3 and r["num_classes"] == 3
    assert list(r["per_class_iou"]) == ["background", "red", "blue"] and r["per_class_iou"]["background"] is None
    assert r["feature_grid"] == [2, 2] and r["picture"] == str(picture)
    with Image.open(picture) as im:
        assert im.format == "PNG" and im.width > 300
    assert "mIoU" in capsys.readouterr().out
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # train and val patch maps cached


@pytest.mark.parametrize("breakage, message", [
    ("mask_size", "mask is 20x36 but its image is 40x36"),
    ("label_value", r"label values \[7\] are outside the 3 classes"),
    ("no_masks_folder", "no masks/ folder"),
    ("missing_mask", "im1.jpg: no mask"),
    ("rgb_mask", "mode RGB"),
])
def test_bad_segmentation_data_is_a_clear_error(tmp_path, breakage, message, model_dir, capsys):
    root = tmp_path / "voc"
    write_voc_like(root)
    masks = root / "val" / "masks"
    if breakage == "mask_size":
        Image.fromarray(np.ones((36, 20), np.uint8)).save(masks / "im0.png")
    elif breakage == "label_value":
        Image.fromarray(np.full((36, 40), 7, np.uint8)).save(masks / "im2.png")
    elif breakage == "no_masks_folder":
        for p in masks.iterdir():
            p.unlink()
        masks.rmdir()
    elif breakage == "missing_mask":
        (masks / "im1.png").unlink()
    else:
        Image.new("RGB", (40, 36)).save(masks / "im0.png")
    with pytest.raises(DataError, match=message):
        folder_segmentation_splits(root)
    if breakage == "label_value":
        assert main(["seg", str(model_dir), "--data", str(root), "--cache-dir", ""]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("ijepa-eval seg: error:") and "im2.png" in err and "\n" not in err


def test_seg_probe_beats_the_majority_class_on_synthetic_shapes():
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch8", img_size=32, with_predictor=False)  # a 4x4 patch grid
    splits = synthetic_segmentation_splits(num_train=64, num_test=32, size=48)
    r = evaluate_segmentation(model.encoder, splits, epochs=20, cache_dir="")
    assert r["majority"]["class"] == "background"
    assert r["miou"] > r["majority"]["miou"] + 0.03
    assert r["per_class_iou"]["background"] > 0.8 and max(r["per_class_iou"][s] for s in SEGMENTATION_CLASSES[1:]) > 0.1


def test_seg_cli_on_synthetic_shapes_with_the_random_init_baseline(model_dir, tmp_path):
    out = tmp_path / "seg.json"
    assert main(["seg", str(model_dir), "--num-train", "16", "--num-test", "8", "--epochs", "2", "--baseline",
                 "--cache-dir", "", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["encoder"] for r in results] == ["model", "random_init"]
    assert all(r["data"] == "synthetic-segmentation" and list(r["per_class_iou"]) == list(SEGMENTATION_CLASSES)
               for r in results)
    assert results[0]["miou"] != results[1]["miou"]  # two different networks


def test_attentive_probe_learns_a_separable_toy_task_to_100_percent():
    gen = torch.Generator().manual_seed(0)
    n, t, d = 160, 16, 32
    labels = torch.arange(n) % 4
    tokens = 0.5 * torch.randn(n, t, d, generator=gen)
    where = torch.randint(0, t, (n,), generator=gen)  # one token anywhere carries its class's prototype
    tokens[torch.arange(n), where] += 3.0 * torch.randn(4, d, generator=gen)[labels]
    r = attentive_probe(tokens[:120], labels[:120], tokens[120:], labels[120:], num_heads=4, epochs=20)
    assert r.top1 == 100.0 and r.train_top1 == 100.0
    assert AttentivePooler(32, num_heads=4, num_classes=0)(tokens[:2]).shape == (2, 32)
    with pytest.raises(ValueError, match="num_heads=5 must divide embed_dim=32"):
        AttentivePooler(32, num_heads=5, num_classes=3)


def test_attentive_cli_reports_top1_beside_the_linear_probe(model_dir, tmp_path, capsys):
    from test_eval_cli import write_colour_classes

    write_colour_classes(tmp_path / "colours", per_class=6)
    out = tmp_path / "att.json"
    assert main(["attentive", str(model_dir), "--data", str(tmp_path / "colours"), "--epochs", "10",
                 "--baseline", "--cache-dir", "", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["encoder"] for r in results] == ["model", "random_init"]
    for r in results:
        assert r["protocol"] == "attentive" and 0 <= r["top1"] <= 100 and 0 <= r["linear_top1"] <= 100
    assert results[0]["top1"] == 100.0  # dark red vs bright blue: any encoder separates them
    assert "attentive top-1 %" in capsys.readouterr().out


def test_layers_option_takes_a_count_or_block_indices(capsys):
    from ijepa_hub.eval.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["seg", "m", "--layers", "4"]).layers == 4 and parse(["seg", "m"]).layers == 1
    assert parse(["seg", "m", "--layers", "2,5,-1"]).layers == [2, 5, -1]
    assert parse(["extract", "m", "imgs", "f.npy", "--layers", "3,"]).layers == [3]
    with pytest.raises(SystemExit) as exit_info:
        parse(["seg", "m", "--layers", "last"])
    assert exit_info.value.code == 2 and "block indices like 2,5,11" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["seg", "pca"])
def test_picture_titles_name_the_model_never_its_local_path(model_dir, tmp_path, monkeypatch, command):
    from ijepa_hub.eval import plots

    titles = []
    for name in ("plot_segmentation", "plot_pca"):
        monkeypatch.setattr(plots, name, lambda *a, title="", **k: titles.append(title) or tmp_path / "x.png")
    source = str(model_dir.resolve())
    argv = (["seg", source, "--num-train", "8", "--num-test", "4", "--epochs", "1", "--picture", str(tmp_path / "s.png")]
            if command == "seg" else ["pca", source, str(tmp_path / "p.png"), "--num", "2"])
    assert main([*argv, "--cache-dir", ""] if command == "seg" else argv) == 0
    assert len(titles) == 1
    assert source not in titles[0] and str(tmp_path) not in titles[0] and "/" not in titles[0].split(":")[0]
    assert titles[0].startswith("I-JEPA vit_tiny_patch16:")  # the architecture (no recipe in a bare save)


def test_model_label_is_the_variant_the_repo_id_or_the_architecture_and_recipe(tiny_model, tmp_path):
    from ijepa_hub.eval.plots import model_label

    class Released:
        variant, config = "ijepa_vith14_1k", tiny_model.config

    assert model_label("IN1K-vit.h.14-300e.pth.tar", Released()) == "ijepa_vith14_1k"
    assert model_label("someone/my-ijepa", tiny_model) == "someone/my-ijepa"  # a repo id, not a local path
    folder = tmp_path / "run" / "model"
    ijepa_hub.save_pretrained(tiny_model, folder, recipe=ijepa_hub.load_recipe("default"))
    assert model_label(folder, tiny_model) == "I-JEPA vit_tiny_patch16, recipe default"
