"""The ijepa-hub CLI: extract, info, push (thin wrappers; the library is tested elsewhere)."""
import json

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi
from PIL import Image
from safetensors import safe_open

import ijepa_hub
from ijepa_hub.hub.cli import main as cli


def test_extract_writes_safetensors_and_npy(tiny_model, images, tmp_path, capsys):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "repo")
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for i, array in enumerate(images):
        Image.fromarray(array).save(tmp_path / "imgs" / ("sub" if i % 2 else "") / f"{i}.png")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    assert cli(["extract", str(folder), str(tmp_path / "imgs"), str(tmp_path / "f.safetensors"),
                "--batch-size", "3", "--patch-tokens", "--device", "cpu"]) == 0
    with safe_open(tmp_path / "f.safetensors", "pt") as f:
        pooled, tokens, meta = f.get_tensor("pooled"), f.get_tensor("patch_tokens"), f.metadata()
    paths = json.loads(meta["paths"])
    assert paths == ["0.png", "2.png", "sub/1.png", "sub/3.png"]
    order = [images[int(p[-5])] for p in paths]
    expected = ijepa_hub.extract_features(tiny_model.target_encoder, order)
    assert torch.allclose(pooled, expected.pooled, atol=1e-5, rtol=0) and tokens.shape == (4, 4, 192)
    assert cli(["extract", str(folder), str(tmp_path / "imgs"), str(tmp_path / "f.npy"), "--layers", "4",
                "--encoder", "context"]) == 0
    assert np.load(tmp_path / "f.npy").shape == (4, 768)
    assert (tmp_path / "f.txt").read_text().split() == paths
    with pytest.raises(SystemExit, match="2"):
        cli(["extract", str(folder), str(tmp_path / "imgs"), str(tmp_path / "f.csv")])


def test_info_and_push(tiny_model, tmp_path, hub_server, capsys):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "repo", with_predictor=False)
    assert cli(["info", "ijepa_vitg16_22k"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["model"]["embed_dim"], info["model"]["depth"]) == (1408, 40) and info["url"].endswith("IN22K-vit.g.16-600e.pth.tar")
    assert cli(["push", str(folder), "tester/cli-push", "--message", "from the CLI"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"{hub_server.endpoint}/tester/cli-push/commit/")
    assert set(HfApi().list_repo_files("tester/cli-push")) == {
        ".gitattributes", "README.md", "config.json", "model.safetensors", "context_encoder.safetensors"}
    assert cli(["info", "tester/cli-push"]) == 0
    assert json.loads(capsys.readouterr().out)["ijepa"]["files"]["target_encoder"] == "model.safetensors"
    assert cli(["info", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_a_missing_source_is_one_line_and_exit_1(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "model"
    assert cli(["export", str(missing), str(tmp_path / "out"), "--format", "transformers"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ijepa-hub export: error: ") and str(missing) in err
    assert err.count("\n") == 1 and "Traceback" not in err and not (tmp_path / "out").exists()
