"""Hugging Face ``datasets`` as data (hfds/, hfids/): a dataset made here, saved with ``save_to_disk`` and
written as parquet files, one image in it damaged. The loopback test Hub serves model repos only, so the
streaming source is read through the local parquet files."""
from __future__ import annotations

import copy
import io
import json
import logging
import shutil
import signal
import subprocess
import sys

import datasets  # in the test extra
import numpy as np
import pytest
import torch
from PIL import Image
from test_train_cli import _env, _logged_steps, _train_cmd, _wait_for_step

from ijepa_hub.data import HFImages, HFImageStream, build_dataset
from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME, check_resumable
from ijepa_hub.errors import CheckpointError, DataError, MissingExtraError
from ijepa_hub.eval.cli import main as eval_cli
from ijepa_hub.train import load_checkpoint, train
from ijepa_hub.train.cli import parse_args

pytestmark = pytest.mark.usefixtures("torch_single_thread")

N_TRAIN, N_TEST, DAMAGED = 16, 8, 5  # row DAMAGED of the train split is a truncated JPEG


def _encoded(i: int) -> bytes:
    """Image i: a noise picture, bright for class 1 and dark for class 0, PNG or JPEG by turns."""
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 128, size=(40 + i % 3 * 8, 48, 3), dtype=np.uint8) + 127 * (i % 2)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG" if i % 3 == 0 else "PNG")
    return buffer.getvalue()


def _rows(first: int, n: int, damaged: int | None = None) -> dict[str, list]:
    images = [_encoded(i) for i in range(first, first + n)]
    if damaged is not None:
        images[damaged] = _encoded(0)[:300]  # a JPEG cut short
    return {
        "caption": [f"image {i}" for i in range(first, first + n)],
        "picture": [{"bytes": b, "path": f"{first + j:02d}.img"} for j, b in enumerate(images)],
        "kind": [i % 2 for i in range(first, first + n)],
    }


@pytest.fixture(scope="module")
def hf_data(tmp_path_factory):
    """``{'disk': save_to_disk folder, 'parquet': folder of parquet files, 'folder': the same train images as files}``."""
    root = tmp_path_factory.mktemp("hf")
    features = datasets.Features({
        "caption": datasets.Value("string"), "picture": datasets.Image(),
        "kind": datasets.ClassLabel(names=["dark", "bright"]),
    })
    splits = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(_rows(0, N_TRAIN, DAMAGED), features=features),
        test=datasets.Dataset.from_dict(_rows(100, N_TEST), features=features),
    )
    splits.save_to_disk(str(root / "disk"))
    (root / "parquet" / "data").mkdir(parents=True)
    for name, split in splits.items():
        split.to_parquet(str(root / "parquet" / "data" / f"{name}-00000-of-00001.parquet"))
    (root / "folder").mkdir()
    for j, cell in enumerate(splits["train"].cast_column("picture", datasets.Image(decode=False))["picture"]):
        (root / "folder" / f"{j:02d}.img.png").write_bytes(cell["bytes"])  # sorted as the rows are
    return {name: root / name for name in ("disk", "parquet", "folder")}


def _recipe(tiny_recipe, path: str, **data):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.data.path = path
    for key, value in data.items():
        setattr(recipe.data, key, value)
    return recipe


def _run(recipe, out, steps, **kwargs):
    recipe = copy.deepcopy(recipe)
    recipe.train.max_steps = steps
    return train(recipe, out_dir=out, progress=False, **kwargs)


