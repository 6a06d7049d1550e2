"""Any ViT size, not only the presets: building, recipes, and every save / load round trip."""
import json

import pytest
import torch

import ijepa_hub
from ijepa_hub.errors import CheckpointError, RecipeError
from ijepa_hub.registry import MODELS, VARIANTS, ModelConfig, get_model_config

# a width no preset has, a depth and MLP ratio of its own, 2 heads, 8 px patches at 32 px
ODD = dict(embed_dim=64, depth=3, num_heads=2, mlp_ratio=3.0, img_size=32, patch_size=8, pred_embed_dim=32,
           pred_depth=2)


@pytest.fixture(scope="module")
def odd_model():
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch16", **ODD).eval()
    with torch.no_grad():
        for p in model.target_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def test_overrides_build_exactly_the_sizes_asked_for(odd_model):
    cfg = odd_model.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_hidden_dim, cfg.pred_num_heads) == (64, 3, 2, 192, 2)
    enc, pred = odd_model.context_encoder, odd_model.predictor
    assert len(enc.blocks) == 3 and enc.blocks[0].attn.num_heads == 2
    assert enc.blocks[0].mlp.fc1.weight.shape == (192, 64) and enc.pos_embed.shape == (1, 16, 64)
    assert len(pred.predictor_blocks) == 2 and pred.predictor_embed.weight.shape == (32, 64)
    assert (cfg.arch, cfg.name) == (None, "vit_custom_patch8")
    # a preset's own sizes keep its name, with any patch size, and that name is accepted back
    tiny8 = get_model_config("vit_tiny_patch16", patch_size=8, img_size=64)
    assert tiny8.name == "vit_tiny_patch8" and get_model_config(tiny8.name, img_size=64) == tiny8
    assert get_model_config("vit_tiny_patch16", depth=6).name == "vit_custom_patch16"


def test_predictor_heads_follow_the_encoder_unless_set():
    cfg = get_model_config("vit_small_patch16")
    assert cfg.pred_num_heads == 6 and cfg.replace(num_heads=12).pred_num_heads == 12
    assert cfg.replace(pred_num_heads=4).replace(num_heads=12).pred_num_heads == 4
    with torch.device("meta"):
        model = ijepa_hub.create_model("vit_small_patch16", pred_num_heads=4)
    assert model.predictor.predictor_blocks[0].attn.num_heads == 4


@pytest.mark.parametrize("overrides, message", [
    (dict(embed_dim=66, num_heads=2), "multiple of 4"),
    (dict(embed_dim=64, num_heads=3), "not divisible by num_heads 3"),
    (dict(pred_embed_dim=100), "pred_embed_dim 100 is not divisible by pred_num_heads 3"),
    (dict(depth=0), "depth=0"),
    (dict(colour="red"), "unknown model field"),
])
def test_impossible_sizes_are_refused_with_the_field_named(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ijepa_hub.create_model("vit_tiny_patch16", **overrides)


def test_variants_hold_the_architecture_of_their_recipes():
    for variant in VARIANTS.values():
        assert variant.model_config == ijepa_hub.load_recipe(variant.recipe).model_config(), variant.name
    assert get_model_config("ijepa_vith14") == VARIANTS["ijepa_vith14_1k"].model_config  # alias
    assert MODELS["vit_giant_patch16"].mlp_hidden_dim == 6144


def test_recipe_model_section_takes_the_same_keys_as_create_model():
    from ijepa_hub.train.cli import parse_args

    recipe, _ = parse_args(["--model.depth", "6", "--model.embed_dim", "256", "--model.num_heads", "4"])
    expected = get_model_config("vit_tiny_patch8", img_size=64, depth=6, embed_dim=256, num_heads=4,
                                pred_depth=6, pred_embed_dim=96)
    assert recipe.model_config() == expected
    # the name carries the patch size: naming another model is not silently overridden by the recipe's
    recipe, _ = parse_args(["--model.name", "vit_small_patch16"])
    assert (recipe.model_config().embed_dim, recipe.model_config().patch_size) == (384, 16)
    # refused when parsed: a recipe is validated (issue 26 item 4)
    with pytest.raises(RecipeError, match="model.patch_size 8 contradicts model.name 'vit_small_patch16'"):
        parse_args(["--model.name", "vit_small_patch16", "--model.patch_size", "8"])
    with pytest.raises(RecipeError, match="model.name: unknown model 'vit_tiny'"):
        parse_args(["--model.name", "vit_tiny"])


def test_save_and_from_pretrained_round_trip(odd_model, tmp_path, images):
    ijepa_hub.save_pretrained(odd_model, tmp_path / "repo")
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert config["ijepa"]["model"] == odd_model.config.to_dict()
    assert config["model_args"]["embed_dim"] == 64 and config["model_args"]["mlp_ratio"] == 3.0
    loaded = ijepa_hub.from_pretrained(tmp_path / "repo", with_context_encoder=True, with_predictor=True)
    assert loaded.config == odd_model.config
    for part in ("context_encoder", "target_encoder", "predictor"):
        ref = getattr(odd_model, part).state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in getattr(loaded, part).state_dict().items()), part
    assert torch.equal(loaded.extract_features(images).pooled,
                       ijepa_hub.extract_features(odd_model.target_encoder, images).pooled)


