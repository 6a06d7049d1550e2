"""save_pretrained writes a complete folder or nothing, with the usual file modes."""
import os

import pytest
import torch

import ijepa_hub
from ijepa_hub.hub import files as hub_files  # save_weights writes every weight file


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mode & 0o777) for p in sorted(folder.iterdir())}


def test_a_failure_mid_write_leaves_the_previous_folder_intact(tiny_model, tmp_path, monkeypatch):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "out", metrics={"rankme": 1.0})
    (folder / "notes.txt").write_text("mine")  # the user's own file beside the repo files
    before = _snapshot(folder)
    calls, real_save_file = [], hub_files.save_file

    def failing_save_file(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_save_file(*args, **kwargs)

    monkeypatch.setattr(hub_files, "save_file", failing_save_file)
    other = ijepa_hub.create_model("vit_tiny_patch16", img_size=32)
    with pytest.raises(OSError, match="No space left"):
        ijepa_hub.save_pretrained(other, folder, metrics={"rankme": 2.0})
    assert len(calls) == 2 and _snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary sibling left behind
    monkeypatch.undo()
    ijepa_hub.save_pretrained(other, folder, with_predictor=False)  # replaced in one piece; the user's file stays
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "context_encoder.safetensors", "model.safetensors", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"
    assert torch.equal(ijepa_hub.from_pretrained(folder).encoder.pos_embed, other.target_encoder.pos_embed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_files_get_the_usual_mode_not_tempfiles_0600(umask, file_mode, dir_mode, tiny_model, tmp_path):
    old = os.umask(umask)
    try:
        folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "m")
        exported = ijepa_hub.export_transformers(tiny_model.target_encoder, tiny_model.config, tmp_path / "tf")
    finally:
        os.umask(old)
    for path in [*folder.iterdir(), *exported.iterdir()]:
        assert path.stat().st_mode & 0o777 == file_mode, path
    assert folder.stat().st_mode & 0o777 == dir_mode and exported.stat().st_mode & 0o777 == dir_mode