def _weights(out):
    return load_checkpoint(out / CHECKPOINT_NAME)["model"]


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _broken_per_step(out) -> list[int]:
    return [json.loads(x)["broken_images"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


def test_map_style_sources_train_exactly_as_a_folder_of_the_same_images(hf_data, tiny_recipe, tmp_path, caplog):
    """hfds/ from save_to_disk and from parquet give the weights a folder of the same files gives, bit for bit;
    the damaged image is skipped, named and counted once per epoch (2 steps)."""
    runs = {}
    with caplog.at_level(logging.WARNING, logger="ijepa_hub.data.pipeline"):
        for name, path in (("folder", str(hf_data["folder"])), ("disk", f"hfds/{hf_data['disk']}"),
                           ("parquet", f"hfds/{hf_data['parquet']}")):
            result = _run(_recipe(tiny_recipe, path, max_broken_fraction=0.5), tmp_path / name, 3)
            assert result.step == 3 and all(np.isfinite(result.losses))
            assert sum(_broken_per_step(tmp_path / name)[:2]) == 1  # one epoch: every row drawn once
            runs[name] = _weights(tmp_path / name)
    assert _equal(runs["disk"], runs["folder"]) and _equal(runs["parquet"], runs["folder"])
    skipped = [r.getMessage() for r in caplog.records]
    assert any(f"[train][{DAMAGED}] ({DAMAGED:02d}.img)" in m for m in skipped), skipped


def test_columns_are_found_or_named_and_errors_name_the_column_and_the_split(hf_data):
    images = build_dataset(_recipe_data(path=f"hfds/{hf_data['disk']}"))
    assert isinstance(images, HFImages) and (images.image_column, images.label_column) == ("picture", "kind")
    assert len(images) == N_TRAIN and images[1][1] == 1
    for source in (f"hfds/{hf_data['disk']}", f"hfds/{hf_data['parquet']}", f"hfids/{hf_data['parquet']}"):
        with pytest.raises(DataError, match="'photo'.*data.image_column"):
            build_dataset(_recipe_data(path=source, image_column="photo"))
        with pytest.raises(DataError, match="'nope'"):
            build_dataset(_recipe_data(path=source, split="nope"))
    with pytest.raises(DataError, match="'caption' holds"):
        build_dataset(_recipe_data(path=f"hfds/{hf_data['disk']}", image_column="caption"))
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(_recipe_data(path="hfds/./no/such/folder"))


def _recipe_data(**data):
    from ijepa_hub.recipe import DataSection

    return DataSection(**data)


def test_missing_extra_says_how_to_install_it(monkeypatch, hf_data, model_dir, capsys):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'ijepa-hub\[datasets\]'.*pip install -e '\.\[datasets\]'"):
        build_dataset(_recipe_data(path=f"hfds/{hf_data['disk']}"))
    assert eval_cli(["knn", str(model_dir), "--data", f"hfds/{hf_data['disk']}"]) == 1
    err = capsys.readouterr().err
    assert "datasets package" in err and "ijepa-hub[datasets]" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    import ijepa_hub

    return ijepa_hub.save_pretrained(tiny_model, tmp_path_factory.mktemp("model"))


def test_knn_from_saved_and_parquet_datasets_leaves_out_the_damaged_image(hf_data, model_dir, tmp_path, capsys, caplog):
    results = {}
    for name in ("disk", "parquet"):
        out = tmp_path / f"{name}.json"
        with caplog.at_level(logging.WARNING, logger="ijepa_hub.eval.data"):
            assert eval_cli(["knn", str(model_dir), "--data", f"hfds/{hf_data[name]}", "--k", "3", "--cache-dir", "",
                             "--json", str(out)]) == 0, capsys.readouterr().err
        results[name] = json.loads(out.read_text())
        assert f"1 damaged image(s) left out: hfds/{hf_data[name]}[train][{DAMAGED}]" in caplog.text
        caplog.clear()
    assert results["disk"]["top1"] == results["parquet"]["top1"] and 0 <= results["disk"]["top1"] <= 100
    from ijepa_hub.eval.data import labelled_splits

    splits = labelled_splits(f"hfds/{hf_data['disk']}", label_column="kind")
    assert (len(splits.train_images), len(splits.test_images), splits.classes) == (N_TRAIN - 1, N_TEST, ["dark", "bright"])
    assert splits.test_labels.tolist() == [i % 2 for i in range(N_TEST)]
    assert len(labelled_splits(f"hfds/{hf_data['disk']}", test_fraction=0.25).test_images) == N_TEST  # not held out
    datasets.load_from_disk(str(hf_data["disk"]))["train"].save_to_disk(str(tmp_path / "only_train"))
    held_out = labelled_splits(f"hfds/{tmp_path / 'only_train'}", seed=0, test_fraction=0.25)
    assert held_out.test_labels.tolist().count(0) == 2 and held_out.test_labels.tolist().count(1) == 2  # 7 + 8 readable
    assert len(held_out.train_images) == N_TRAIN - 1 - 4
    with pytest.raises(DataError, match="hfds/"):
        labelled_splits(f"hfids/{hf_data['disk']}")
    assert eval_cli(["knn", str(model_dir), "--data", f"hfds/{hf_data['disk']}", "--data.label_column", "label"]) == 1
    assert "no column 'label'" in capsys.readouterr().err


def test_a_named_label_column_of_strings_gives_sorted_classes_shared_by_both_splits(tmp_path):
    features = datasets.Features({"picture": datasets.Image(), "animal": datasets.Value("string")})
    rows = _rows(0, 6)
    labels = ["dog", "cat", "dog", "emu", "cat", "dog"]
    train = datasets.Dataset.from_dict({"picture": rows["picture"], "animal": labels}, features=features)
    test = datasets.Dataset.from_dict({"picture": rows["picture"][:2], "animal": ["emu", "ant"]}, features=features)
    datasets.DatasetDict(train=train, validation=test).save_to_disk(str(tmp_path / "animals"))
    from ijepa_hub.eval.data import labelled_splits

    with pytest.raises(DataError, match="no ClassLabel column.*--data.label_column"):
        labelled_splits(f"hfds/{tmp_path / 'animals'}")
    splits = labelled_splits(f"hfds/{tmp_path / 'animals'}", label_column="animal")
    assert splits.classes == ["ant", "cat", "dog", "emu"]
    assert splits.train_labels.tolist() == [2, 1, 2, 3, 1, 2] and splits.test_labels.tolist() == [3, 0]


def test_resume_after_sigkill_is_bit_exact_for_a_map_style_dataset(hf_data, tiny_train_args, tmp_path):
    """The run is killed in a subprocess; the uninterrupted run and the resume run here, on the same recipe."""
    args = [*tiny_train_args, "--data", f"hfds/{hf_data['disk']}", "--data.max_broken_fraction", "0.5",
            "--optim.epochs", "3", "--train.checkpoint_every", "3"]  # 2 steps per epoch, 6 in all
    killed = tmp_path / "killed"
    victim = subprocess.Popen(_train_cmd([*args, "--out", str(killed)]), env=_env(), stdout=subprocess.PIPE, text=True)
    _wait_for_step(victim, killed, 4)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    interrupted_at = load_checkpoint(killed / CHECKPOINT_NAME)["step"]
    assert interrupted_at == 3
    recipe = parse_args(args)[0]
    resumed = train(recipe, out_dir=killed, resume="auto", progress=False)
    assert resumed.start_step == 3 and resumed.step == 6
    train(recipe, out_dir=tmp_path / "straight", progress=False)
    assert _equal(_weights(tmp_path / "straight"), _weights(killed)) and _logged_steps(killed) == list(range(1, 7))


def test_streaming_from_parquet_resumes_exactly_and_does_not_depend_on_the_workers(
    hf_data, tiny_recipe, tmp_path, monkeypatch
):
    # datasets waits 5 s whenever a shuffled parquet stream stops (an Arrow shutdown workaround); a test stops many
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)
    fresh = tmp_path / "fresh"  # parquet files no loader has read yet: their row count is not known
    shutil.copytree(hf_data["parquet"], fresh)
    with pytest.raises(DataError, match="stream_size"):
        build_dataset(_recipe_data(path=f"hfids/{fresh}"))
    source = f"hfids/{hf_data['parquet']}"
    recipe = _recipe(tiny_recipe, source, stream_size=N_TRAIN, shuffle_buffer=8, max_broken_fraction=0.5)
    assert isinstance(build_dataset(recipe.data), HFImageStream)
    straight = _run(recipe, tmp_path / "straight", 4)
    assert straight.step == 4 and sum(_broken_per_step(tmp_path / "straight")[:2]) == 1
    _run(recipe, tmp_path / "resumed", 2)
    _run(recipe, tmp_path / "resumed", 4, resume="auto")
    assert _equal(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))
    workers = copy.deepcopy(recipe)
    workers.train.num_workers = 2
    _run(workers, tmp_path / "workers", 4)
    assert _equal(_weights(tmp_path / "straight"), _weights(tmp_path / "workers"))