def test_timm_reads_a_pushed_repo_of_another_size(odd_model, hub_server):
    import timm

    ijepa_hub.push_to_hub(odd_model, "tester/odd-size")
    encoder = timm.create_model("hf-hub:tester/odd-size", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (encoder(x) - odd_model.target_encoder.forward_pooled(x)).abs().max() <= 1e-5


def test_transformers_export_and_import_round_trip(odd_model, tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = ijepa_hub.export_transformers(odd_model.target_encoder, odd_model.config, tmp_path / "hf")
    hf = transformers.IJepaModel.from_pretrained(folder).eval()
    assert (hf.config.hidden_size, hf.config.num_hidden_layers, hf.config.intermediate_size) == (64, 3, 192)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = odd_model.target_encoder(x)
        assert (hf(pixel_values=x).last_hidden_state - ours).abs().max() <= 1e-5
        back = ijepa_hub.from_pretrained(folder, encoder="context")
        assert (back.config.embed_dim, back.config.depth, back.config.num_heads) == (64, 3, 2)
        assert torch.equal(back.context_encoder(x), ours)


def _released_layout(model, path):
    torch.save({"encoder": model.context_encoder.state_dict(), "target_encoder": model.target_encoder.state_dict(),
                "predictor": model.predictor.state_dict(), "epoch": 1}, path)
    return path


def test_released_layout_of_another_width_needs_its_head_count(odd_model, tmp_path):
    path = _released_layout(odd_model, tmp_path / "odd.pth.tar")
    with pytest.raises(CheckpointError, match=r"width 64 matches no preset .* pass num_heads="):
        ijepa_hub.load_reference_checkpoint(path)
    loaded = ijepa_hub.load_reference_checkpoint(path, num_heads=2)
    assert loaded.config == odd_model.config
    assert torch.equal(loaded.target_encoder.pos_embed, odd_model.target_encoder.pos_embed)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval().target_encoder(x), odd_model.target_encoder(x))


def test_released_layout_of_a_preset_width_and_another_depth_needs_nothing(tmp_path):
    torch.manual_seed(1)
    shallow = ijepa_hub.create_model("vit_tiny_patch16", img_size=32, depth=6, pred_depth=2)
    loaded = ijepa_hub.load_reference_checkpoint(_released_layout(shallow, tmp_path / "tiny6.pth.tar"))
    assert loaded.config == shallow.config and loaded.config.depth == 6 and loaded.config.num_heads == 3


def test_repo_written_by_version_0_1_0_still_loads(tiny_model, tmp_path, images):
    ijepa_hub.save_pretrained(tiny_model, tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    config = json.loads(path.read_text())
    c = tiny_model.config
    config["ijepa"]["model"] = {"arch": "tiny", "patch_size": c.patch_size, "img_size": c.img_size,
                                "pred_embed_dim": c.pred_embed_dim, "pred_depth": c.pred_depth, "in_chans": 3}
    path.write_text(json.dumps(config))
    loaded = ijepa_hub.from_pretrained(tmp_path / "old")
    assert loaded.config == c
    assert isinstance(loaded.config, ModelConfig)
