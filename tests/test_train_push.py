"""``--push-to-hub`` when the upload fails: a PushToHubError that keeps the trained model on disk and
gives the command that pushes it again; that command then works."""
from __future__ import annotations

import copy
import shlex
import socket

import huggingface_hub
import huggingface_hub.constants
import pytest
import torch

import ijepa_hub
from ijepa_hub.errors import IJepaError, PushToHubError
from ijepa_hub.hub.cli import main as hub_cli
from ijepa_hub.hub.save import push_to_hub as push_model
from ijepa_hub.train import train
from ijepa_hub.train.cli import main as train_cli

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free again once closed: nothing listens there


def test_unreachable_hub_keeps_the_model_and_names_the_push_command(hub_server, tiny_recipe, tmp_path, monkeypatch):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.train.max_steps = 2
    with monkeypatch.context() as m:
        m.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
        with pytest.raises(PushToHubError) as err:
            train(recipe, out_dir=tmp_path / "run", progress=False, push_to_hub="tester/unreachable")
    folder = tmp_path / "run" / "model"
    command = f"ijepa-hub push {folder} tester/unreachable"
    assert isinstance(err.value, IJepaError) and f"safe in {folder}" in str(err.value)
    assert str(err.value).endswith(command) and "refused the connection" in str(err.value)
    local = ijepa_hub.from_pretrained(folder, with_context_encoder=True, with_predictor=True)
    assert hub_cli(shlex.split(command)[1:]) == 0  # the command the message gives, against the reachable Hub
    pulled = ijepa_hub.from_pretrained("tester/unreachable", with_context_encoder=True, with_predictor=True)
    assert all(torch.equal(v, local.state_dict()[k]) for k, v in pulled.state_dict().items())


def test_rejected_upload_is_one_error_line_from_the_cli(hub_server, tiny_train_args, tmp_path, monkeypatch, capsys):
    def refuse(folder, repo_id, **kwargs):  # an HTTP error answered by the (loopback) Hub
        huggingface_hub.HfApi().model_info("tester/no-such-repo")

    monkeypatch.setattr("ijepa_hub.hub.save._push_folder", refuse)
    out = tmp_path / "run"
    rc = train_cli([*tiny_train_args, "--train.max_steps", "1", "--out", str(out), "--no-progress",
                    "--push-to-hub", "tester/theirs"])
    assert rc == 1 and (out / "model" / "model.safetensors").is_file()
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ijepa-train: error:")]
    assert len(errors) == 1 and "RepositoryNotFoundError" in errors[0]
    assert errors[0].endswith(f"push it again with: ijepa-hub push {out / 'model'} tester/theirs")


def test_invalid_repo_id_is_a_push_error(tmp_path, tiny_model):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "model")
    with pytest.raises(PushToHubError, match="ijepa-hub push .*'not a/valid repo'"):
        push_model(folder, "not a/valid repo")
