"""The online probe (ijepa_hub.train.online_probe): its k-NN values, its records in metrics.jsonl and the plot,
the collapse monitor's warning on a falling probe, and a training run it leaves unchanged."""
import logging

import pytest
import torch
from PIL import Image

import ijepa_hub
from ijepa_hub.errors import RecipeError
from ijepa_hub.eval.data import LabelledSplits
from ijepa_hub.eval.knn import knn_classify
from ijepa_hub.eval.plots import plot_training_curves, read_metrics
from ijepa_hub.features import preprocess
from ijepa_hub.train.monitor import CollapseMonitor
from ijepa_hub.train.online_probe import OnlineProbe, probe_splits

_PROBE_ARGS = ["--train.eval_every", "2", "--eval.num_train", "48", "--eval.num_test", "24"]


def test_training_logs_the_probe_and_is_unchanged_by_it(tiny_train_args, tmp_path, torch_single_thread):
    from ijepa_hub.train.cli import parse_args

    args = [*tiny_train_args, "--train.max_steps", "3"]
    plain = ijepa_hub.train.train(parse_args(args)[0], out_dir=tmp_path / "plain", progress=False, export=False)
    probed = ijepa_hub.train.train(parse_args([*args, *_PROBE_ARGS])[0], out_dir=tmp_path / "probed",
                                   progress=False, export=False)
    assert probed.losses == plain.losses  # the probe draws no random number and touches no weight
    assert [r["step"] for r in probed.online_probe] == [0, 2, 3]  # step 0, every 2 steps, the last step
    records = [r for r in read_metrics(tmp_path / "probed" / "metrics.jsonl") if r.get("kind") == "probe"]
    assert records == [{"kind": "probe", **r} for r in probed.online_probe]
    for r in records:
        assert 0 <= r["knn_shape"] <= 100 and 0 <= r["knn_count"] <= 100 and r["probe_seconds"] > 0
        assert r["probe_warning"] == ""
    assert plain.online_probe == [] and not any(r.get("kind") == "probe" for r in read_metrics(tmp_path / "plain" / "metrics.jsonl"))
    path = plot_training_curves(tmp_path / "probed" / "metrics.jsonl", tmp_path / "curves.png", keys=("online_probe",))
    assert path.stat().st_size > 0


def test_probe_is_the_knn_of_the_pooled_features(tiny_ijepa):
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 32, 32, generator=g) for _ in range(14)]
    labels = torch.tensor([0, 1] * 7)
    splits = LabelledSplits("toy", images[:10], labels[:10], images[10:], labels[10:], ["a", "b"], 1.0, "toy")
    probe = OnlineProbe({"kind": splits}, 32, k=3)
    encoder = tiny_ijepa.target_encoder
    record = probe(encoder, 5, device=torch.device("cpu"), autocast=torch.autograd.grad_mode.no_grad)

    def pooled(part):
        with torch.no_grad():
            return encoder(torch.stack([preprocess(im, 32, crop_pct=1.0) for im in part])).mean(1)

    expected = knn_classify(pooled(images[:10]), labels[:10], pooled(images[10:]), labels[10:], k=3, num_classes=2)
    assert record == {"step": 5, "knn_kind": expected.top1} and probe.history == [record]
    assert encoder.training  # put back in training mode


def test_probe_splits_synthetic_folder_and_the_error_without_labels(tmp_path, caplog):
    from ijepa_hub.recipe import Recipe

    recipe = Recipe()
    recipe.eval.num_train, recipe.eval.num_test = 8, 4
    synthetic = probe_splits(recipe)
    assert set(synthetic) == {"shape", "count"} and len(synthetic["shape"].train_images) == 8
    assert synthetic["shape"].train_images is synthetic["count"].train_images  # drawn once
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tmp_path / c / f"{i}.png")
    recipe.eval.data = str(tmp_path)
    folder = probe_splits(recipe)["class"]
    assert folder.classes == ["cat", "dog"] and len(folder.train_images) == 8 and len(folder.test_images) == 2
    recipe.eval.data, recipe.data.dataset, recipe.data.path = None, "mine", str(tmp_path)
    with pytest.raises(RecipeError, match="eval.data"):
        probe_splits(recipe)
    recipe.train.eval_every = 50  # the default recipe on unlabelled images of one's own: no probe, a warning
    with caplog.at_level(logging.WARNING):
        assert OnlineProbe.from_recipe(recipe) is None
    assert "--eval.data" in caplog.text


def test_monitor_warns_when_the_probe_falls_several_times_in_a_row(caplog):
    monitor = CollapseMonitor(torch.zeros(1, 3, 2, 2), probe_falls=3)
    rising_then_falling = [50, 60, 58, 57, 59, 55, 54, 53]
    with caplog.at_level(logging.WARNING):
        warnings = [monitor.watch_probe({"step": 10 * i, "knn_shape": v, "knn_count": 40.0})
                    for i, v in enumerate(rising_then_falling)]
    # 60 -> 58 -> 57 is two falls, then a rise; 59 -> 55 -> 54 -> 53 is three in a row
    assert warnings[:-1] == [""] * 7
    assert warnings[-1] == "knn_shape fell 3 evaluations in a row, 59.0 -> 53.0 (step 40 -> 70)"
    assert "online probe is falling" in caplog.text
    restored = CollapseMonitor(monitor.images)
    restored.load_state_dict(monitor.state_dict())  # a resumed run continues the trend
    assert restored.probe_history == monitor.probe_history
    assert "knn_shape" in restored.watch_probe({"step": 80, "knn_shape": 52.0, "knn_count": 40.0})
    old = CollapseMonitor(monitor.images)
    old.load_state_dict({"history": []})  # a checkpoint from before the probe
    assert old.probe_history == []
