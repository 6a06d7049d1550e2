"""Each renamed public name keeps a deprecated alias for one minor version: it warns (FutureWarning, naming the
new spelling) and behaves as the new name."""
from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import ijepa_hub
from ijepa_hub.errors import HubLayoutError


def test_hub_save_push_folder_is_push_to_hub(tmp_path):
    from ijepa_hub.hub import save

    with pytest.warns(FutureWarning, match=r"push_folder is deprecated.*ijepa_hub\.push_to_hub"):
        with pytest.raises(HubLayoutError, match="has no config.json"):  # checked before any network call
            save.push_folder(tmp_path, "tester/x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(HubLayoutError, match="has no config.json"):
            ijepa_hub.push_to_hub(tmp_path, "tester/x")  # the new name: the same check, no warning


def test_hub_push_folder_attribute_is_push_to_hub():
    import ijepa_hub.hub as hub

    with pytest.warns(FutureWarning, match=r"ijepa_hub\.hub\.push_folder is deprecated.*ijepa_hub\.push_to_hub"):
        alias = hub.push_folder
    assert alias is ijepa_hub.push_to_hub


def test_deploy_export_model_is_export_deployable(tiny_model, tmp_path):
    from ijepa_hub import deploy

    with pytest.warns(FutureWarning, match=r"export_model is deprecated.*ijepa_hub\.export_deployable"):
        with pytest.raises(ValueError, match="format must be one of"):
            deploy.export_model(tiny_model, tmp_path / "out", format="tflite")
    assert deploy.export_model.__wrapped__ is deploy.export_deployable is ijepa_hub.export_deployable


def test_encoder_choice_is_encoder_name():
    from ijepa_hub.hub import model

    with pytest.warns(FutureWarning, match=r"EncoderChoice is deprecated.*ijepa_hub\.EncoderName"):
        from ijepa_hub.hub.model import EncoderChoice
    assert EncoderChoice is ijepa_hub.EncoderName is model.EncoderName
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        model.NoSuchName  # noqa: B018


def test_released_module_moved_but_hub_released_names_still_import():
    old = importlib.import_module("ijepa_hub.hub.released")
    new = importlib.import_module("ijepa_hub.released")
    assert all(getattr(old, name) is getattr(new, name) for name in old.__all__)


def test_importing_the_package_and_the_new_names_warns_nothing():
    code = ("import warnings; warnings.simplefilter('error'); import ijepa_hub, ijepa_hub.hub.cli, ijepa_hub.train.cli, "
            "ijepa_hub.finetune.cli; from ijepa_hub import push_to_hub, export_deployable, EncoderName, PretrainedModel")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_export_names_warn_and_write_the_same_folder(tiny_model, tiny_recipe, tmp_path):
    from ijepa_hub.train import export

    with pytest.warns(FutureWarning, match=r"export_model is deprecated.*save_pretrained"):
        folder = export.export_model(tiny_model, tmp_path / "a", recipe=tiny_recipe, metrics={"steps": 1})
    assert (folder / "model.safetensors").is_file() and (folder / "predictor.safetensors").is_file()
    assert export.push_model.__wrapped__ is ijepa_hub.push_to_hub
