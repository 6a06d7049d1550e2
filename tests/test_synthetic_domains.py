"""The two built-in synthetic domains (ijepa_hub.data.synthetic styles): plain pixels unchanged, textured
ones sharing the plain labels and masks but not their look, and the one data spec (``synthetic``,
``synthetic:textured``) read by training, evaluation, segmentation, fine-tuning and the online probe."""
import hashlib

import numpy as np
import pytest

from ijepa_hub.data import build_dataset, training_synthetic_style
from ijepa_hub.data.synthetic import SYNTHETIC_SPECS, SyntheticShapes, synthetic_spec, synthetic_style
from ijepa_hub.eval.data import labelled_splits
from ijepa_hub.eval.segdata import segmentation_splits
from ijepa_hub.recipe import DataSection

# sha256 prefixes of the plain images and masks, recorded on main before the styles existed:
# (seed, size, index) -> (labels, image hash, mask hash). README figures and older tests depend on these pixels.
PLAIN = {
    (0, 96, 0): ((3, 3), "b0018ffc07625c1f", "e09f794c971728b2"),
    (0, 96, 5): ((2, 2), "f7879485d690cc70", "d69117ed4d1f5fb0"),
    (3, 64, 7): ((2, 3), "3a424aacb75a81c8", "3f055cbc32131457"),
    (1001, 32, 5): ((3, 2), "c5321780c703a6bb", "16ecce8ff2d1fcfe"),
}


def _hash(image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("key", sorted(PLAIN))
def test_plain_images_and_masks_are_unchanged(key):
    seed, size, index = key
    labels, image_hash, mask_hash = PLAIN[key]
    ds = SyntheticShapes(8, size=size, seed=seed)  # the default style is plain
    image, got = ds[index]
    _, mask = ds.segmentation(index)
    assert (got, _hash(image), _hash(mask)) == (labels, image_hash, mask_hash)


def test_textured_shares_labels_and_masks_with_plain_but_not_the_look():
    plain, textured = (SyntheticShapes(12, size=64, seed=5, style=s) for s in ("plain", "textured"))
    background_means, gradients = {"plain": [], "textured": []}, {"plain": [], "textured": []}
    for i in range(12):
        (p_image, p_mask), (t_image, t_mask) = plain.segmentation(i), textured.segmentation(i)
        assert plain[i][1] == textured[i][1]
        assert np.array_equal(np.asarray(p_mask), np.asarray(t_mask))
        assert np.array_equal(np.asarray(textured[i][0]), np.asarray(t_image))  # segmentation() draws the same pixels
        background = np.asarray(p_mask) == 0
        for name, image in (("plain", p_image), ("textured", t_image)):
            grey = np.asarray(image, dtype=np.float64).mean(axis=2)
            background_means[name].append(grey[background].mean())
            inside = background[1:, 1:] & background[:-1, 1:] & background[1:, :-1]  # both neighbours background too
            edges = np.abs(np.diff(grey, axis=1))[1:, :] + np.abs(np.diff(grey, axis=0))[:, 1:]  # |d/dx| + |d/dy|
            gradients[name].append(edges[inside].mean())
    assert max(background_means["plain"]) < 96 < 150 < min(background_means["textured"])  # dark vs bright
    assert max(gradients["plain"]) == 0 and min(gradients["textured"]) > 5  # flat vs striped / checked


def test_textured_images_are_deterministic_by_seed_and_index():
    a, b = SyntheticShapes(4, size=32, seed=9, style="textured"), SyntheticShapes(4, size=32, seed=9, style="textured")
    assert [_hash(a[i][0]) for i in range(4)] == [_hash(b[i][0]) for i in range(4)]
    other = SyntheticShapes(4, size=32, seed=10, style="textured")
    assert _hash(a[0][0]) != _hash(other[0][0])


def test_the_data_spec_names_the_style_and_refuses_unknown_ones():
    assert SYNTHETIC_SPECS == ("synthetic", "synthetic:textured")
    assert synthetic_style("synthetic") == "plain" and synthetic_style("synthetic:textured") == "textured"
    assert [synthetic_spec(s) for s in ("plain", "textured")] == list(SYNTHETIC_SPECS)
    for other in (None, "/data/images", "hfds/food101", "shards-{0..3}.tar", "synthetics"):
        assert synthetic_style(other) is None
    for bad in ("synthetic:striped", "synthetic:plain", "synthetic:"):  # one spelling per style
        with pytest.raises(ValueError, match="one of synthetic, synthetic:textured"):
            synthetic_style(bad)
    with pytest.raises(ValueError, match="known: plain, textured"):
        SyntheticShapes(4, style="striped")


def test_build_dataset_reads_the_spec_from_data_path_or_data_dataset():
    cases = [(DataSection(path="synthetic:textured"), "textured"), (DataSection(path="synthetic"), "plain"),
             (DataSection(), "plain"), (DataSection(dataset="synthetic:textured"), "textured")]
    for section, style in cases:
        section.num_samples, section.source_size = 4, 32
        ds = build_dataset(section, seed=3)
        assert training_synthetic_style(section) == style and isinstance(ds, SyntheticShapes) and ds.style == style
    with pytest.raises(ValueError, match="--data /path/to/train .* synthetic:textured"):
        build_dataset(DataSection(dataset="imagenet"))
    with pytest.raises(ValueError, match="synthetic data spec 'synthetic:nope'"):
        build_dataset(DataSection(path="synthetic:nope"))


def test_eval_and_segmentation_splits_of_the_textured_domain():
    kwargs = dict(num_train=6, num_test=4, size=32)
    plain, textured = labelled_splits("synthetic", label="count", **kwargs), labelled_splits("synthetic:textured", label="count", **kwargs)
    assert textured.name == "synthetic-textured-count" and textured.classes == plain.classes
    assert plain.fingerprint == "synthetic:6:4:32:0"  # as before the styles: existing feature caches stay valid
    assert textured.fingerprint != plain.fingerprint and "textured" in textured.fingerprint
    assert np.array_equal(plain.train_labels, textured.train_labels) and np.array_equal(plain.test_labels, textured.test_labels)
    assert _hash(plain.train_images[0]) != _hash(textured.train_images[0])
    seg_plain, seg_textured = (segmentation_splits(spec, **kwargs) for spec in SYNTHETIC_SPECS)
    assert seg_textured.fingerprint != seg_plain.fingerprint and seg_textured.classes == seg_plain.classes
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(seg_plain.train_masks, seg_textured.train_masks))


