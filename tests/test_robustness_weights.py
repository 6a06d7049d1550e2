"""Hostile weights and repos: damaged files, weights that do not fit, pickled code, broken config.json,
repos and revisions that do not exist, offline with an empty cache, and two processes sharing a cache.
Every case is an ijepa_hub or huggingface_hub error naming the file, key or repo and the fix."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from conftest import REPO_ROOT
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors.torch import load_file, save_file
from test_reference_checkpoint import write_released_layout
from test_robustness_training import _Payload

import ijepa_hub
from ijepa_hub.errors import (
    CheckpointError,
    HubLayoutError,
    PickleNotAllowedError,
    StateDictMismatchError,
    WeightsNotCachedError,
)


@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    """The tiny model saved with all three networks."""
    return ijepa_hub.save_pretrained(tiny_model, tmp_path / "repo")


def _edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_weights(folder: Path, name: str, edit) -> None:
    tensors = load_file(folder / name)
    edit(tensors)
    save_file(tensors, folder / name)


@pytest.mark.parametrize("damage", ["truncated", "html_error_page"])
def test_damaged_safetensors_is_an_error_naming_the_file(damage, folder):
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"<!DOCTYPE html><h1>502 Bad Gateway</h1>")
    with pytest.raises(CheckpointError, match="is not a readable safetensors file.*truncated or damaged.*Fix:") as err:
        ijepa_hub.from_pretrained(folder)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("field,value,listed", [
    ("embed_dim", 384, "shape or dtype mismatches"),  # a wider encoder than the weights
    ("pred_depth", 3, "unexpected keys"),  # a shallower predictor than the weights
])
def test_weights_that_do_not_fit_the_config_are_listed(field, value, listed, folder):
    _edit_config(folder, lambda c: c["ijepa"]["model"].update({field: value}))
    with pytest.raises(StateDictMismatchError, match=listed) as err:
        ijepa_hub.from_pretrained(folder, with_predictor=True)
    assert str(err.value).startswith(f"{folder}: ") and "Fix:" in str(err.value)


def test_integer_weights_are_a_dtype_mismatch(folder):
    _edit_weights(folder, "model.safetensors", lambda t: t.update({"norm.weight": t["norm.weight"].long()}))
    with pytest.raises(StateDictMismatchError, match="norm.weight: file dtype torch.int64 vs model torch.float32"):
        ijepa_hub.from_pretrained(folder)


def test_nan_weights_are_refused_naming_the_tensor(folder):
    _edit_weights(folder, "predictor.safetensors",
                  lambda t: t["predictor_norm.bias"].__setitem__(0, float("inf")))
    ijepa_hub.from_pretrained(folder)  # the predictor is not asked for: not read
    with pytest.raises(CheckpointError, match=r"predictor weights hold NaN or infinite values in 1 tensor\(s\): "
                                              r"predictor_norm\.bias"):
        ijepa_hub.from_pretrained(folder, with_predictor=True)


def test_predictor_file_listed_but_missing(folder):
    (folder / "predictor.safetensors").unlink()
    assert ijepa_hub.from_pretrained(folder).encoder is not None
    with pytest.raises(HubLayoutError, match="predictor.safetensors is listed in config.json but missing"):
        ijepa_hub.from_pretrained(folder, with_predictor=True)


def test_pickle_carrying_code_is_refused_and_never_run(folder, tmp_path):
    sentinel = tmp_path / "code-ran"
    torch.save({"pos_embed": torch.zeros(1), "evil": _Payload(sentinel)}, folder / "context_encoder.pt")
    (folder / "context_encoder.safetensors").unlink()
    _edit_config(folder, lambda c: c["ijepa"]["files"].update(context_encoder="context_encoder.pt"))
    with pytest.raises(PickleNotAllowedError, match="context_encoder.pt is a pickle file.*allow_pickle=True"):
        ijepa_hub.from_pretrained(folder, encoder="context")
    with pytest.raises(CheckpointError, match="refused to unpickle.*never executes pickled code"):
        ijepa_hub.from_pretrained(folder, encoder="context", allow_pickle=True)
    assert not sentinel.exists()


CONFIG_EDITS = {
    "unknown_model_field": (lambda c: c["ijepa"]["model"].update(num_registers=4), "unknown num_registers"),
    "missing_model_field": (lambda c: c["ijepa"]["model"].pop("img_size"), "missing img_size"),
    "wrongly_typed_field": (lambda c: c["ijepa"]["model"].update(patch_size="16"), "wrongly typed patch_size='16'"),
    "missing_section_field": (lambda c: c["ijepa"].pop("encoder"), "lacks ijepa.encoder"),
    "unknown_part": (lambda c: c["ijepa"]["files"].update(decoder="decoder.safetensors"), "'ijepa.files' is"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_EDITS))
def test_config_json_with_unknown_missing_or_mistyped_fields_names_them(case, folder):
    edit, says = CONFIG_EDITS[case]
    _edit_config(folder, edit)
    with pytest.raises(HubLayoutError, match=f"^{folder}: config.json") as err:
        ijepa_hub.from_pretrained(folder)
    assert says in str(err.value)


def test_config_json_that_is_not_json_names_the_file(folder):
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: len(text) // 2])
    with pytest.raises(HubLayoutError, match=f"{folder}: config.json is not valid JSON.*Fix:"):
        ijepa_hub.from_pretrained(folder)


def test_unknown_metadata_field_is_ignored_with_a_warning(folder, tiny_model, caplog):
    _edit_config(folder, lambda c: c["ijepa"].update(trained_by="someone"))
    with caplog.at_level(logging.WARNING, logger="ijepa_hub.hub.layout"):
        model = ijepa_hub.from_pretrained(folder)
    assert "ijepa.trained_by are unknown" in caplog.text
    assert torch.equal(model.encoder.pos_embed, tiny_model.target_encoder.pos_embed)


# --- the Hub ----------------------------------------------------------------------------------------------

REPO = "tester/robust-tiny"


@pytest.fixture(scope="module")
def pushed(hub_server, tiny_model) -> str:
    """The tiny model (all three networks) on the loopback Hub; returns the commit sha."""
    return ijepa_hub.push_to_hub(tiny_model, REPO).rstrip("/").rsplit("/", 1)[-1]


def test_missing_repo_and_revision_say_which_and_the_fix(pushed):
    with pytest.raises(RepositoryNotFoundError, match="tester/no-such-repo: no such repo on .* Fix: check the repo id"):
        ijepa_hub.from_pretrained("tester/no-such-repo")
    with pytest.raises(RevisionNotFoundError, match=f"{REPO}: no revision 'v9' .*Fix: check revision="):
        ijepa_hub.from_pretrained(REPO, revision="v9")


@pytest.mark.parametrize("how", ["local_files_only", "HF_HUB_OFFLINE"])
def test_offline_with_an_empty_cache_names_the_repo_and_the_cache(how, pushed, tmp_path, monkeypatch):
    kwargs = {"cache_dir": tmp_path / "empty-cache"}
    if how == "local_files_only":
        kwargs["local_files_only"] = True
    else:
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotCachedError, match=f"{REPO}: config.json is not in the Hugging Face cache") as err:
        ijepa_hub.from_pretrained(REPO, **kwargs)
    assert isinstance(err.value, LocalEntryNotFoundError)  # what huggingface_hub users already catch
    assert f"({tmp_path / 'empty-cache'})" in str(err.value) and f"({how}" in str(err.value)


@pytest.mark.parametrize("how", ["local_files_only", "HF_HUB_OFFLINE"])
def test_offline_released_variant_is_not_downloaded(how, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    kwargs = {"local_files_only": True} if how == "local_files_only" else {}
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    variant = ijepa_hub.get_variant("ijepa_vith14_1k")
    with pytest.raises(WeightsNotCachedError, match=f"{variant.url} is not in the torch hub cache") as err:
        ijepa_hub.from_pretrained(variant.name, **kwargs)
    assert str(tmp_path / "torch_hub" / "checkpoints" / variant.filename) in str(err.value)


_DOWNLOADER = """
import hashlib, json, sys, time
from pathlib import Path
import ijepa_hub

