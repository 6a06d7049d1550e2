"""A fine-tuned classifier as a Hub repo (ijepa_hub and timm give the same logits) and its deployment exports."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import ijepa_hub
from ijepa_hub.deploy import export_deployable, run_exported
from ijepa_hub.errors import ExportError, HubLayoutError, MissingExtraError, PoolingMismatchError
from ijepa_hub.finetune.cli import main as finetune_main
from ijepa_hub.hub.cli import main as hub_main
from ijepa_hub.models import Classifier

REPO = "tester/ijepa-shapes"
TINY_RUN = [
    "vit_tiny_patch8", "--model.depth", "2", "--data.num_train", "32", "--data.num_val", "16",
    "--data.batch_size_per_device", "8", "--optim.batch_size", "8", "--optim.epochs", "1", "--train.num_workers", "0",
    "--no-progress",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A 4-step fine-tune of a tiny classifier on the synthetic shapes, its classifier in <out>/model."""
    out = tmp_path_factory.mktemp("ft") / "run"
    assert finetune_main([*TINY_RUN, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def attentive_dir(tmp_path_factory) -> Path:
    """The same run in attentive mode: a frozen encoder, timm's attention pool and the head learn."""
    out = tmp_path_factory.mktemp("ft") / "attentive"
    assert finetune_main([*TINY_RUN, "--model.mode", "attentive", "--out", str(out)]) == 0
    return out


def _batch(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_saved_classifier_has_timm_classifier_fields_and_a_card(run_dir):
    folder = run_dir / "model"
    config = json.loads((folder / "config.json").read_text())
    labels = ["circle", "square", "triangle", "cross"]
    assert (config["num_classes"], config["label_names"]) == (4, labels)
    assert config["model_args"]["num_classes"] == 4 and config["pretrained_cfg"]["num_classes"] == 4
    assert config["pretrained_cfg"]["label_names"] == labels and config["pretrained_cfg"]["crop_pct"] == 1.0
    assert config["ijepa"]["classifier"]["label_names"] == labels
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        assert f.get_tensor("head.weight").shape == (4, 192) and f.get_tensor("head.bias").shape == (4,)
    card = (folder / "README.md").read_text()
    top1 = config["ijepa"]["metrics"]["val_top1"]
    assert "pipeline_tag: image-classification" in card and f"{top1}%" in card and "`finetune_default`" in card
    assert "synthetic-shape (32 train / 16 validation images)" in card


@pytest.mark.parametrize("mode, pool", [("full", "avg"), ("attentive", "map")])
def test_pushed_repo_gives_equal_logits_in_from_pretrained_and_timm(hub_server, tmp_path, mode, pool):
    import timm

    out, repo = tmp_path / "pushed", f"{REPO}-{mode}"
    args = [*TINY_RUN, "--model.mode", mode, "--out", str(out), "--push-to-hub", repo]
    assert finetune_main(args) == 0
    clf = ijepa_hub.from_pretrained(repo)
    assert isinstance(clf, Classifier) and clf.label_names == ["circle", "square", "triangle", "cross"]
    model = timm.create_model(f"hf-hub:{repo}", pretrained=True).eval()
    assert model.num_classes == 4 and model.pretrained_cfg["label_names"] == clf.label_names
    assert model.global_pool == clf.global_pool == pool and (model.attn_pool is None) == (pool == "avg")
    x = _batch(3)
    with torch.no_grad():
        ours, theirs = clf(x), model(x)
    assert ours.shape == (3, 4)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    local = ijepa_hub.from_pretrained(out / "model")
    torch.testing.assert_close(local(x), ours, atol=0, rtol=0)
    top = clf.classify([img for img in (x[0] * 0.2 + 0.5).clamp(0, 1).unsqueeze(0)], top_k=2)
    assert len(top) == 1 and len(top[0]) == 2 and top[0][0][1] >= top[0][1][1]
    assert {name for name, _ in top[0]} <= set(clf.label_names)
    readme = Path(ijepa_hub.hub.load.hf_hub_download(repo, "README.md")).read_text()
    assert f'from_pretrained("{repo}")' in readme and f"| Fine-tuning mode | {mode}: " in readme
    assert f"timm `global_pool='{pool}'`" in readme


def _check_against_eager(path: Path, model: torch.nn.Module, names: int) -> None:
    for n in (1, 4):  # batch sizes other than the export example's (2)
        x = _batch(n, seed=n)
        with torch.no_grad():
            eager = model(x)
        eager = list(eager) if isinstance(eager, tuple) else [eager]
        got = run_exported(path, x)
        assert len(got) == len(eager) == names
        for g, e in zip(got, eager):
            assert g.shape == e.shape and (g - e).abs().max() <= 1e-4


@pytest.mark.parametrize("run", ["run_dir", "attentive_dir"])
def test_onnx_export_of_a_classifier_matches_eager_at_two_batch_sizes(run, tmp_path, capsys, request):
    run_dir = request.getfixturevalue(run)
    out = tmp_path / "onnx"
    assert hub_main(["export", str(run_dir / "model"), str(out), "--format", "onnx"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    meta = json.loads((out / "export.json").read_text())
    assert meta["outputs"] == [{"name": "logits", "shape": ["batch", 4]}] and meta["dtype"] == "fp32"
    assert meta["label_names"] == ["circle", "square", "triangle", "cross"] and meta["check"]["max_abs_diff"] <= 1e-4
    _check_against_eager(out / "model.onnx", ijepa_hub.from_pretrained(run_dir / "model"), 1)


def test_torch_export_of_an_encoder_gives_tokens_and_pooled_features(tmp_path):
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch8", img_size=32, depth=2, with_predictor=False).eval()
    result = export_deployable(model, tmp_path / "pt2", format="torch-export")
    meta = json.loads((tmp_path / "pt2" / "export.json").read_text())
    assert [o["name"] for o in meta["outputs"]] == ["patch_tokens", "pooled"]
    assert meta["outputs"][0]["shape"] == ["batch", 16, 192]
    assert set(result.max_abs_diff) == {1, 3}

    def eager(x):
        tokens = model.encoder(x)
        return tokens, tokens.mean(1)

    _check_against_eager(result.file, eager, 2)


def test_exporting_an_unreadable_repo_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"ijepa": ')
    assert hub_main(["export", str(bad), str(tmp_path / "out"), "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ijepa-hub export: error: ") and "config.json is not valid JSON" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("pool", ["avg", "map"])
def test_a_repo_whose_config_and_weights_disagree_on_the_pooling_is_one_error_line(run_dir, attentive_dir, tmp_path,
                                                                                    capsys, pool):
    """config.json says one pooling, model.safetensors holds the other's weights: the attentive pooler missing
    (or extra) is named, before any strict-loading key list."""
    import shutil

    repo = shutil.copytree((attentive_dir if pool == "avg" else run_dir) / "model", tmp_path / "repo")
    config = json.loads((repo / "config.json").read_text())
    config["ijepa"]["classifier"]["global_pool"] = pool
    (repo / "config.json").write_text(json.dumps(config))
    with pytest.raises(PoolingMismatchError, match=f"global_pool '{pool}' but model.safetensors "
                                                   f"{'lacks' if pool == 'map' else 'holds'} the attentive pooler"):
        ijepa_hub.from_pretrained(repo)
    assert hub_main(["export", str(repo), str(tmp_path / "out"), "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ijepa-hub export: error: ") and "re-save the classifier" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_classifier_repo_from_before_attentive_mode_loads_as_mean_pooled(run_dir, tmp_path):
    import shutil

    repo = shutil.copytree(run_dir / "model", tmp_path / "old")
    config = json.loads((repo / "config.json").read_text())
    del config["ijepa"]["classifier"]["global_pool"]  # new with attentive mode; timm's fields always said "avg"
    (repo / "config.json").write_text(json.dumps(config))
    old, new = ijepa_hub.from_pretrained(repo), ijepa_hub.from_pretrained(run_dir / "model")
    assert old.global_pool == "avg" and old.attn_pool is None
    torch.testing.assert_close(old(_batch(2)), new(_batch(2)), atol=0, rtol=0)


@pytest.mark.parametrize("source, mode", [("run_dir", "attentive"), ("attentive_dir", "full")])
def test_finetuning_from_a_classifier_of_another_pooling_takes_its_encoder_only(source, mode, request):
    """A classifier source gives its encoder; its head and attention pool (if any) give way to the new mode's."""
    from ijepa_hub.finetune.cli import parse_args
    from ijepa_hub.finetune.model import build_classifier

    folder = request.getfixturevalue(source) / "model"
    theirs = ijepa_hub.from_pretrained(folder).encoder_state_dict()
    clf = build_classifier(parse_args([str(folder), "--model.mode", mode])[0].model, ["a", "b"], crop_pct=1.0)
    assert clf.global_pool == ("map" if mode == "attentive" else "avg") and clf.num_classes == 2
    assert clf.encoder_state_dict().keys() == theirs.keys()
    assert all(torch.equal(clf.state_dict()[k], v) for k, v in theirs.items())
    assert clf(_batch(2)).shape == (2, 2)


def test_missing_onnx_extra_names_the_pip_command(monkeypatch, tmp_path, tiny_model):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'ijepa-hub\[onnx\]'.*pip install -e '\.\[onnx\]'"):
        export_deployable(tiny_model, tmp_path / "out", format="onnx")
    assert not (tmp_path / "out").exists()


def test_classifier_repo_refuses_parts_it_does_not_have(run_dir):
    with pytest.raises(HubLayoutError, match="fine-tuned classifier"):
        ijepa_hub.from_pretrained(run_dir / "model", with_predictor=True)


def test_half_precision_exports_where_the_format_allows(tmp_path):
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch8", img_size=32, depth=1, with_predictor=False).eval()
    result = export_deployable(model, tmp_path / "bf16", format="torch-export", dtype="bf16", check_batch_sizes=(3,))
    tokens, pooled = run_exported(result.file, _batch(3).bfloat16())
    assert tokens.dtype == pooled.dtype == torch.bfloat16 and pooled.shape == (3, 192)
    assert json.loads((tmp_path / "bf16" / "export.json").read_text())["inputs"][0]["dtype"] == "bf16"
    with pytest.raises(ExportError, match="bf16 ONNX models do not run in onnxruntime"):
        export_deployable(model, tmp_path / "onnx-bf16", format="onnx", dtype="bf16")
    assert not (tmp_path / "onnx-bf16").exists()
