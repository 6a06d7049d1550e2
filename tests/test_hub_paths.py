"""A path that does not exist is reported as such at once, never retried as a Hub repo id."""
import time

import pytest
from huggingface_hub.errors import RepositoryNotFoundError

import ijepa_hub
from ijepa_hub.hub import load as hub_load


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.setattr(hub_load, "hf_hub_download", lambda *a, **k: pytest.fail("tried the Hub"))


@pytest.mark.parametrize("source", ["runs/nothere", "./nothere", "../nothere", "/nothere/model", "~/nothere-ijepa",
                                    "weights.safetensors", "runs/a/b", "IN1K-vit.h.14-300e.pth"])
def test_missing_local_paths_fail_at_once_naming_the_folder(source, tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # so "runs/nothere" is a mistyped local path, not a repo id
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=f"no local folder '{source}'"):
        ijepa_hub.from_pretrained(source)
    with pytest.raises(FileNotFoundError, match=f"no local folder '{source}'"):
        ijepa_hub.hub.read_config(source)
    assert time.monotonic() - start < 1.0


def test_owner_name_without_a_local_folder_tries_the_hub_and_says_both(hub_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = len(hub_server.requests)
    with pytest.raises(RepositoryNotFoundError, match="nothere/model: no such repo on .*no local folder "
                                                      "'nothere/model' either. Fix: check the repo id"):
        ijepa_hub.from_pretrained("nothere/model")
    assert len(hub_server.requests) > before  # asked the (loopback) Hub once it could not be a local path
