"""One vocabulary and the same methods on every model: parts, deprecated names, forward, aliases, released names."""
import shutil
import warnings

import pytest
import torch
from test_hub_convert import _released_blob

import ijepa_hub
from ijepa_hub.hub.layout import PARTS, select_parts


def _equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def torch_hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    return tmp_path / "torch_hub"


def test_the_parts_table_names_the_files_on_disk(tiny_model, tmp_path):
    assert {p: spec.file for p, spec in PARTS.items()} == {
        "target_encoder": "model.safetensors", "context_encoder": "context_encoder.safetensors",
        "predictor": "predictor.safetensors"}
    assert select_parts("target", with_context_encoder=True, with_predictor=False) == {
        "target_encoder": "model.safetensors", "context_encoder": "context_encoder.safetensors"}
    assert select_parts("context", with_context_encoder=True, with_predictor=True) == {
        "context_encoder": "model.safetensors", "predictor": "predictor.safetensors"}
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "all")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "context_encoder.safetensors", "model.safetensors", "predictor.safetensors"]


def test_loading_and_saving_use_the_same_option_names(tiny_model, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # today's names warn about nothing
        folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "r", with_context_encoder=True, with_predictor=False)
        model = ijepa_hub.from_pretrained(folder, with_context_encoder=True)
        again = model.save_pretrained(tmp_path / "again", with_context_encoder=True, with_predictor=False)
    assert model.predictor is None and _equal(model.context_encoder, tiny_model.context_encoder)
    assert model.encoder is model.target_encoder and _equal(model.encoder, tiny_model.target_encoder)
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in folder.iterdir())
    with pytest.raises(ijepa_hub.HubLayoutError, match="predictor"):
        ijepa_hub.from_pretrained(folder, with_predictor=True)


def test_old_option_names_still_work_with_a_deprecation_warning(tiny_model, tmp_path):
    with pytest.warns(DeprecationWarning, match=r"include_(predictor|context_encoder)= is deprecated, use with_") as rec:
        old = ijepa_hub.save_pretrained(tiny_model, tmp_path / "old", include_predictor=False,
                                        include_context_encoder=False)
    assert {str(w.message).split(":")[1].split("=")[0].strip() for w in rec} == {
        "include_predictor", "include_context_encoder"}
    assert rec[0].filename == __file__  # the warning points at the caller's line
    new = ijepa_hub.save_pretrained(tiny_model, tmp_path / "new", with_predictor=False, with_context_encoder=False)
    assert sorted(p.name for p in old.iterdir()) == sorted(p.name for p in new.iterdir()) == [
        "README.md", "config.json", "model.safetensors"]
    full = ijepa_hub.save_pretrained(tiny_model, tmp_path / "full")
    with pytest.warns(DeprecationWarning, match="encoder='both' is deprecated, use encoder='target', "
                                                "with_context_encoder=True"):
        both = ijepa_hub.from_pretrained(full, encoder="both")
    assert both.encoder_name == "target" and both.predictor is None
    assert _equal(both.context_encoder, tiny_model.context_encoder) and _equal(both.encoder, tiny_model.target_encoder)
    with pytest.warns(DeprecationWarning, match="encoder='both'"):
        built = ijepa_hub.PretrainedIJepa(tiny_model.config, encoder="both")
    assert built.context_encoder is not None and built.target_encoder is not None
    with pytest.warns(DeprecationWarning, match="include_predictor") as rec:
        tiny_model.save_pretrained(tmp_path / "method", include_predictor=False)  # through the method too
    assert rec[0].filename == __file__
    with pytest.raises(TypeError, match="unexpected keyword argument 'include_target'"):
        ijepa_hub.save_pretrained(tiny_model, tmp_path / "x", include_target=True)


def test_pretrained_forward_returns_the_feature_encoders_patch_tokens(tiny_model, tmp_path, images):
    loaded = ijepa_hub.from_pretrained(ijepa_hub.save_pretrained(tiny_model, tmp_path / "f"), encoder="context")
    x = torch.stack([ijepa_hub.preprocess(i, 32) for i in images])
    with torch.no_grad():
        tokens = loaded(x)
        expected = tiny_model.context_encoder(x)
    assert tokens.shape == (4, 4, 192) and torch.equal(tokens, expected)
    assert torch.allclose(tokens, loaded.extract_features(images).patch_tokens, atol=1e-6, rtol=0)


def test_every_model_has_the_same_user_methods(tmp_path, images):
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch16", img_size=32)
    for method in ("extract_features", "save_pretrained", "push_to_hub", "forward_features"):
        assert callable(getattr(model, method))
    assert model.encoder is model.target_encoder and model.encoder_name == "target" and model.variant is None
    feats = model.extract_features(images)
    assert torch.equal(feats.pooled, ijepa_hub.extract_features(model.target_encoder, images).pooled)
    assert torch.equal(ijepa_hub.extract_features(model, images).pooled, feats.pooled)  # a whole model: its encoder
    loaded = ijepa_hub.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert torch.equal(ijepa_hub.extract_features(loaded, images).pooled, feats.pooled)


def test_released_names_and_aliases_resolve_everywhere(tiny_model, torch_hub_dir, monkeypatch):
    variant = ijepa_hub.get_variant("ijepa_vith14_1k")
    stand_in = torch_hub_dir.parent / "stand-in.pth.tar"
    torch.save(_released_blob(tiny_model), stand_in)
    fetched = []

    def download(url, dst, progress=True):
        fetched.append(url)
        shutil.copyfile(stand_in, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    for name in (variant.filename, "ijepa_vith14_1k", "ijepa_vith14"):  # file name (as the README shows it), alias
        model = ijepa_hub.load_reference_checkpoint(name)
        assert type(model) is ijepa_hub.IJepa and model.variant == variant.name
        assert _equal(model.target_encoder, tiny_model.target_encoder) and _equal(model.predictor, tiny_model.predictor)
    assert fetched == [variant.url]  # downloaded once, into the cache from_pretrained uses
    assert (torch_hub_dir / "checkpoints" / variant.filename).read_bytes() == stand_in.read_bytes()
    by_alias = ijepa_hub.from_pretrained("ijepa_vith14")
    assert by_alias.variant == variant.name and _equal(by_alias.encoder, tiny_model.target_encoder)
    assert fetched == [variant.url]
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        ijepa_hub.load_reference_checkpoint(f"elsewhere/{variant.filename}")  # a path, not a name to download


def test_from_pretrained_takes_num_heads_for_a_released_layout_of_no_preset_width(tmp_path):
    torch.manual_seed(0)
    odd = ijepa_hub.create_model("vit_tiny_patch8", img_size=32, embed_dim=64, depth=2, num_heads=2,
                                 pred_embed_dim=32, pred_depth=1)
    path = tmp_path / "odd.pth.tar"
    torch.save(_released_blob(odd), path)
    with pytest.raises(ijepa_hub.CheckpointError, match="pass num_heads="):
        ijepa_hub.from_pretrained(path)
    loaded = ijepa_hub.from_pretrained(path, num_heads=2, with_predictor=True)
    assert loaded.config.num_heads == 2 and _equal(loaded.encoder, odd.target_encoder)
    assert _equal(loaded.predictor, odd.predictor)
