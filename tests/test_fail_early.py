"""Fail early, leave nothing behind (issue 26 item 8): a run failing before its first checkpoint leaves its folder
reusable, push targets are checked before training, exports never overwrite another model, a resume on other
data is refused by name, a mistyped hfds/ folder fails at once."""
from __future__ import annotations

import copy
import time

import huggingface_hub.constants
import numpy as np
import pytest
from PIL import Image
from test_finetune import TINY_AUGMENTED

import ijepa_hub
import ijepa_hub.train.loop as loop
from ijepa_hub.data.hf_datasets import open_split
from ijepa_hub.deploy import export_deployable
from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from ijepa_hub.errors import CheckpointError, DataError, HubLayoutError, PushToHubError, RunFolderError
from ijepa_hub.finetune import finetune
from ijepa_hub.finetune.cli import main as finetune_cli
from ijepa_hub.finetune.cli import parse_args as ft_parse_args
from ijepa_hub.train import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _run(recipe, out, steps=1, **kwargs):
    recipe = copy.deepcopy(recipe)
    recipe.train.max_steps = steps
    return train(recipe, out_dir=out, progress=False, export=False, **kwargs)


# --- (a) a run that wrote no checkpoint leaves the folder reusable ---------------------------------------------

@pytest.mark.parametrize("existing", [False, True])
def test_a_run_failing_at_step_1_leaves_the_folder_reusable(existing, tiny_recipe, tmp_path, monkeypatch):
    out = tmp_path / "run"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")

    def broken(*args, **kwargs):
        raise RuntimeError("the data is broken")

    with monkeypatch.context() as m:
        m.setattr(loop, "train_step", broken)
        with pytest.raises(RuntimeError, match="the data is broken"):
            _run(tiny_recipe, out)
    left = {p.name for p in out.iterdir()} - {".lock"} if out.exists() else set()  # an emptied lock file stays
    assert left == ({"notes.txt"} if existing else set()) and out.exists() == existing
    assert _run(tiny_recipe, out).step == 1  # the same command, the data fixed


def test_a_previous_runs_records_are_never_removed(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("recipe.yaml", "metrics.jsonl"):  # a run killed before its first checkpoint
        (out / name).write_text("theirs\n")
    with pytest.raises(RunFolderError, match="holds a previous run's output"):
        _run(tiny_recipe, out)
    assert all((out / n).read_text() == "theirs\n" for n in ("recipe.yaml", "metrics.jsonl"))


# --- (b) --push-to-hub checked before training ----------------------------------------------------------------

@pytest.mark.parametrize("problem", ["invalid", "offline"])
def test_push_problems_are_refused_before_training_in_both_tasks(problem, tiny_recipe, tmp_path, monkeypatch):
    repo = "not a/valid repo" if problem == "invalid" else "tester/fine"
    if problem == "offline":
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    expected = "is not a Hub repo id" if problem == "invalid" else "HF_HUB_OFFLINE=1 forbids uploads"
    with pytest.raises(PushToHubError, match=expected):
        _run(tiny_recipe, tmp_path / "train", push_to_hub=repo)
    with pytest.raises(PushToHubError, match=expected):
        finetune(ft_parse_args(TINY_AUGMENTED)[0], out_dir=tmp_path / "ft", push_to_hub=repo, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing built, nothing written


def test_the_finetune_cli_refuses_a_bad_repo_id_in_one_line(tmp_path, capsys):
    start = time.monotonic()
    assert finetune_cli([*TINY_AUGMENTED, "--out", str(tmp_path / "ft"), "--push-to-hub", "a/b/c"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "--push-to-hub 'a/b/c' is not a Hub repo id" in errors[0]
    assert time.monotonic() - start < 30 and not (tmp_path / "ft").exists()


# --- (c) exports never overwrite another model ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_deployable_exports_refuse_a_folder_holding_another_model(fmt, tiny_model, tmp_path):
    model_folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "model")
    with pytest.raises(HubLayoutError, match=r"holds config.json, .*model.safetensors"):
        export_deployable(tiny_model, model_folder, format=fmt)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    name = "model.onnx" if fmt == "onnx" else "model.pt2"
    (theirs / name).write_bytes(b"someone else's model")
    with pytest.raises(HubLayoutError, match=f"holds {name}, which no {name} export wrote"):
        export_deployable(tiny_model, theirs, format=fmt)
    assert (theirs / name).read_bytes() == b"someone else's model"


# --- (d) another --data of the same size is refused by name ---------------------------------------------------

def _images(folder, seed: int) -> str:
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (32 + seed, 32, 3), dtype=np.uint8)).save(folder / f"{seed}_{i:02d}.png")
    return str(folder)


def test_resuming_on_other_data_of_the_same_size_is_refused_naming_both(tiny_recipe, tmp_path):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.data.path = _images(tmp_path / "a", 0)
    out = tmp_path / "run"
    _run(recipe, out)
    other = copy.deepcopy(recipe)
    other.data.path = _images(tmp_path / "b", 1)
    with pytest.raises(CheckpointError, match=r"written for other data \(.*/a, listing names:\w+\) than --data .*/b"):
        _run(other, out, steps=2, resume="auto")
    moved = copy.deepcopy(recipe)
    moved.data.path = str((tmp_path / "a").rename(tmp_path / "a_moved"))
    assert _run(moved, out, steps=2, resume="auto").step == 2  # the same files elsewhere: the same data

    state = load_checkpoint(out / CHECKPOINT_NAME)  # a checkpoint of an earlier version, without the record
    del state["data"]["fingerprint"]
    save_checkpoint(out / CHECKPOINT_NAME, {k: v for k, v in state.items() if k != "format"})
    assert _run(other, out, steps=3, resume="auto").step == 3
    assert load_checkpoint(out / CHECKPOINT_NAME)["data"]["fingerprint"].startswith("names:")


# --- (e) a mistyped hfds/ folder fails at once ----------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ("hfds/runs/my_dta", "the folder runs/my_dta does not exist"),  # runs/ exists here: a local path
    ("hfds/data/sets/cifar", "is neither a local folder nor a Hub dataset id"),
])
def test_a_mistyped_local_hfds_name_fails_without_asking_the_hub(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    start = time.monotonic()
    with pytest.raises(DataError, match=message):
        open_split(spec, "train")
    assert time.monotonic() - start < 2


def test_finetune_data_of_synthetic_spec_records_the_spec(tmp_path):
    recipe = ft_parse_args([*TINY_AUGMENTED, "--train.max_steps", "1"])[0]
    finetune(recipe, out_dir=tmp_path / "ft", progress=False, export=False)
    assert load_checkpoint(tmp_path / "ft" / CHECKPOINT_NAME)["data"]["fingerprint"] == "spec:synthetic"


def _shard(path, members: list[str]) -> str:
    import io
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name in members:
            buf = io.BytesIO()
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    return str(path)


def test_shard_listings_are_their_members_wherever_the_shards_are(tmp_path):
    from ijepa_hub.data.identity import data_fingerprint, dataset_listing
    from ijepa_hub.data.webdataset import TarShards

    def fingerprint(path: str) -> str:
        return data_fingerprint(path, dataset_listing(TarShards(path)))

    a = fingerprint(_shard(tmp_path / "a" / "s-0.tar", ["x.png", "y.png"]))
    assert a.startswith("names:") and a == fingerprint(_shard(tmp_path / "moved" / "s-0.tar", ["x.png", "y.png"]))
    assert a != fingerprint(_shard(tmp_path / "b" / "s-0.tar", ["x.png", "z.png"]))