def test_finetune_and_online_probe_data_follow_the_spec():
    from ijepa_hub.finetune.data import finetune_splits
    from ijepa_hub.finetune.recipe import FtDataSection
    from ijepa_hub.recipe import Recipe
    from ijepa_hub.train.online_probe import probe_splits

    ft = finetune_splits(FtDataSection(path="synthetic:textured", num_train=6, num_val=4, source_size=32))
    assert ft.name == "synthetic-textured-shape"
    recipe = Recipe()
    recipe.eval.num_train, recipe.eval.num_test, recipe.data.source_size = 6, 4, 32
    recipe.data.path = "synthetic:textured"  # eval.data unset: the probe draws the training domain
    assert probe_splits(recipe)["shape"].name == "synthetic-textured-shape"
    recipe.eval.data = "synthetic"  # named: the plain domain, with its shape and count labels
    assert set(probe_splits(recipe)) == {"shape", "count"} and probe_splits(recipe)["count"].name == "synthetic-count"


def test_tiny_training_run_on_the_textured_domain(tiny_train_args, tmp_path, torch_single_thread):
    from ijepa_hub.eval.plots import read_metrics
    from ijepa_hub.train.cli import main as train_cli

    out = tmp_path / "run"
    args = [*tiny_train_args, "--data", "synthetic:textured", "--train.max_steps", "2", "--out", str(out),
            "--no-progress", "--train.eval_every", "2", "--eval.num_train", "16", "--eval.num_test", "8"]
    assert train_cli(args) == 0
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r.get("kind") == "probe"] == [0, 2]  # the textured shape / count probe
    assert all("knn_shape" in r for r in records if r.get("kind") == "probe")


def test_eval_cli_takes_the_synthetic_spec(tmp_path):
    from ijepa_hub.eval.cli import build_parser, main

    parser = build_parser()
    assert parser.parse_args(["synthetic", "vit_tiny_patch16", "--data", "synthetic:textured"]).data == "synthetic:textured"
    assert parser.parse_args(["synthetic", "vit_tiny_patch16"]).data == "synthetic"
    with pytest.raises(SystemExit):
        parser.parse_args(["synthetic", "vit_tiny_patch16", "--data", "/some/folder"])
    pytest.importorskip("matplotlib")
    assert main(["masks", str(tmp_path / "masks.png"), "--data", "synthetic:textured", "--num", "1"]) == 0
    assert (tmp_path / "masks.png").stat().st_size > 0
