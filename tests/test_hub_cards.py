"""Model cards say where the weights came from: the release (CC BY-NC, the paper's numbers), training here
(what it was trained on, never the paper's numbers), or nothing (random init claims nothing)."""
import json
import re

import pytest
import torch
import yaml
from conftest import REPO_ROOT
from test_hub_convert import _released_blob

import ijepa_hub
from ijepa_hub.hub.card import render_model_card
from ijepa_hub.registry import VARIANTS


def _card(folder):
    text = (folder / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    return meta, text


@pytest.fixture
def released_model(tiny_model, tmp_path, monkeypatch):
    """ijepa_vith14_1k from its released file (a tiny stand-in in the torch hub cache)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    (tmp_path / "torch_hub" / "checkpoints").mkdir(parents=True)
    torch.save(_released_blob(tiny_model), tmp_path / "torch_hub" / "checkpoints" / VARIANTS["ijepa_vith14_1k"].filename)
    return ijepa_hub.from_pretrained("ijepa_vith14_1k", with_context_encoder=True, with_predictor=True)


def test_card_of_converted_released_weights(released_model, tmp_path):
    meta, text = _card(released_model.save_pretrained(tmp_path / "released"))
    assert meta["license"] == "cc-by-nc-4.0" and meta["base_model"] == "facebook/ijepa_vith14_1k"
    assert meta["datasets"] == ["imagenet-1k"]
    (result,) = meta["model-index"][0]["results"]
    assert result["metrics"][0]["value"] == 79.3 and result["dataset"]["type"] == "imagenet-1k"
    assert "arxiv.org/abs/2301.08243" in result["source"]["url"]
    assert VARIANTS["ijepa_vith14_1k"].url in text and "non-commercial" in text


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_released_variant_renders_a_valid_card(name):
    variant = VARIANTS[name]
    card = render_model_card(variant.model_config, repo_id="me/x", encoder="target",
                             files={"target_encoder": "model.safetensors"}, variant=name)
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-nc-4.0" and meta["base_model"] == variant.hf_transformers_repo
    assert meta["datasets"] == [variant.dataset] and variant.url in str(card)
    if variant.imagenet_linear_top1 is None:
        assert "model-index" not in meta and "reports no ImageNet-1K linear-probe result" in str(card)
    else:
        assert card.data.eval_results[0].metric_value == variant.imagenet_linear_top1


def test_card_of_a_model_trained_here(tiny_recipe, tiny_model, tmp_path):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "trained", encoder="target", recipe=tiny_recipe,
                                       metrics={"steps": 12, "images_seen": 96, "final_loss": 0.25})
    meta, text = _card(folder)
    assert meta["license"] == "apache-2.0"
    assert not {"base_model", "model-index", "datasets"} & set(meta)
    assert "79.3" not in text and "dl.fbaipublicfiles.com" not in text
    assert f"| Recipe | `{tiny_recipe.name}` |" in text and "| Training steps | 12 (96 images seen) |" in text
    assert "| Training data | synthetic (built-in synthetic shapes, 256 images) |" in text
    assert "not Meta's released weights" in text and "final_loss | 0.25" in text


def test_card_of_a_model_trained_from_released_weights(released_model, tiny_recipe, tmp_path):
    folder = released_model.save_pretrained(tmp_path / "finetuned", recipe=tiny_recipe, metrics={"steps": 5})
    meta, text = _card(folder)
    assert meta["license"] == "cc-by-nc-4.0" and meta["base_model"] == "facebook/ijepa_vith14_1k"
    assert "model-index" not in meta and "79.3" not in text
    assert "starting from Meta's released `ijepa_vith14_1k` weights" in text
    ijepa = json.loads((folder / "config.json").read_text())["ijepa"]
    assert ijepa["base_variant"] == "ijepa_vith14_1k" and "variant" not in ijepa and "source_url" not in ijepa
    assert ijepa_hub.from_pretrained(folder).variant is None  # reloaded, it is not the release either


def test_card_of_torch_hub_random_weights_claims_nothing(tmp_path):
    model = torch.hub.load(str(REPO_ROOT), "ijepa_vith14", source="local", pretrained=False,
                           embed_dim=192, depth=2, num_heads=3, img_size=28, pred_embed_dim=96, pred_depth=1)  # small
    assert model.variant is None
    meta, text = _card(model.save_pretrained(tmp_path / "random"))
    assert meta["license"] == "apache-2.0" and not {"base_model", "model-index", "datasets"} & set(meta)
    assert "79.3" not in text and "dl.fbaipublicfiles.com" not in text and "No training is recorded" in text


def test_root_model_card_is_the_real_card_of_the_released_variants():
    text = (REPO_ROOT / "MODEL_CARD.md").read_text()
    assert not re.search(r"\$[a-z_]+", text.replace("$TORCH_HOME", ""))  # no template placeholders
    assert yaml.safe_load(text.split("---\n")[1])["license"] == "cc-by-nc-4.0"
    for name, variant in VARIANTS.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
        assert f"`{variant.filename}`" in row and f"| {variant.epochs} |" in row
        top1 = variant.imagenet_linear_top1
        assert (f"| {top1} % |" if top1 is not None else "| not reported |") in row
        assert variant.hf_transformers_repo in text
    assert "torch.hub.load(" in text and "from_pretrained(" in text and "CC BY-NC 4.0" in text
