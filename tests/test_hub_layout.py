"""save_pretrained / from_pretrained on local folders: which file holds which network, and the errors."""
import json

import pytest
import torch

import ijepa_hub
from ijepa_hub.hub.layout import parse_config


def _equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_context_encoder_repo_and_resave_from_the_loaded_model(tiny_model, tmp_path):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "a", encoder="context", with_predictor=False,
                                       metrics={"rankme": 150.2}, license="mit")
    config = json.loads((folder / "config.json").read_text())
    assert config["ijepa"]["files"] == {"context_encoder": "model.safetensors"}
    assert "license: mit" in (folder / "README.md").read_text()
    with pytest.raises(ijepa_hub.HubLayoutError, match=r"not \['target_encoder'\].*encoder='target'"):
        ijepa_hub.from_pretrained(folder)
    loaded = ijepa_hub.from_pretrained(folder, encoder="context")
    assert _equal(loaded.encoder, tiny_model.context_encoder)
    again = ijepa_hub.from_pretrained(loaded.save_pretrained(tmp_path / "b"), encoder="context")
    assert _equal(again.encoder, tiny_model.context_encoder)
    with pytest.raises(ijepa_hub.HubLayoutError, match="no target encoder.*encoder='context'"):
        ijepa_hub.save_pretrained(loaded, tmp_path / "c")


def test_resaving_drops_files_no_longer_written(tiny_model, tmp_path):
    ijepa_hub.save_pretrained(tiny_model, tmp_path / "r")
    assert (tmp_path / "r" / "predictor.safetensors").exists()
    ijepa_hub.save_pretrained(tiny_model, tmp_path / "r", with_predictor=False, with_context_encoder=False)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    with pytest.raises(ijepa_hub.HubLayoutError, match="predictor"):
        ijepa_hub.from_pretrained(tmp_path / "r", with_predictor=True)


def test_config_errors_name_the_source_and_the_fix(tiny_model, tmp_path):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "v", with_predictor=False)
    data = json.loads((folder / "config.json").read_text())
    assert parse_config(data, source="x").model == tiny_model.config
    data["ijepa"]["format_version"] = 99
    with pytest.raises(ijepa_hub.HubLayoutError, match="x: config.json format_version 99.*upgrade ijepa_hub"):
        parse_config(data, source="x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ijepa_hub.HubLayoutError, match="empty has no config.json"):
        ijepa_hub.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a folder, a checkpoint file"):
        ijepa_hub.from_pretrained("no such thing")
