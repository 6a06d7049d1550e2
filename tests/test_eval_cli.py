"""ijepa-eval and the library under it: labelled splits, the feature cache, k-NN / linear / synthetic probes."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import ijepa_hub
from ijepa_hub.eval import cache as feature_cache
from ijepa_hub.eval import folder_splits, labelled_splits, random_init_encoder, synthetic_splits
from ijepa_hub.eval.cli import main
from ijepa_hub.eval.probes import card_metrics, format_table


def write_colour_classes(root, per_class=6, size=40):
    """Two classes a random network separates: dark red vs bright blue noise images."""
    rng = np.random.default_rng(0)
    for name, base in (("blue", (20, 40, 220)), ("red", (140, 10, 10))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(base) + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    return ijepa_hub.save_pretrained(tiny_model, tmp_path_factory.mktemp("model"))


def test_folder_splits_are_stratified_and_train_val_layout_is_used(tmp_path):
    write_colour_classes(tmp_path / "flat", per_class=10)
    s = folder_splits(tmp_path / "flat", test_fraction=0.2, seed=0)
    assert s.classes == ["blue", "red"]
    assert s.test_labels.tolist().count(0) == 2 and s.test_labels.tolist().count(1) == 2
    assert len(s.train_images) == 16 and not set(s.train_images) & set(s.test_images)
    assert folder_splits(tmp_path / "flat", seed=0).test_images == s.test_images  # deterministic by seed

    write_colour_classes(tmp_path / "tv" / "train", per_class=3)
    write_colour_classes(tmp_path / "tv" / "val", per_class=2)
    s = folder_splits(tmp_path / "tv")
    assert (len(s.train_images), len(s.test_images)) == (6, 4)
    assert all("/val/" in p for p in s.test_images)


def test_unlabelled_or_missing_folders_are_clear_errors(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="one subfolder per class"):
        folder_splits(tmp_path)
    with pytest.raises(FileNotFoundError, match="no image folder"):
        labelled_splits(str(tmp_path / "absent"))


def test_synthetic_count_labels_are_zero_based_counts():
    s = synthetic_splits("count", num_train=20, num_test=10)
    shapes = synthetic_splits("shape", num_train=20, num_test=10)
    assert s.classes == ["1", "2", "3", "4"] and s.crop_pct == 1.0
    assert set(s.train_labels.tolist()) <= {0, 1, 2, 3} and set(shapes.train_labels.tolist()) <= {0, 1, 2, 3}
    assert s.fingerprint == shapes.fingerprint  # same images, so the cached features are shared
    # disjoint from the training set (seed 0): different images
    train_image = ijepa_hub.SyntheticShapes(1, size=96, seed=0)[0][0]
    assert not np.array_equal(np.asarray(train_image), np.asarray(s.train_images[0]))


def test_feature_cache_is_read_back_and_keyed_by_the_weights(tiny_model, tmp_path, monkeypatch):
    images = [np.full((32, 32, 3), v, np.uint8) for v in (0, 80, 160)]
    encoder = tiny_model.target_encoder
    first = feature_cache.cached_features(encoder, images, fingerprint="three", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1

    def boom(*a, **k):
        raise AssertionError("extracted again")

    monkeypatch.setattr(feature_cache, "extract_features", boom)
    assert torch.equal(feature_cache.cached_features(encoder, images, fingerprint="three", cache_dir=tmp_path), first)
    other = tiny_model.context_encoder  # different weights: a different key, so extraction is attempted
    with pytest.raises(AssertionError, match="extracted again"):
        feature_cache.cached_features(other, images, fingerprint="three", cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="extracted again"):  # different options: a different key too
        feature_cache.cached_features(encoder, images, fingerprint="three", cache_dir=tmp_path, layers=4)


def test_knn_and_linear_cli_on_a_labelled_folder(model_dir, tmp_path, capsys):
    write_colour_classes(tmp_path / "data", per_class=8)
    out = tmp_path / "knn.json"
    assert main(["knn", str(model_dir), "--data", str(tmp_path / "data"), "--k", "5", "--cache-dir", str(tmp_path / "c"),
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["top1"] == 100.0 and r["top5"] == 100.0 and r["num_test"] == 4 and r["k"] == 5
    assert "top-1 %" in capsys.readouterr().out

    out = tmp_path / "linear.json"
    assert main(["linear", str(model_dir), "--data", str(tmp_path / "data"), "--layers", "1", "4",
                 "--cache-dir", str(tmp_path / "c"), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["layers"] for r in rows] == [1, 4] and all(r["top1"] == 100.0 for r in rows)
    assert len(rows[0]["sweep"]) == 6  # 3 learning rates x 2 weight decays, chosen on held-out data
    sizes, *table = capsys.readouterr().out.splitlines()
    assert sizes.endswith(f"{rows[0]['num_train']} train / {rows[0]['num_test']} test images, 2 classes")
    assert table[0].split()[-2:] == ["lr", "wd"]
    for line, r in zip(table[2:4], rows):  # lr and weight decay as chosen, e.g. 1e-02 and 0e+00, not 0.0
        assert line.split()[-2:] == [f"{r['lr']:.0e}", f"{r['weight_decay']:.0e}"]
        assert float(line.split()[-2]) == r["lr"] and float(line.split()[-1]) == r["weight_decay"]


def test_synthetic_cli_reports_model_baseline_and_margin(model_dir, tiny_model, tmp_path, capsys):
    out = tmp_path / "synthetic.json"
    assert main(["synthetic", str(model_dir), "--num-train", "40", "--num-test", "20", "--cache-dir", "",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for label in ("shape", "count"):
        row = r["labels"][label]
        for metric in ("linear_top1", "knn_top1"):
            assert row["margin"][metric] == pytest.approx(row["model"][metric] - row["random_init"][metric])
            assert 0.0 <= row["model"][metric] <= 100.0
    table = capsys.readouterr().out
    assert "random_init" in table and "margin" in table


def test_random_init_baseline_is_the_released_init_and_leaves_the_global_rng_alone(tiny_model):
    state = torch.random.get_rng_state()
    a = random_init_encoder(tiny_model.config, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = random_init_encoder(tiny_model.config, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    w = a.blocks[0].mlp.fc1.weight
    assert abs(w.std().item() - 0.02) < 0.002 and a.blocks[0].mlp.fc1.bias.abs().max() == 0


def test_pictures_from_the_cli(model_dir, tmp_path):
    from PIL import Image as PILImage

    for argv, name in (
        (["masks", str(tmp_path / "masks.png"), "--recipe", "in1k_vith14", "--num", "3"], "masks.png"),
        (["pca", str(model_dir), str(tmp_path / "pca.png"), "--num", "3", "--json", str(tmp_path / "pca.json")],
         "pca.png"),
    ):
        assert main(argv) == 0
        with PILImage.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width >= 300 and im.height >= 200
    r = json.loads((tmp_path / "pca.json").read_text())  # --json, as every command that takes it
    assert r["source"] == str(model_dir) and r["output"] == str(tmp_path / "pca.png") and r["patch_tokens"] == [3, 4, 192]
    ratios = r["variance_ratio"]
    assert len(ratios) == 3 and ratios == sorted(ratios, reverse=True) and 0 < sum(ratios) <= 1 + 1e-6
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.parent.mkdir()
    metrics.write_text("".join(json.dumps({"step": s, "loss": 1.0 / (s + 1), "lr": 1e-3}) + "\n" for s in range(5)))
    assert main(["curves", str(metrics.parent), str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 5000
    assert main(["curves", str(tmp_path / "nowhere"), str(tmp_path / "x.png")]) == 1


def test_format_table_aligns_columns():
    text = format_table([["a", 1.25], ["bbb", 10.0]], ["name", "value"])
    assert text.splitlines() == ["name  value", "----  -----", "a     1.2", "bbb   10.0"]


def test_extract_under_ijepa_eval_and_its_ijepa_hub_alias_write_the_same_file(model_dir, tmp_path, capsys):
    from ijepa_hub.hub.cli import main as hub_main

    write_colour_classes(tmp_path / "imgs", per_class=2)
    args = [str(model_dir), str(tmp_path / "imgs"), "--layers", "4", "--patch-tokens", "--device", "cpu"]
    assert main(["extract", *args[:2], str(tmp_path / "eval.safetensors"), *args[2:]]) == 0
    assert hub_main(["extract", *args[:2], str(tmp_path / "hub.safetensors"), *args[2:]]) == 0
    a, b = load_file(tmp_path / "eval.safetensors"), load_file(tmp_path / "hub.safetensors")
    assert a["pooled"].shape == (4, 768) and a["patch_tokens"].shape == (4, 4, 192)
    assert all(torch.equal(a[k], b[k]) for k in ("pooled", "patch_tokens"))
    with safe_open(tmp_path / "eval.safetensors", "pt") as f, safe_open(tmp_path / "hub.safetensors", "pt") as g:
        assert f.metadata() == g.metadata() and json.loads(f.metadata()["paths"])[0] == "blue/0.png"
    for cli in (main, hub_main):
        with pytest.raises(SystemExit) as exit_:  # a usage error, before any work
            cli(["extract", *args[:2], str(tmp_path / "x.csv")])
        assert exit_.value.code == 2 and "must end in .safetensors or .npy" in capsys.readouterr().err
    assert main(["extract", *args[:2], str(tmp_path / "x.npy"), "--patch-tokens"]) == 1
    assert "patch tokens need a .safetensors output" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()


def test_a_broken_image_in_the_eval_data_is_one_line_and_exit_1(model_dir, tmp_path, capsys):
    write_colour_classes(tmp_path / "data", per_class=4)
    (tmp_path / "data" / "red" / "3.png").write_bytes(b"not a png")
    rc = main(["knn", str(model_dir), "--data", str(tmp_path / "data"), "--cache-dir", ""])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"ijepa-eval knn: error: {tmp_path / 'data' / 'red' / '3.png'}: cannot decode the image")


def test_card_metrics_reads_what_ijepa_eval_writes():
    knn = {"data": "flowers", "protocol": "knn", "k": 20, "top1": 81.234, "top5": 95.0, "num_test": 10}
    linear = [{"data": "flowers", "protocol": "linear", "layers": n, "top1": t, "lr": 1e-2, "sweep": []}
              for n, t in ((1, 70.0), (4, 75.5))]
    synthetic = {"data": "synthetic", "layers": 1, "labels": {"count": {
        "model": {"linear_top1": 60.0, "knn_top1": 50.0}, "random_init": {"linear_top1": 40.0, "knn_top1": 45.0},
        "margin": {"linear_top1": 20.0, "knn_top1": 5.0}}}}
    assert card_metrics(knn) == {"flowers: k-NN top-1 % (k=20)": 81.23, "flowers: k-NN top-5 % (k=20)": 95.0}
    assert card_metrics(linear) == {"flowers: linear probe top-1 % (last 1 blocks)": 70.0,
                                    "flowers: linear probe top-1 % (last 4 blocks)": 75.5}
    m = card_metrics([knn, synthetic])
    assert len(m) == 8 and m["synthetic count: linear probe top-1 % (margin)"] == 20.0
    assert m["synthetic count: k-NN top-1 % (random init)"] == 45.0
    assert card_metrics({"imagenet top-1": 79.3}) == {"imagenet top-1": 79.3}
    with pytest.raises(ValueError, match="not metrics"):
        card_metrics({"source": "x", "variance_ratio": [0.5]})  # pca's JSON is not a metric

