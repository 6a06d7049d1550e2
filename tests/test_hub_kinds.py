"""config.json says the repo kind (``ijepa.kind``); repos written before the field load as before; the models'
save_pretrained / push_to_hub methods write their own kind through the one push function."""
from __future__ import annotations

import json

import pytest
import torch
from huggingface_hub import hf_hub_download

import ijepa_hub
from ijepa_hub.errors import HubLayoutError
from ijepa_hub.hub import CLASSIFIER_KIND, ENCODER_KIND, repo_kind
from ijepa_hub.models import Classifier


@pytest.fixture
def classifier(tiny_model) -> Classifier:
    torch.manual_seed(1)
    return Classifier(tiny_model.config, ["cat", "dog"]).eval()


def _config(folder):
    return json.loads((folder / "config.json").read_text())


def _drop_kind(folder) -> None:  # a repo as written before the field
    data = _config(folder)
    del data["ijepa"]["kind"]
    (folder / "config.json").write_text(json.dumps(data))


def test_each_kind_is_written_and_read_back(tiny_model, classifier, tmp_path):
    encoder = tiny_model.save_pretrained(tmp_path / "enc")
    clf = classifier.save_pretrained(tmp_path / "clf")
    assert _config(encoder)["ijepa"]["kind"] == ENCODER_KIND and _config(clf)["ijepa"]["kind"] == CLASSIFIER_KIND
    assert isinstance(ijepa_hub.from_pretrained(encoder), ijepa_hub.PretrainedIJepa)
    loaded = ijepa_hub.from_pretrained(clf)
    assert isinstance(loaded, Classifier) and isinstance(loaded, ijepa_hub.PretrainedModel)
    assert torch.equal(loaded.head.weight, classifier.head.weight)


def test_repos_written_before_the_kind_field_load_as_before(tiny_model, classifier, tmp_path):
    encoder, clf = tiny_model.save_pretrained(tmp_path / "enc"), classifier.save_pretrained(tmp_path / "clf")
    _drop_kind(encoder)
    _drop_kind(clf)
    assert repo_kind(_config(encoder)) == ENCODER_KIND and repo_kind(_config(clf)) == CLASSIFIER_KIND
    assert isinstance(ijepa_hub.from_pretrained(encoder), ijepa_hub.PretrainedIJepa)
    assert isinstance(ijepa_hub.from_pretrained(clf), Classifier)


def test_an_unknown_kind_names_the_folder_and_the_fix(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    data = _config(folder)
    data["ijepa"]["kind"] = "student"
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(HubLayoutError, match=r"m: config.json says ijepa.kind='student'.*upgrade ijepa_hub"):
        ijepa_hub.from_pretrained(folder)


def test_model_methods_push_their_own_kind(hub_server, tiny_model, classifier):
    tiny_model.push_to_hub("tester/kind-encoder", with_predictor=False)
    classifier.push_to_hub("tester/kind-classifier", commit_message="a classifier")
    encoder_config = json.load(open(hf_hub_download("tester/kind-encoder", "config.json")))
    assert encoder_config["ijepa"]["kind"] == ENCODER_KIND and "predictor" not in encoder_config["ijepa"]["files"]
    pulled = ijepa_hub.from_pretrained("tester/kind-classifier")
    assert isinstance(pulled, Classifier) and pulled.label_names == ["cat", "dog"]
    assert torch.equal(pulled.head.weight, classifier.head.weight)


def test_the_method_saves_the_models_own_feature_encoder(tiny_model, tmp_path):
    context = ijepa_hub.from_pretrained(tiny_model.save_pretrained(tmp_path / "full"), encoder="context")
    folder = context.save_pretrained(tmp_path / "ctx")  # the function's default (target) is not in this model
    assert _config(folder)["ijepa"]["encoder"] == "context"
    with pytest.raises(HubLayoutError, match="no target encoder"):
        ijepa_hub.save_pretrained(context, tmp_path / "fn")
