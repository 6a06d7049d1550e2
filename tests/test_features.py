"""extract_features: inputs of every kind agree, batching is transparent, the pooled feature is the paper's."""
import numpy as np
import pytest
import torch
from PIL import Image

import ijepa_hub
from ijepa_hub.data.images import load_image
from ijepa_hub.features import preprocess


@pytest.fixture(scope="module")
def encoder(tiny_model):
    return tiny_model.target_encoder


def test_path_pil_numpy_and_tensor_give_the_same_features(encoder, images, tmp_path):
    array = images[0]
    Image.fromarray(array).save(tmp_path / "img.png")
    inputs = [tmp_path / "img.png", str(tmp_path / "img.png"), Image.fromarray(array), array,
              torch.from_numpy(array).permute(2, 0, 1), torch.from_numpy(array).permute(2, 0, 1).float() / 255]
    feats = [ijepa_hub.extract_features(encoder, x).pooled for x in inputs]
    for f in feats[1:]:
        assert torch.allclose(f, feats[0], atol=1e-6, rtol=0)


def test_batched_equals_one_by_one_and_pooled_is_the_token_mean(encoder, images):
    batched = ijepa_hub.extract_features(encoder, images, batch_size=3)
    single = [ijepa_hub.extract_features(encoder, x) for x in images]
    assert batched.pooled.shape == (4, 192) and batched.patch_tokens.shape == (4, 4, 192)
    assert torch.allclose(batched.pooled, torch.cat([s.pooled for s in single]), atol=1e-5, rtol=0)
    assert torch.allclose(batched.pooled, batched.patch_tokens.mean(1), atol=1e-6, rtol=0)
    x = torch.stack([preprocess(i, 32) for i in images])
    with torch.no_grad():
        assert torch.allclose(batched.pooled, encoder.forward_pooled(x), atol=1e-5, rtol=0)


def test_layers_4_concatenates_the_last_four_normed_block_means(encoder, images):
    four = ijepa_hub.extract_features(encoder, images[:2], layers=4)
    one = ijepa_hub.extract_features(encoder, images[:2])
    assert four.pooled.shape == (2, 4 * 192)
    assert torch.allclose(four.pooled[:, -192:], one.pooled, atol=1e-6, rtol=0)
    x = torch.stack([preprocess(i, 32) for i in images[:2]])
    with torch.no_grad():
        h = encoder.patch_embed(x)
        h = encoder._pos_embed(h)
        outs = []
        for block in encoder.blocks:
            h = block(h)
            outs.append(encoder.norm(h).mean(1))
    assert torch.allclose(four.pooled, torch.cat(outs[-4:], dim=1), atol=1e-5, rtol=0)


def test_grayscale_rgba_16bit_and_exif_rotation(tmp_path, images):
    rgb = images[1]
    gray = rgb[:, :, 0]
    assert torch.equal(load_image(Image.fromarray(gray)), load_image(np.repeat(gray[:, :, None], 3, axis=2)))
    opaque = np.concatenate([rgb, np.full_like(rgb[:, :, :1], 255)], axis=2)
    assert torch.equal(load_image(Image.fromarray(opaque, "RGBA")), load_image(rgb))
    clear = opaque.copy()
    clear[:, :, 3] = 0
    assert torch.equal(load_image(clear), torch.ones(3, *rgb.shape[:2]))  # composited onto white
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit PNG
    assert torch.allclose(load_image(tmp_path / "g16.png"), load_image(gray), atol=1e-7, rtol=0)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(tmp_path / "rot.png", exif=exif.tobytes())
    assert torch.equal(load_image(tmp_path / "rot.png"), load_image(np.ascontiguousarray(np.rot90(rgb, k=-1))))


def test_preprocess_follows_timms_data_config_up_to_resampling(images):
    import timm.data

    x = preprocess(images[3], 32)  # 50x70 -> shorter side 36 -> centre 32x32
    assert x.shape == (3, 32, 32)
    timm_transform = timm.data.create_transform(input_size=(3, 32, 32), interpolation="bicubic",
                                                crop_pct=ijepa_hub.data.transforms.CROP_PCT, crop_mode="center")
    reference = timm_transform(Image.fromarray(images[3]))
    assert (x - reference).abs().mean() < 0.05  # same geometry and statistics; PIL vs torch resampling


def test_dtype_autocast_and_input_errors(encoder, images):
    fp32 = ijepa_hub.extract_features(encoder, images[:2]).pooled
    bf16 = ijepa_hub.extract_features(encoder, images[:2], dtype=torch.bfloat16).pooled
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert torch.allclose(bf16, fp32, atol=0.1, rtol=0)
    assert encoder.training is False and not torch.is_inference_mode_enabled()
    with pytest.raises(TypeError, match="cannot read an image"):
        ijepa_hub.extract_features(encoder, 3.5)
    with pytest.raises(ValueError, match="layers must be in 1..12"):
        ijepa_hub.extract_features(encoder, images[0], layers=13)
