"""Hostile and unusual image files: feature extraction names the broken file, training skips and names it,
and decodable oddities (1x1, CMYK, 16-bit, palette with transparency, animated GIF, EXIF rotation) give the
same pixels in training and in feature extraction."""
from __future__ import annotations

import io
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ijepa_hub
from ijepa_hub.data import ImageFolder, TarShards, TrainingSamples, training_transform
from ijepa_hub.data.images import load_image
from ijepa_hub.data.pipeline import load_rgb
from ijepa_hub.errors import DataError, ImageReadError
from ijepa_hub.hub.cli import main as hub_cli

RNG = np.random.default_rng(0)
NOISE = RNG.integers(0, 256, size=(48, 40, 3), dtype=np.uint8)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` pixels, with almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(NOISE).save(buf, format="JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])


BROKEN: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # kind: (file name, writer, what the message says)
    "truncated_jpeg": ("cut.jpg", _truncated_jpeg, "truncated"),
    "zero_bytes": ("empty.png", lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
    "not_an_image": ("page.jpg", lambda p: p.write_bytes(b"<html><body>404 Not Found</body></html>"),
                     "cannot identify image file"),
    "decompression_bomb": ("bomb.png", lambda p: _png_header_only(p, 20000, 20000), "MAX_IMAGE_PIXELS"),
}


@pytest.fixture(scope="module")
def encoder(tiny_model):
    return tiny_model.target_encoder


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_is_an_error_naming_it_in_extraction_and_a_named_skip_in_training(kind, encoder, tmp_path):
    name, write, reason = BROKEN[kind]
    for good in ("a.png", "c.png"):
        Image.fromarray(NOISE).save(tmp_path / good)
    write(tmp_path / name.replace(name.split(".")[0], "b"))
    bad = next(tmp_path.glob("b.*"))
    with pytest.raises(ImageReadError, match=reason) as err:
        ijepa_hub.extract_features(encoder, [tmp_path / "a.png", bad])
    assert str(err.value).startswith(f"{bad}: ") and "Fix:" in str(err.value) and err.value.path == str(bad)

    samples = TrainingSamples(ImageFolder(tmp_path), training_transform(16), img_size=16, min_fraction=0.47)
    image, _, _, skipped = samples[(1, 7, 0)]  # b.* is index 1: replaced by the next readable image, c.png
    assert skipped == (str(bad),)
    assert torch.equal(image, samples[(2, 7, 0)][0])  # the same seed crops c.png identically


def _one_pixel(path: Path) -> np.ndarray:
    Image.new("RGB", (1, 1), (200, 30, 60)).save(path)
    return np.full((1, 1, 3), (200, 30, 60), dtype=np.uint8)


def _cmyk_jpeg(path: Path) -> np.ndarray:
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(path, quality=95)
    return np.full((12, 16, 3), (255, 0, 0), dtype=np.uint8)


def _png_16bit(path: Path) -> np.ndarray:
    grey = NOISE[:, :, 0]
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)  # full 16-bit range: 65535 is white
    return np.repeat(grey[:, :, None], 3, axis=2)


def _palette_with_transparency(path: Path) -> np.ndarray:
    index = (np.arange(8 * 6).reshape(6, 8) % 2).astype(np.uint8)  # 0: transparent, 1: red
    image = Image.fromarray(index, "P")
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.save(path, transparency=0)
    return np.where(index[:, :, None] == 0, np.uint8(255), np.array([255, 0, 0], dtype=np.uint8))


def _animated_gif(path: Path) -> np.ndarray:
    frames = [Image.new("RGB", (10, 8), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return np.full((8, 10, 3), (255, 0, 0), dtype=np.uint8)  # the first frame


def _exif_rotated(path: Path) -> np.ndarray:
    image = Image.fromarray(NOISE)
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    image.save(path, exif=exif.tobytes())
    return np.ascontiguousarray(np.rot90(NOISE, k=-1))


UNUSUAL = {
    # kind: (file name, writer returning the upright 8-bit RGB pixels, tolerance in 8-bit levels)
    "1x1": ("one.png", _one_pixel, 0),
    "cmyk_jpeg": ("cmyk.jpg", _cmyk_jpeg, 2),
    "png_16bit": ("grey16.png", _png_16bit, 0),
    "palette_transparency": ("pal.png", _palette_with_transparency, 0),
    "animated_gif": ("anim.gif", _animated_gif, 0),
    "exif_rotation": ("rot.png", _exif_rotated, 0),
}


@pytest.mark.parametrize("kind", sorted(UNUSUAL))
def test_unusual_image_gives_the_same_pixels_in_training_and_extraction(kind, encoder, tmp_path):
    name, write, tol = UNUSUAL[kind]
    expected = write(tmp_path / name)
    trained = np.asarray(load_rgb(tmp_path / name, 32, 0.47))  # what the training transform receives
    assert trained.shape == expected.shape and trained.dtype == np.uint8
    assert np.abs(trained.astype(int) - expected).max() <= tol
    extracted = load_image(tmp_path / name)  # what extract_features preprocesses
    assert extracted.shape == (3, *expected.shape[:2])
    assert (extracted - torch.from_numpy(expected).permute(2, 0, 1) / 255).abs().max() <= tol / 255 + 1e-6
    ours = ijepa_hub.extract_features(encoder, tmp_path / name).pooled
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, ijepa_hub.extract_features(encoder, trained).pooled, atol=1e-5, rtol=0)


def test_extract_cli_names_the_broken_file_and_writes_nothing(tiny_model, tmp_path, capsys):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "model", with_predictor=False)
    (tmp_path / "images").mkdir()
    Image.fromarray(NOISE).save(tmp_path / "images" / "good.png")
    _truncated_jpeg(tmp_path / "images" / "broken.jpg")
    out = tmp_path / "feats.npy"
    # fatal with --strict; by default the file is skipped and counted (issue 17, test_robustness_sources.py)
    assert hub_cli(["extract", str(folder), str(tmp_path / "images"), str(out), "--strict"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'images' / 'broken.jpg'}: cannot decode the image" in err and "Traceback" not in err
    assert not out.exists()


def test_a_dataset_of_nothing_but_broken_files_is_an_error_not_a_loop(tmp_path):
    for name, write, _ in BROKEN.values():
        write(tmp_path / name)
    samples = TrainingSamples(ImageFolder(tmp_path), training_transform(16), img_size=16, min_fraction=0.47)
    with pytest.raises(DataError, match=r"4 images in a row cannot be decoded.*Fix: check --data"):
        samples[(0, 0, 0)]


def _shard(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_truncated_tar_shard_is_an_error_naming_it(tmp_path):
    png = io.BytesIO()
    Image.fromarray(NOISE).save(png, format="PNG")
    _shard(tmp_path / "s-0.tar", {f"k{i}.png": png.getvalue() for i in range(3)})
    data = (tmp_path / "s-0.tar").read_bytes()
    (tmp_path / "s-1.tar").write_bytes(data[: len(data) // 2 + 100])  # cut inside the second member
    with pytest.raises(DataError, match=r"s-1\.tar: not a readable tar shard.*Fix:"):
        TarShards(str(tmp_path / "s-{0..1}.tar"))


def test_corrupt_member_of_a_shard_is_skipped_and_named(tmp_path):
    png = io.BytesIO()
    Image.fromarray(NOISE).save(png, format="PNG")
    _shard(tmp_path / "s.tar", {"k0.png": png.getvalue(), "k1.png": png.getvalue()[:200], "k2.png": png.getvalue()})
    shards = TarShards(str(tmp_path / "s.tar"))
    samples = TrainingSamples(shards, training_transform(16), img_size=16, min_fraction=0.47)
    image, _, _, skipped = samples[(1, 3, 0)]
    assert skipped == (f"{tmp_path / 's.tar'}:k1.png",)
    assert torch.equal(image, samples[(2, 3, 0)][0])
