import pytest
import torch

import ijepa_hub
from ijepa_hub.registry import ARCHITECTURES, MODELS, VARIANTS

BLOCK_PARAMS = [
    f"{layer}.{kind}"
    for layer in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
    for kind in ("weight", "bias")
]


def released_encoder_keys(depth):
    keys = ["pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"]
    return set(keys + [f"blocks.{i}.{p}" for i in range(depth) for p in BLOCK_PARAMS])


def released_predictor_keys(depth):
    keys = ["mask_token", "predictor_pos_embed", "predictor_embed.weight", "predictor_embed.bias",
            "predictor_norm.weight", "predictor_norm.bias", "predictor_proj.weight", "predictor_proj.bias"]
    return set(keys + [f"predictor_blocks.{i}.{p}" for i in range(depth) for p in BLOCK_PARAMS])


@pytest.mark.parametrize(
    "variant, enc_depth, enc_tensors, enc_elements, pred_depth, pred_tensors, pred_elements",
    [
        ("ijepa_vith14_1k", 32, 389, 630_762_240, 12, 152, 22_377_728),
        ("ijepa_vitg16_22k", 40, 485, 1_011_368_576, 16, 200, 29_550_976),
    ],
)
def test_released_layout_on_meta(variant, enc_depth, enc_tensors, enc_elements, pred_depth, pred_tensors, pred_elements):
    with torch.device("meta"):
        model = ijepa_hub.create_model(variant)
    for encoder in (model.context_encoder, model.target_encoder):
        sd = encoder.state_dict()
        assert set(sd) == released_encoder_keys(enc_depth)
        assert len(sd) == enc_tensors
        assert sum(t.numel() for t in sd.values()) == enc_elements
    sd = model.predictor.state_dict()
    assert set(sd) == released_predictor_keys(pred_depth)
    assert len(sd) == pred_tensors
    assert sum(t.numel() for t in sd.values()) == pred_elements


def test_every_registry_name_builds_with_consistent_sizes():
    assert ijepa_hub.list_models() == sorted(MODELS)
    for name in ijepa_hub.list_models() + ijepa_hub.list_variants():
        with torch.device("meta"):
            model = ijepa_hub.create_model(name)
        cfg = model.config
        arch = ARCHITECTURES[cfg.arch]
        assert model.context_encoder.embed_dim == arch.embed_dim
        assert len(model.context_encoder.blocks) == arch.depth
        assert model.context_encoder.blocks[0].attn.num_heads == arch.num_heads
        assert model.context_encoder.blocks[0].mlp.fc1.out_features == arch.mlp_hidden_dim
        assert model.predictor.predictor_blocks[0].attn.num_heads == arch.num_heads  # heads = encoder's
        assert len(model.predictor.predictor_blocks) == cfg.pred_depth
        assert model.context_encoder.pos_embed.shape == (1, cfg.num_patches, arch.embed_dim)


def test_variants_read_their_recipes():
    expected = {
        "ijepa_vith14_1k": ("huge", 14, 224, 12),
        "ijepa_vith14_22k": ("huge", 14, 224, 12),
        "ijepa_vith16_448_1k": ("huge", 16, 448, 12),
        "ijepa_vitg16_22k": ("giant", 16, 224, 16),
    }
    assert set(VARIANTS) == set(expected)
    for name, (arch, patch, size, pred_depth) in expected.items():
        cfg = ijepa_hub.get_model_config(name)
        assert (cfg.arch, cfg.patch_size, cfg.img_size, cfg.pred_depth, cfg.pred_embed_dim) == (
            arch, patch, size, pred_depth, 384)
        assert VARIANTS[name].url.startswith("https://dl.fbaipublicfiles.com/ijepa/")


@pytest.mark.parametrize("recipe, warmup, epochs, per_device", [
    ("in1k_vith14", 40, 300, 128), ("in1k_vith16_448", 40, 300, 16),
    ("in22k_vith14", 3, 66, 32), ("in22k_vitg16", 3, 44, 16),
])
def test_released_recipes_hold_the_published_hyperparameters(recipe, warmup, epochs, per_device):
    r = ijepa_hub.load_recipe(recipe)
    o, m = r.optim, r.mask
    assert (o.batch_size, o.epochs, o.warmup_epochs, o.start_lr, o.lr, o.final_lr) == (2048, epochs, warmup, 2e-4, 1e-3, 1e-6)
    assert (o.weight_decay, o.final_weight_decay, o.ema, o.betas, o.eps, o.clip_grad, o.loss) == (
        0.04, 0.4, (0.996, 1.0), (0.9, 0.999), 1e-8, None, "smooth_l1")
    assert (m.mode, m.num_targets, m.target_scale, m.target_aspect, m.context_scale, m.min_keep) == (
        "legacy", 4, (0.15, 0.2), (0.75, 1.5), (0.85, 1.0), 10)
    assert r.data.crop_scale == (0.3, 1.0) and r.data.batch_size_per_device == per_device


def test_unknown_names_are_clear_errors():
    with pytest.raises(KeyError, match="vit_tiny_patch16"):
        ijepa_hub.create_model("vit_tiny")
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ijepa_hub.create_model("vit_tiny_patch16", img_size=50)
