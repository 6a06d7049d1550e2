"""Issue 26 item 7, the old leftovers: every hostile input below is one error naming the file, key or option and
the fix (a command line: one line and a non-zero exit), raised before anything is built or written. Weights in
fp16 / bf16 / fp64 load, cast to the model's dtype; 8-bit floats are refused by dtype."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import datasets  # in the test extra
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_reference_checkpoint import write_released_layout

import ijepa_hub
import ijepa_hub.eval.cache as feature_cache
from ijepa_hub.data.hf_datasets import open_split
from ijepa_hub.data.webdataset import TarShards, brace_count, expand_braces
from ijepa_hub.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint
from ijepa_hub.engine.distributed import init_distributed
from ijepa_hub.engine.resume import Resume
from ijepa_hub.errors import CheckpointError, DataError, HubLayoutError
from ijepa_hub.limits import MAX_SHARDS
from ijepa_hub.train.cli import main as train_cli


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory) -> Path:
    """The tiny model saved with all three networks (copied by the tests that damage it)."""
    return ijepa_hub.save_pretrained(tiny_model, tmp_path_factory.mktemp("saved") / "repo", with_context_encoder=True,
                                     with_predictor=True)


def _copy(saved: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(saved, tmp_path / "repo"))


# --- weights stored in another float dtype ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_weights_in_another_float_dtype_load_cast_to_the_models(dtype, saved, tiny_model, tmp_path, caplog):
    folder = _copy(saved, tmp_path)
    save_file({k: v.to(dtype) for k, v in load_file(folder / "model.safetensors").items()}, folder / "model.safetensors")
    with caplog.at_level(logging.INFO, logger="ijepa_hub"):
        model = ijepa_hub.from_pretrained(folder, with_context_encoder=True)
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # not a mixed-dtype model
    expected = {k: v.to(dtype).float() for k, v in tiny_model.target_encoder.state_dict().items()}
    assert all(torch.equal(v, expected[k]) for k, v in model.target_encoder.state_dict().items())
    assert f"stored as {str(dtype).replace('torch.', '')}; cast to float32" in caplog.text


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_8_bit_float_weights_are_refused_by_dtype(dtype, saved, tmp_path):
    folder = _copy(saved, tmp_path)
    save_file({k: v.to(dtype) for k, v in load_file(folder / "model.safetensors").items()}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"target encoder weights are stored as 8-bit floats.*{dtype}.*Fix:"):
        ijepa_hub.from_pretrained(folder)


# --- config.json ---------------------------------------------------------------------------------------------------

def _edit(folder: Path, text: str | None = None, **ijepa) -> None:
    if text is None:
        config = json.loads((folder / "config.json").read_text())
        config["ijepa"].update(ijepa)
        text = json.dumps(config)
    (folder / "config.json").write_text(text)


@pytest.mark.parametrize("text", ["[" * 200_000, '{"ijepa": ' + "[" * 200_000 + "]" * 200_000 + "}"])
def test_a_deeply_nested_config_json_is_one_error_naming_it(text, saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _edit(folder, text)
    with pytest.raises(HubLayoutError, match="config.json nests arrays or objects too deeply") as err:
        ijepa_hub.from_pretrained(folder)
    assert str(folder) in str(err.value) and len(str(err.value)) < 400


@pytest.mark.parametrize(("key", "value"), [
    ("encoder", ["target"]), ("encoder", {"a": 1}), ("encoder", 3), ("encoder", None),
    ("kind", ["encoder"]), ("variant", [1]),
])
def test_a_wrongly_typed_ijepa_field_is_named_with_the_type_expected(key, value, saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _edit(folder, **{key: value})
    with pytest.raises(HubLayoutError, match=rf"'ijepa\.{key}' is .*\(a {type(value).__name__}\), not a"):
        ijepa_hub.from_pretrained(folder)


# --- released-layout .pth.tar ---------------------------------------------------------------------------------------

PTH_CASES = [
    ("encoder", "pos_embed", 3, "'module.pos_embed' \\(int\\)"),
    ("encoder", "pos_embed", torch.zeros(4, 192), "encoder 'pos_embed' is a 2-D tensor \\(4, 192\\), not the 3-D"),
    ("encoder", "patch_embed.proj.weight", torch.zeros(192, 192), "'patch_embed.proj.weight' is a 2-D tensor"),
    ("encoder", "blocks.0.mlp.fc1.weight", torch.tensor(5.0), "'blocks.0.mlp.fc1.weight' is a 0-D tensor"),
    ("encoder", "norm.weight", "abc", "'module.norm.weight' \\(str\\)"),
    ("target_encoder", "norm.bias", 1, "'target_encoder' weights .* 'module.norm.bias' \\(int\\)"),
    ("predictor", "predictor_embed.weight", torch.zeros(96), "predictor 'predictor_embed.weight' is a 1-D tensor"),
    ("predictor", "mask_token", 3, "'module.mask_token' \\(int\\)"),
    ("target_encoder", "pos_embed", "f8", "8-bit floats \\(pos_embed \\(torch.float8_e4m3fn\\)\\)"),
]


@pytest.mark.parametrize(("part", "key", "value", "message"), PTH_CASES)
def test_a_pth_tar_entry_of_the_wrong_type_or_rank_is_named(part, key, value, message, tiny_model, tmp_path):
    path = tmp_path / "damaged.pth.tar"
    write_released_layout(tiny_model, path)
    blob = torch.load(path, weights_only=True)
    original = blob[part][f"module.{key}"]
    blob[part][f"module.{key}"] = original.to(torch.float8_e4m3fn) if value == "f8" else value
    torch.save(blob, path)
    for load in (ijepa_hub.from_pretrained, ijepa_hub.load_reference_checkpoint):
        with pytest.raises(CheckpointError, match=message) as err:
            load(path)
        assert str(path) in str(err.value)


# --- exported models named as a source ------------------------------------------------------------------------------

def test_an_exported_model_as_source_is_named_as_an_export(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch")  # what any ONNX file starts with: a protobuf, not a pickle
    for load in (ijepa_hub.from_pretrained, ijepa_hub.load_reference_checkpoint):  # ijepa-hub info reads the latter
        with pytest.raises(CheckpointError, match="is an exported ONNX model, not a checkpoint.*onnxruntime"):
            load(onnx)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.pt2").write_bytes(b"PK\x03\x04")
    with pytest.raises(CheckpointError, match="model.pt2 is a torch.export program"):
        ijepa_hub.from_pretrained(tmp_path / "export")  # the folder an export wrote


# --- damaged run checkpoints ----------------------------------------------------------------------------------------

def _state(**changes):
    state = {"step": 2, "recipe": {}, "model": {"w": torch.zeros(2)}, "optimizer": {"state": {}, "param_groups": []},
             "schedules": {}, "rng": [rng_state()], "data": {"broken_images": 0}, "threads": 1}
    state.update(changes)
    return state


DAMAGED = [
    (dict(step=10**12 + 1), "'step' is 1000000000001"), (dict(step=-5), "'step' is -5"),
    (dict(step="2"), "'step' is 2 \\(of type str\\)"), (dict(step=2.5), "'step' is 2.5"), (dict(step=True), "'step'"),
    (dict(model=3), "'model' is not a mapping"), (dict(model={"w": 3}), "'model' is not a mapping"),
    (dict(optimizer=[1]), "'optimizer' is of type list"), (dict(optimizer={"state": {}}), "'param_groups' list"),
    (dict(schedules=1), "'schedules' is of type int"), (dict(recipe=[1]), "'recipe' is of type list"),
    (dict(data=3), "'data' is of type int"), (dict(data={"broken_images": "x"}), "'data.broken_images' is x"),
    (dict(rng=1), "'rng' is not a list"), (dict(rng=[{}]), "'rng' is not a list"), (dict(rng=[]), "'rng'"),
    (dict(threads="x"), "'threads' is x"), (dict(threads=0), "'threads' is 0"),
]


@pytest.mark.parametrize(("changes", "message"), DAMAGED)
def test_a_damaged_checkpoint_entry_is_named_on_reading(changes, message, tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", _state(**changes))
    with pytest.raises(CheckpointError, match=f"checkpoint {path}: .*{message}.*Fix:"):
        load_checkpoint(path)


def test_an_intact_checkpoint_reads_and_damaged_task_or_rng_state_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", _state(monitor=3))
    resume = Resume(path, load_checkpoint(path))
    run = SimpleNamespace(schedules=SimpleNamespace(total_steps=64))
    with pytest.raises(CheckpointError, match="its 'monitor' state is damaged \\(TypeError"):
        resume.load_extra("monitor", SimpleNamespace(load_state_dict=lambda s: s["history"]))
    resume.state["rng"][0]["torch"] = torch.zeros(3, dtype=torch.uint8)
    with pytest.raises(CheckpointError, match="RNG state of rank 0 cannot be restored"):
        resume.restore_rng(SimpleNamespace(world_size=1, rank=0), seed=0)
    resume.state["step"] = 65
    with pytest.raises(CheckpointError, match="its step 65 is beyond this run's 64 steps"):
        resume.check_run(run)


# --- feature cache entries of the wrong shape -----------------------------------------------------------------------

@pytest.mark.parametrize("stored", [torch.zeros(5, 192), torch.zeros(2), torch.zeros(2, 192, dtype=torch.int64)])
def test_a_cache_entry_of_the_wrong_shape_is_extracted_again(stored, tiny_model, tmp_path, caplog):
    images = [np.full((32, 32, 3), v, np.uint8) for v in (0, 80)]
    kwargs = dict(fingerprint="two", weights_key="w", cache_dir=tmp_path)
    first = feature_cache.cached_features(tiny_model.target_encoder, images, **kwargs)
    (cached,) = tmp_path.glob("*.safetensors")
    save_file({"pooled": stored}, cached)
    with caplog.at_level(logging.WARNING, logger="ijepa_hub.eval"):
        again = feature_cache.cached_features(tiny_model.target_encoder, images, **kwargs)
    assert torch.equal(again, first) and "not a float tensor of shape 2x*; extracting again" in caplog.text
    assert torch.equal(load_file(cached)["pooled"], first)  # replaced


# --- brace patterns ---------------------------------------------------------------------------------------------------

def test_a_huge_brace_pattern_is_refused_before_expanding_in_a_short_line(tmp_path):
    pattern = str(tmp_path / "shard-{000000..999999999}.tar")
    assert brace_count(pattern) == 10**9 and brace_count("{a,b}-{1..3}-{5..1}") == 0
    start = time.perf_counter()
    with pytest.raises(DataError, match=f"names 1000000000 files, over the {MAX_SHARDS} shards") as err:
        TarShards(pattern)
    assert time.perf_counter() - start < 5 and len(str(err.value)) < 500
    assert len(expand_braces("{0..1023}-{a,b}.tar")) == 2048


def test_missing_shards_are_listed_a_few_then_counted(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        TarShards(str(tmp_path / "s-{0000..9999}.tar"))
    assert "s-0000.tar" in str(err.value) and "(10000 missing in all)" in str(err.value) and len(str(err.value)) < 500


# --- an empty hfds/ split, --train.device cuda, and the command line ------------------------------------------------

def test_an_empty_saved_split_is_named(tmp_path):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    empty = datasets.Dataset.from_dict({"image": [], "label": []}, features=features)
    datasets.DatasetDict(train=empty).save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="the split 'train' was saved with no rows"):
        open_split(f"hfds/{tmp_path / 'empty'}", "train")


def test_num_classes_is_refused_for_synthetic_segmentation_not_ignored():
    from ijepa_hub.eval.segdata import segmentation_splits

    with pytest.raises(ValueError, match="--num-classes 1: .*Fix: drop --num-classes"):
        segmentation_splits("synthetic", num_classes=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_train_device_cuda_without_cuda_is_a_value_error_naming_the_key():
    with pytest.raises(ValueError, match="train.device=cuda: CUDA is not available.*--train.device cpu"):
        init_distributed("cuda")


@pytest.mark.parametrize("source", ["model.onnx", "brace", "deep"])
def test_the_trainer_refuses_these_in_one_line_and_writes_nothing(source, saved, tmp_path, capsys):
    if source == "model.onnx":
        (tmp_path / source).write_bytes(b"\x08\x07")
        args, expected = ["--init", str(tmp_path / source)], "is an exported ONNX model"
    elif source == "brace":
        args, expected = ["--data", str(tmp_path / "x-{000000..999999999}.tar")], "names 1000000000 files"
    else:
        folder = _copy(saved, tmp_path)
        _edit(folder, "[" * 200_000)
        args, expected = ["--init", str(folder)], "config.json nests arrays"
    out = tmp_path / "run"
    assert train_cli([*args, "--model.img_size", "32", "--out", str(out)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0] and errors[0].startswith("ijepa-train: error:")
    assert not out.exists()