go, released, repo = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
while not go.exists():
    time.sleep(0.005)
model = ijepa_hub.from_pretrained(repo, with_context_encoder=True, with_predictor=True)
again = ijepa_hub.from_pretrained(released, with_context_encoder=True, with_predictor=True)
digest = lambda b: hashlib.sha256(b).hexdigest()
print(json.dumps({
    "weights": {k: digest(v.numpy().tobytes()) for k, v in model.state_dict().items()},
    "released": {k: digest(v.numpy().tobytes()) for k, v in again.state_dict().items()},
    "file": again.source,
}))
"""


def test_two_processes_fill_one_cache_with_the_same_files(pushed, tiny_model, tmp_path):
    released = tmp_path / "tiny-vit.t.16-3e.pth.tar"
    write_released_layout(tiny_model, released)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch"),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(_DOWNLOADER), str(go), released.as_uri(), REPO],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()  # both start downloading at about the same moment
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    assert first == second
    expected = {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in tiny_model.state_dict().items()}
    assert first["weights"] == first["released"] == expected
    snapshots = list((tmp_path / "hf" / "hub").glob("models--tester--robust-tiny/snapshots/*"))
    assert [s.name for s in snapshots] == [pushed]
    assert not list((tmp_path / "hf").rglob("*.incomplete"))
    downloaded = Path(first["file"])  # the released file, downloaded once into the shared torch hub cache
    assert downloaded.parent == tmp_path / "torch" / "hub" / "checkpoints"
    assert downloaded.name.endswith(f"-{released.name}")  # keyed on the whole URL (issue 17, item 4)
    assert downloaded.read_bytes() == released.read_bytes()
    # no half-downloaded leftovers: the file and its record only
    assert sorted(p.name for p in downloaded.parent.iterdir()) == [downloaded.name, downloaded.name + ".json"]
