"""Multi-layer and dense features: extract_features(layers=..., per_layer=...), Features.patch_map, and the
inherited timm / DINOv2 intermediate-layer methods, each against the computation written out block by block."""
import pytest
import torch
from conftest import REPO_ROOT

import ijepa_hub
from ijepa_hub.features import block_indices, preprocess, tokens_to_map
from ijepa_hub.models.pos_embed import resize_pos_embed


@pytest.fixture(scope="module")
def encoder(tiny_model):
    return tiny_model.target_encoder


def by_hand(encoder, x, norm=True):
    """Every block's output [B, N, D] (normed if ``norm``), written out block by block."""
    with torch.no_grad():
        b, _, hgt, wid = x.shape
        p = encoder.patch_embed.patch_size[0]
        h = encoder.patch_embed.proj(x).flatten(2).transpose(1, 2)  # [B, N, D], row-major patches
        pos = resize_pos_embed(encoder.pos_embed, encoder.patch_embed.grid_size, (hgt // p, wid // p))
        h = h + pos.reshape(1, -1, encoder.embed_dim)
        outs = []
        for block in encoder.blocks:
            h = block(h)
            outs.append(encoder.norm(h) if norm else h)
    return outs


def as_map(tokens, h, w):
    return tokens.reshape(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size", [32, 48])  # the native 2x2 grid and a 3x3 one
def test_timm_and_dinov2_methods_equal_the_block_by_block_computation(encoder, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    g = size // 16
    want = by_hand(encoder, x)
    raw = by_hand(encoder, x, norm=False)
    with torch.no_grad():
        nchw = encoder.forward_intermediates(x, indices=4, output_fmt="NCHW", intermediates_only=True)
        final, nlc = encoder.forward_intermediates(x, indices=[0, 5, -1], norm=True, output_fmt="NLC")
        dino = encoder.get_intermediate_layers(x, n=4, reshape=True, norm=True)
        dino_cls = encoder.get_intermediate_layers(x, n=[2, 7], norm=False, return_class_token=True)
    assert len(nchw) == 4 and len(nlc) == 3 and len(dino) == 4
    for got, i in zip(nchw, range(8, 12)):
        assert got.shape == (2, 192, g, g)
        torch.testing.assert_close(got, as_map(raw[i], g, g), atol=1e-5, rtol=0)
    for got, i in zip(nlc, (0, 5, 11)):
        torch.testing.assert_close(got, want[i], atol=1e-5, rtol=0)
    torch.testing.assert_close(final, want[-1], atol=1e-5, rtol=0)
    for got, i in zip(dino, range(8, 12)):
        torch.testing.assert_close(got, as_map(want[i], g, g), atol=1e-5, rtol=0)
    for (tokens, pooled), i in zip(dino_cls, (2, 7)):
        torch.testing.assert_close(tokens, raw[i], atol=1e-5, rtol=0)
        torch.testing.assert_close(pooled, raw[i].mean(1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [32, 48])
def test_extract_features_layers_and_patch_maps_equal_the_block_by_block_computation(encoder, images, size):
    x = torch.stack([preprocess(i, size) for i in images[:3]])
    want = by_hand(encoder, x)
    g = size // 16
    four = ijepa_hub.extract_features(encoder, x, layers=4, preprocessed=True, per_layer=True, batch_size=2)
    assert four.layers == (8, 9, 10, 11) and four.grid == (g, g)
    torch.testing.assert_close(four.pooled, torch.cat([w.mean(1) for w in want[-4:]], 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(four.patch_map, as_map(want[-1], g, g), atol=1e-5, rtol=0)
    assert len(four.layer_maps) == 4
    for got, w in zip(four.layer_maps, want[-4:]):
        torch.testing.assert_close(got, as_map(w, g, g), atol=1e-5, rtol=0)
    picked = ijepa_hub.extract_features(encoder, x, layers=[7, 2, -1], preprocessed=True)  # any order, negatives
    assert picked.layers == (2, 7, 11) and picked.layer_tokens is None
    torch.testing.assert_close(picked.pooled, torch.cat([want[i].mean(1) for i in (2, 7, 11)], 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(picked.patch_tokens, want[11], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="per_layer=True"):
        _ = picked.layer_maps


def test_layer_arguments_are_checked():
    assert block_indices(12, 1) == (11,) and block_indices(12, [-12, 0 + 3]) == (0, 3)
    for bad, message in ((0, "1..12"), (13, "1..12"), ([12], "-12..11"), ([], "-12..11"), ([1, -11], "repeat")):
        with pytest.raises(ValueError, match=message):
            block_indices(12, bad)
    with pytest.raises(ValueError, match="do not fill a 2x3 grid"):
        tokens_to_map(torch.zeros(1, 5, 4), (2, 3))


def test_non_square_inputs_give_maps_of_their_grid(encoder):
    x = torch.randn(1, 3, 32, 64)
    feats = ijepa_hub.extract_features(encoder, x, preprocessed=True)
    assert feats.grid == (2, 4) and feats.patch_map.shape == (1, 192, 2, 4)
    torch.testing.assert_close(feats.patch_map, as_map(by_hand(encoder, x)[-1], 2, 4), atol=1e-5, rtol=0)


def test_torch_hub_entrypoints_support_layers_and_dense_maps():
    small = dict(embed_dim=64, depth=3, num_heads=2, img_size=56)  # ViT-H/14's layout at a test size: 4x4 grid
    model = torch.hub.load(str(REPO_ROOT), "ijepa_vith14", source="local", pretrained=False, **small)
    x = torch.randn(2, 3, 56, 56)
    feats = model.extract_features(x, layers=[0, 2], preprocessed=True, per_layer=True)
    want = by_hand(model.encoder, x)
    assert feats.pooled.shape == (2, 128) and feats.patch_map.shape == (2, 64, 4, 4)
    torch.testing.assert_close(feats.layer_maps[0], as_map(want[0], 4, 4), atol=1e-5, rtol=0)
    with torch.no_grad():
        dino = model.encoder.get_intermediate_layers(x, n=2, reshape=True, norm=True)
        timm_maps = model.encoder.forward_intermediates(x, indices=2, norm=True, intermediates_only=True)
    for got, timm_map, w in zip(dino, timm_maps, want[1:]):
        torch.testing.assert_close(got, as_map(w, 4, 4), atol=1e-5, rtol=0)
        torch.testing.assert_close(timm_map, got, atol=0, rtol=0)