def test_each_rank_reads_its_own_part_of_the_stream(hf_data):
    stream = build_dataset(_recipe_data(path=f"hfids/{hf_data['parquet']}", stream_size=N_TRAIN, shuffle_buffer=0))
    names = [[item.name for item, _ in _take(stream.items(rank, 2), N_TRAIN // 2)] for rank in (0, 1)]
    assert not set(names[0]) & set(names[1]) and len(names[0]) == len(names[1]) == N_TRAIN // 2
    again = [item.name for item, _ in _take(stream.items(0, 2, skip=3), 2)]
    assert again == names[0][3:5]


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_a_checkpoint_written_before_the_dataset_keys_existed_still_resumes(tiny_recipe):
    old = tiny_recipe.to_dict()
    for key in ("split", "image_column", "label_column", "stream_size", "shuffle_buffer"):
        del old["data"][key]
    check_resumable({"recipe": old}, tiny_recipe.to_dict(), source="old.pt")  # absent keys count as defaults
    changed = copy.deepcopy(tiny_recipe)
    changed.data.split = "validation"
    with pytest.raises(CheckpointError, match="data.split: checkpoint 'train', now 'validation'"):
        check_resumable({"recipe": old}, changed.to_dict(), source="old.pt")


@pytest.mark.slow
def test_two_process_stream_resumes_exactly(hf_data, tiny_train_args, tmp_path):
    """torchrun, 2 processes (gloo), each reading its own shards of a streamed save_to_disk folder."""
    from test_train_distributed import _train

    args = [*tiny_train_args, "--data", f"hfids/{hf_data['disk']}", "--data.max_broken_fraction", "0.5",
            "--data.batch_size_per_device", "4", "--data.shuffle_buffer", "4"]
    _train([*args, "--train.max_steps", "4"], tmp_path / "straight", nproc=2)
    _train([*args, "--train.max_steps", "2"], tmp_path / "resumed", nproc=2)
    _train([*args, "--train.max_steps", "4", "--resume", "auto"], tmp_path / "resumed", nproc=2)
    assert _equal(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))
