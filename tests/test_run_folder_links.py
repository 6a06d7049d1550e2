"""Run-folder and export-folder files are never followed through links (issue 26 item 2): a symbolic link, a
dangling one or a FIFO where a run or an export writes is refused by name, and nothing is written through it."""
from __future__ import annotations

import copy
import os
import sys

import pytest

from ijepa_hub.deploy import export_deployable
from ijepa_hub.engine.checkpoint import save_checkpoint
from ijepa_hub.engine.metrics import MetricsWriter
from ijepa_hub.errors import RunFolderError
from ijepa_hub.hub.save import export_transformers
from ijepa_hub.train import train

pytestmark = [pytest.mark.usefixtures("torch_single_thread"),
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")]
RUN_FILES = [".lock", "recipe.yaml", "metrics.jsonl", "checkpoint.pt", "model"]


def _train(recipe, out, resume=None):
    recipe = copy.deepcopy(recipe)
    recipe.train.max_steps = 1
    return train(recipe, out_dir=out, resume=resume, progress=False, export=False)


@pytest.mark.parametrize("name", RUN_FILES)
def test_a_linked_run_file_is_refused_by_name_and_its_target_is_untouched(name, tiny_recipe, tmp_path):
    out, target = tmp_path / "run", tmp_path / "elsewhere" / name
    target.parent.mkdir()
    (target.mkdir() if name == "model" else target.write_text("precious\n"))
    out.mkdir()
    (out / name).symlink_to(target)
    with pytest.raises(RunFolderError, match=rf"{name} is a symbolic link .*Fix: remove the link"):
        _train(tiny_recipe, out)
    assert list(target.iterdir()) == [] if name == "model" else target.read_text() == "precious\n"
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == [name]


@pytest.mark.parametrize("name", ["recipe.yaml", "metrics.jsonl", "checkpoint.pt", ".lock"])
@pytest.mark.parametrize("resume", [None, "auto"])
def test_a_dangling_link_never_makes_the_run_write_outside_its_folder(name, resume, tiny_recipe, tmp_path):
    out, target = tmp_path / "run", tmp_path / "outside" / name
    out.mkdir()
    (out / name).symlink_to(target)
    with pytest.raises(RunFolderError, match=rf"{name} is a symbolic link"):
        _train(tiny_recipe, out, resume=resume)
    assert not target.parent.exists() and os.path.islink(out / name)


@pytest.mark.parametrize("name", [".lock", "recipe.yaml", "metrics.jsonl", "checkpoint.pt"])
def test_a_fifo_is_refused_naming_the_file(name, tiny_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / name)
    with pytest.raises(RunFolderError, match=rf"{name} is a FIFO, not a regular file"):
        _train(tiny_recipe, out)


def test_the_writers_refuse_links_themselves(tmp_path):
    target = tmp_path / "target"
    target.write_text("precious\n")
    (tmp_path / "metrics.jsonl").symlink_to(target)
    with pytest.raises(RunFolderError, match="metrics.jsonl is a symbolic link"):
        MetricsWriter(tmp_path, resume_step=3)
    (tmp_path / "checkpoint.pt").symlink_to(target)
    with pytest.raises(RunFolderError, match="checkpoint.pt is a symbolic link"):
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert target.read_text() == "precious\n" and [p.name for p in tmp_path.glob(".checkpoint.pt.*")] == []



@pytest.mark.parametrize("where", ["out", "parent"])
def test_an_out_that_is_a_file_is_refused_by_name_and_left_as_it_was(where, tiny_recipe, tmp_path):
    """`--out notes.txt` (or a folder under it) used to end in a bare "[Errno 17] File exists"."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("precious\n")
    out = blocker if where == "out" else blocker / "run"
    with pytest.raises(RunFolderError, match=rf"{out} cannot be a run folder: {blocker} exists and is not a folder"):
        _train(tiny_recipe, out)
    assert blocker.read_text() == "precious\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_an_out_that_links_to_a_folder_is_the_users_choice_and_is_followed(tiny_recipe, tmp_path):
    (tmp_path / "scratch").mkdir()
    (tmp_path / "run").symlink_to(tmp_path / "scratch")
    _train(tiny_recipe, tmp_path / "run")
    assert (tmp_path / "scratch" / "checkpoint.pt").is_file()

@pytest.mark.parametrize("kind", ["link", "dangling", "fifo"])
def test_export_folders_are_never_links_or_fifos(kind, tiny_model, tmp_path):
    out, target = tmp_path / "export", tmp_path / "elsewhere"
    if kind == "fifo":
        os.mkfifo(out)
    else:
        if kind == "link":
            target.mkdir()
        out.symlink_to(target)
    expected = "is a FIFO, not a regular folder" if kind == "fifo" else "is a symbolic link"
    with pytest.raises(RunFolderError, match=expected):
        export_deployable(tiny_model, out, format="torch-export")
    with pytest.raises(RunFolderError, match=expected):
        export_transformers(tiny_model.encoder, tiny_model.config, out)
    assert not target.exists() or list(target.iterdir()) == []
