"""Released .pth.tar checkpoints and the transformers layout, through from_pretrained and export."""
import argparse
import json
import os

import pytest
import torch
from safetensors.torch import load_file

import ijepa_hub
from ijepa_hub.hub.cli import main as cli
from ijepa_hub.hub.convert import timm_to_transformers, transformers_to_timm
from ijepa_hub.released import cache_path

transformers = pytest.importorskip("transformers")


def _released_blob(model):
    """A tiny checkpoint in the released layout: DDP prefixes, optimiser state and bookkeeping."""
    prefixed = lambda m: {f"module.{k}": v.clone() for k, v in m.state_dict().items()}  # noqa: E731
    return {"encoder": prefixed(model.context_encoder), "predictor": prefixed(model.predictor),
            "target_encoder": prefixed(model.target_encoder), "opt": {"state": {}, "param_groups": []},
            "scaler": None, "epoch": 3, "loss": 0.25, "batch_size": 8, "world_size": 1, "lr": 1e-3}


@pytest.fixture
def torch_hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield tmp_path / "torch_hub"
    torch.hub.set_dir(old)


@pytest.fixture
def released_file(tiny_model, tmp_path):
    path = tmp_path / "tiny-vit.t.16-3e.pth.tar"
    torch.save(_released_blob(tiny_model), path)
    return path


def _assert_same(module, reference):
    ref = reference.state_dict()
    got = module.state_dict()
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)


def test_released_checkpoint_converts_in_memory_and_loads_all_three_networks(
    released_file, tiny_model, torch_hub_dir, monkeypatch
):
    model = ijepa_hub.from_pretrained(released_file, with_context_encoder=True, with_predictor=True)
    for part in ("context_encoder", "target_encoder", "predictor"):
        _assert_same(getattr(model, part), getattr(tiny_model, part))
    assert not torch_hub_dir.exists()  # converted in memory: no folder written, and a local file is not copied
    monkeypatch.setattr(ijepa_hub.hub.files, "save_file", lambda *a, **k: pytest.fail("wrote a converted folder"))
    context = ijepa_hub.from_pretrained(released_file, encoder="context")
    assert context.target_encoder is None and context.predictor is None
    _assert_same(context.encoder, tiny_model.context_encoder)
    # by file:// URL: downloaded once into the torch hub cache (the only file written), then read from there
    by_url = ijepa_hub.from_pretrained(released_file.as_uri())
    cached = cache_path(released_file.as_uri()).name  # keyed on the whole URL (issue 17, item 4)
    assert sorted(p.relative_to(torch_hub_dir).as_posix() for p in torch_hub_dir.rglob("*")) == [
        "checkpoints", f"checkpoints/{cached}", f"checkpoints/{cached}.json"]
    assert cached.endswith(f"-{released_file.name}")
    _assert_same(by_url.encoder, tiny_model.target_encoder)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded twice"))
    _assert_same(ijepa_hub.from_pretrained(released_file.as_uri()).encoder, tiny_model.target_encoder)


def test_registry_name_uses_the_released_file_in_the_torch_hub_cache(tiny_model, torch_hub_dir, tmp_path):
    variant = ijepa_hub.get_variant("ijepa_vith14_1k")
    (torch_hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(_released_blob(tiny_model), torch_hub_dir / "checkpoints" / variant.filename)  # a stand-in
    model = ijepa_hub.from_pretrained("ijepa_vith14_1k")
    assert model.variant == "ijepa_vith14_1k" and model.encoder_name == "target"
    _assert_same(model.encoder, tiny_model.target_encoder)
    by_filename = ijepa_hub.from_pretrained(variant.filename, encoder="context")
    _assert_same(by_filename.encoder, tiny_model.context_encoder)
    folder = model.save_pretrained(tmp_path / "converted")
    config = json.loads((folder / "config.json").read_text())
    assert config["ijepa"]["variant"] == "ijepa_vith14_1k" and config["ijepa"]["source_url"] == variant.url
    card = (folder / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card and "imagenet-1k" in card and "non-commercial" in card


def test_checkpoint_with_a_pickled_object_is_refused(tiny_model, tmp_path, torch_hub_dir):
    blob = _released_blob(tiny_model)
    blob["args"] = argparse.Namespace(lr=1e-3)  # an object beyond tensors and plain containers
    path = tmp_path / "evil.pth.tar"
    torch.save(blob, path)
    with pytest.raises(ijepa_hub.CheckpointError, match=r"evil\.pth\.tar: refused to unpickle"):
        ijepa_hub.from_pretrained(path)
    assert not (torch_hub_dir / "ijepa_hub").exists() or not any((torch_hub_dir / "ijepa_hub").iterdir())


def test_strict_loading_lists_unexpected_keys(tiny_model, tmp_path):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "repo", with_context_encoder=False)
    weights = load_file(folder / "model.safetensors")
    weights["blocks.0.extra.weight"] = torch.zeros(1)
    del weights["norm.bias"]
    from safetensors.torch import save_file

    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ijepa_hub.StateDictMismatchError, match=r"missing keys \(1\): norm\.bias") as err:
        ijepa_hub.from_pretrained(folder)
    assert "blocks.0.extra.weight" in str(err.value) and str(folder) in str(err.value)


