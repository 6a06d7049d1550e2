"""Sources that must not be trusted blindly: downloads, exports, folders that name other files (issue 17)."""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
import torch
from test_reference_checkpoint import write_released_layout

import ijepa_hub
from ijepa_hub.errors import CheckpointError, HubLayoutError, PickleNotAllowedError
from ijepa_hub.released import cache_path


@pytest.fixture
def torch_hub_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    return tmp_path / "torch_hub"


def _tiny(seed: int):
    torch.manual_seed(seed)
    return ijepa_hub.create_model("vit_tiny_patch16", img_size=32, patch_size=8, pred_depth=2)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- 4. the download cache is keyed on the whole source and checked by content ---------------------------------

def test_two_urls_with_one_file_name_and_a_file_replaced_in_place_are_never_served_stale(tmp_path, torch_hub_dir):
    one, two = _tiny(1), _tiny(2)
    a, b = tmp_path / "a" / "ckpt.pth.tar", tmp_path / "b" / "ckpt.pth.tar"
    for model, path in ((one, a), (two, b)):
        path.parent.mkdir()
        write_released_layout(model, path)
    assert _same(ijepa_hub.load_reference_checkpoint(a.as_uri()).target_encoder, one.target_encoder)
    assert _same(ijepa_hub.load_reference_checkpoint(b.as_uri()).target_encoder, two.target_encoder)
    before = a.stat()
    shutil.copyfile(b, a)  # cp -p: new content, the old modification time
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _same(ijepa_hub.load_reference_checkpoint(a.as_uri()).target_encoder, two.target_encoder)


# --- 5. an HTML page is never cached as a checkpoint ----------------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


_PAGE = "<!DOCTYPE html>\n<html><body>Please log in to the proxy</body></html>\n"