def _tiny_transformers_model():
    config = transformers.IJepaConfig(
        hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768,
        image_size=32, patch_size=16, layer_norm_eps=1e-6,
    )
    torch.manual_seed(1)
    return transformers.IJepaModel(config).eval()


def test_key_mapping_round_trips(tiny_model):
    sd = tiny_model.target_encoder.state_dict()
    back = transformers_to_timm(timm_to_transformers(sd))
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_transformers_repo_loads_with_identical_features(tmp_path, hub_server, images):
    from huggingface_hub import HfApi

    hf_model = _tiny_transformers_model()
    hf_model.save_pretrained(tmp_path / "hf")
    api = HfApi()
    api.create_repo("tester/tiny-transformers", exist_ok=True)
    api.upload_folder(repo_id="tester/tiny-transformers", folder_path=tmp_path / "hf")
    for source in (tmp_path / "hf", "tester/tiny-transformers"):
        model = ijepa_hub.from_pretrained(source, encoder="context")
        pixels = torch.stack([ijepa_hub.preprocess(i, 32) for i in images])
        with torch.no_grad():
            theirs = hf_model(pixel_values=pixels).last_hidden_state
        feats = model.extract_features(images)
        assert (feats.patch_tokens - theirs).abs().max() <= 1e-5
        assert (feats.pooled - theirs.mean(1)).abs().max() <= 1e-5
    with pytest.raises(ijepa_hub.HubLayoutError, match="context encoder"):
        ijepa_hub.from_pretrained(tmp_path / "hf")  # encoder="target" is not in a transformers repo


def test_registry_name_with_transformers_weights_reads_the_facebook_mirror(tmp_path, hub_server):
    from huggingface_hub import HfApi

    variant = ijepa_hub.get_variant("ijepa_vith14_22k")
    hf_model = _tiny_transformers_model()  # a tiny stand-in under the mirror's name on the test Hub
    hf_model.save_pretrained(tmp_path / "hf")
    HfApi().create_repo(variant.hf_transformers_repo, exist_ok=True)
    HfApi().upload_folder(repo_id=variant.hf_transformers_repo, folder_path=tmp_path / "hf")
    model = ijepa_hub.from_pretrained(variant.name, weights="transformers", encoder="context")
    assert model.variant == variant.name and model.source == variant.hf_transformers_repo
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (model.encoder(x) - hf_model(pixel_values=x).last_hidden_state).abs().max() <= 1e-5


def test_pickle_weights_in_a_repo_need_an_explicit_opt_in(tmp_path, hub_server):
    from huggingface_hub import HfApi

    hf_model = _tiny_transformers_model()
    hf_model.save_pretrained(tmp_path / "bin")  # then swap the safetensors file for a pickle of the same keys
    torch.save(load_file(tmp_path / "bin" / "model.safetensors"), tmp_path / "bin" / "pytorch_model.bin")
    os.remove(tmp_path / "bin" / "model.safetensors")
    HfApi().create_repo("tester/pickle-only", exist_ok=True)
    HfApi().upload_folder(repo_id="tester/pickle-only", folder_path=tmp_path / "bin")
    with pytest.raises(ijepa_hub.PickleNotAllowedError, match="tester/pickle-only.*allow_pickle=True"):
        ijepa_hub.from_pretrained("tester/pickle-only", encoder="context")
    model = ijepa_hub.from_pretrained("tester/pickle-only", encoder="context", allow_pickle=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (model.encoder(x) - hf_model(pixel_values=x).last_hidden_state).abs().max() <= 1e-5


def test_cli_convert_then_export_transformers_loads_back(released_file, tiny_model, tmp_path, torch_hub_dir):
    assert cli(["convert", str(released_file), str(tmp_path / "conv"), "--no-predictor"]) == 0
    assert not (tmp_path / "conv" / "predictor.safetensors").exists()
    assert cli(["export", str(tmp_path / "conv"), str(tmp_path / "tf"), "--format", "transformers"]) == 0
    hf_model = transformers.IJepaModel.from_pretrained(tmp_path / "tf").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = tiny_model.target_encoder(x)
        theirs = hf_model(pixel_values=x).last_hidden_state
    assert (ours - theirs).abs().max() <= 1e-5