def test_an_html_page_is_refused_and_never_cached_and_a_cached_one_is_named(web, torch_hub_dir, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    root, base = web
    (root / "ckpt.pth.tar").write_text(_PAGE)
    url = f"{base}/ckpt.pth.tar"
    with pytest.raises(CheckpointError, match="sent an HTML page.*nothing was cached"):
        ijepa_hub.load_reference_checkpoint(url)
    checkpoints = torch_hub_dir / "checkpoints"
    assert not checkpoints.exists() or list(checkpoints.iterdir()) == []
    cached = cache_path(url)  # what an older version left in the cache
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(_PAGE)
    with pytest.raises(CheckpointError, match=f"is an HTML page.*Fix: delete {cached}"):
        ijepa_hub.load_reference_checkpoint(url)


# --- 7 and 8. an export never overwrites a model, and an interrupted re-export leaves the old one whole -------------

def test_export_refuses_the_source_folder_and_any_folder_holding_a_model(tiny_model, tmp_path, capsys):
    from ijepa_hub.hub.cli import main as hub_cli

    out = tiny_model.save_pretrained(tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert hub_cli(["export", str(out), str(out), "--format", "transformers"]) == 1
    assert "is the source" in capsys.readouterr().err
    other = tiny_model.save_pretrained(tmp_path / "other")
    assert hub_cli(["export", str(other), str(out), "--format", "transformers"]) == 1
    assert f"{out} holds a model" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_an_interrupted_re_export_leaves_the_previous_export_whole(tiny_model, tmp_path, monkeypatch):
    import ijepa_hub.hub.save as save

    out = tmp_path / "hf"
    save.export_transformers(tiny_model.target_encoder, tiny_model.config, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = save.save_file

    def killed(tensors, path, **kwargs):
        real(tensors, path, **kwargs)  # the new weights are written, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(save, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        save.export_transformers(tiny_model.context_encoder, tiny_model.config, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no half-written sibling left
    monkeypatch.undo()
    assert _same(ijepa_hub.from_pretrained(out, encoder="context").encoder, tiny_model.target_encoder)


# --- 12 and 13. weights are judged by content, and stay inside their folder ---------------------------------------

@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    return ijepa_hub.save_pretrained(tiny_model, tmp_path / "repo")


def _point_predictor_at(folder: Path, name: str) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["ijepa"]["files"]["predictor"] = name
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("name", ["predictor.PT", "predictor.pickle", "predictor"])
def test_a_pickle_under_any_name_is_refused_without_allow_pickle(name, folder, tiny_model):
    torch.save(tiny_model.predictor.state_dict(), folder / name)
    _point_predictor_at(folder, name)
    with pytest.raises(PickleNotAllowedError, match=f"{name} .*allow_pickle=True"):
        ijepa_hub.from_pretrained(folder, with_predictor=True)
    assert _same(ijepa_hub.from_pretrained(folder, with_predictor=True, allow_pickle=True).predictor,
                 tiny_model.predictor)


def test_safetensors_under_another_name_loads_by_its_content(folder, tiny_model):
    (folder / "predictor.safetensors").rename(folder / "predictor.weights")
    _point_predictor_at(folder, "predictor.weights")
    assert _same(ijepa_hub.from_pretrained(folder, with_predictor=True).predictor, tiny_model.predictor)


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_weight_files_outside_the_folder_are_refused(where, folder, tiny_model, tmp_path):
    other = ijepa_hub.save_pretrained(tiny_model, tmp_path / "other") / "predictor.safetensors"
    _point_predictor_at(folder, str(other) if where == "absolute" else "../other/predictor.safetensors")
    with pytest.raises(HubLayoutError, match="a path that leaves the folder"):
        ijepa_hub.from_pretrained(folder, with_predictor=True)


# --- 14 and 15. a push uploads the model's own files, and only a model that loads ------------------------------------

def test_push_uploads_only_the_layout_and_refuses_links_leaving_the_folder(hub_server, folder, tmp_path):
    from huggingface_hub import HfApi

    from ijepa_hub.hub.save import push_to_hub

    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    (folder / "notes.txt").symlink_to(secret)
    (folder / "train.log").write_text("not part of the model")
    push_to_hub(folder, "tester/robust-push-layout")
    assert set(HfApi().list_repo_files("tester/robust-push-layout")) == {
        ".gitattributes", "README.md", "config.json", "model.safetensors", "context_encoder.safetensors",
        "predictor.safetensors"}
    outside = tmp_path / "elsewhere.safetensors"
    (folder / "predictor.safetensors").rename(outside)
    (folder / "predictor.safetensors").symlink_to(outside)
    with pytest.raises(HubLayoutError, match="predictor.safetensors leads outside"):
        push_to_hub(folder, "tester/robust-push-layout")


@pytest.mark.parametrize("damage", ["nan", "missing", "misfit"])
def test_push_refuses_a_folder_that_does_not_load(damage, hub_server, folder, capsys):
    from safetensors.torch import load_file, save_file

    from ijepa_hub.hub.cli import main as hub_cli

    if damage == "missing":
        (folder / "predictor.safetensors").unlink()
    else:
        tensors = load_file(folder / "predictor.safetensors")
        name = sorted(tensors)[0]
        tensors[name] = torch.full_like(tensors[name], float("nan")) if damage == "nan" else tensors[name][..., :1]
        save_file(tensors, folder / "predictor.safetensors")
    before = len(hub_server.requests)
    assert hub_cli(["push", str(folder), f"tester/robust-push-{damage}"]) == 1
    assert "does not load, so it was not pushed" in capsys.readouterr().err
    assert len(hub_server.requests) == before  # nothing was sent


# --- 10. loading is bounded: declared sizes are checked before anything is built or inflated ------------------------

@pytest.fixture
def no_build(monkeypatch):
    """Building a model (even on the meta device) fails the test: the refusal must come first."""
    import ijepa_hub.hub.load as load
    import ijepa_hub.reference as reference

    fail = lambda *a, **k: pytest.fail("a model was built before the check")  # noqa: E731
    monkeypatch.setattr(reference, "IJepa", fail)
    monkeypatch.setattr(load, "PretrainedIJepa", type("Fail", (), {"__init__": fail, "parts_for": staticmethod(
        load.PretrainedIJepa.parts_for)}))


def test_a_stray_block_index_is_refused_before_building(tiny_model, tmp_path, no_build):
    path = tmp_path / "stray.pth.tar"
    write_released_layout(tiny_model, path)
    blob = torch.load(path, weights_only=True)
    blob["predictor"]["module.predictor_blocks.20000.norm1.weight"] = torch.ones(96)
    torch.save(blob, path)
    for load in (ijepa_hub.load_reference_checkpoint, ijepa_hub.from_pretrained):
        with pytest.raises(CheckpointError, match=r"predictor_blocks blocks are numbered up to 20000 but only 7 exist \(stray: 20000\)"):
            load(path)


def test_a_zero_stride_tensor_is_refused(tiny_model, tmp_path):
    path = tmp_path / "strided.pth.tar"
    write_released_layout(tiny_model, path)
    size = path.stat().st_size
    blob = torch.load(path, weights_only=True)
    blob["encoder"]["module.pos_embed"] = torch.zeros(1, 1, 1).expand(1, 1 << 20, 192)  # 4 bytes stored, 805 MB declared
    torch.save(blob, path)
    assert path.stat().st_size < size  # the file shrank
    with pytest.raises(CheckpointError, match=r"tensor encoder.module.pos_embed declares shape \(1, 1048576, 192\)"):
        ijepa_hub.load_reference_checkpoint(path)


def test_an_archive_that_inflates_far_beyond_its_size_is_refused_before_reading(tmp_path, monkeypatch):
    import zipfile

    path = tmp_path / "bomb.pth.tar"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with z.open("archive/data/0", "w", force_zip64=True) as f:
            for _ in range(256):
                f.write(bytes(1 << 20))  # 256 MiB of zeros, a few hundred kB on disk
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the archive was read"))
    with pytest.raises(CheckpointError, match="inflates to 268435462 bytes from .* on disk"):
        ijepa_hub.load_reference_checkpoint(path)


def test_a_config_declaring_a_huge_model_is_refused_before_building(folder, no_build):
    config = json.loads((folder / "config.json").read_text())
    config["ijepa"]["model"]["pred_depth"] = 20000
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"predictor depth 20000, .*deeper than 320 blocks\); refused before building"):
        ijepa_hub.from_pretrained(folder)


# --- 11 and 11d. image inputs: only regular files, and float pixels in [0, 1] -------------------------------------------

def test_a_fifo_named_like_an_image_is_skipped_not_read(tmp_path, images):
    from PIL import Image

    from ijepa_hub.data.images import list_images
    from ijepa_hub.features import extract_folder

    folder = tmp_path / "images"
    folder.mkdir()
    for i, array in enumerate(images[:2]):
        Image.fromarray(array).save(folder / f"{i}.png")
    os.mkfifo(folder / "2.png")  # opening it for reading would wait for a writer forever
    assert list_images(folder) == [str(folder / "0.png"), str(folder / "1.png")]
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("extract hung on the FIFO"))
    signal.alarm(60)
    try:
        paths, feats = extract_folder(_tiny(0).target_encoder, folder, batch_size=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert paths == ["0.png", "1.png"] and feats.pooled.shape[0] == 2


@pytest.mark.parametrize("kind", ["tensor", "array"])
def test_float_pixels_outside_0_1_are_refused_not_read_as_white(kind):
    from ijepa_hub.data.images import load_image

    pixels = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255
    image = pixels if kind == "tensor" else pixels.permute(1, 2, 0).numpy()
    with pytest.raises(ValueError, match=r"float pixels are read as values in \[0, 1\], these span \[0.*, 25\d.*divide by 255"):
        load_image(image)
    with pytest.raises(ValueError, match="float pixels are read as values in"):
        ijepa_hub.extract_features(_tiny(0).target_encoder, [image])
    assert torch.equal(load_image(pixels / 255), (pixels / 255).float())  # in range: taken as it is


# --- 11b. one bad image does not cost an extraction its work ----------------------------------------------------------

def test_extract_skips_and_counts_a_bad_image_and_strict_makes_it_fatal(tiny_model, images, tmp_path, caplog):
    from PIL import Image
    from safetensors import safe_open

    from ijepa_hub.eval.cli import main as eval_cli

    model = tiny_model.save_pretrained(tmp_path / "model")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, array in enumerate(images[:3]):
        Image.fromarray(array).save(folder / f"{i}.png")
    (folder / "1b.png").write_bytes((folder / "1.png").read_bytes()[:60])  # truncated
    out = tmp_path / "features.safetensors"
    args = ["extract", str(model), str(folder), str(out), "--batch-size", "2", "--device", "cpu"]
    with caplog.at_level("WARNING", logger="ijepa_hub"):
        assert eval_cli(args) == 0
    with safe_open(out, "pt") as f:
        assert json.loads(f.metadata()["paths"]) == ["0.png", "1.png", "2.png"] and f.get_tensor("pooled").shape[0] == 3
    assert "1b.png" in caplog.text and "1 of 4 images could not be decoded" in caplog.text
    out.unlink()
    assert eval_cli([*args, "--strict"]) == 1 and not out.exists()
