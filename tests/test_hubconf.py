"""hubconf.py: entrypoints generated from the registry, loadable with torch.hub from a local dir."""
import inspect

import pytest
import torch
from conftest import REPO_ROOT

import ijepa_hub
from ijepa_hub.hub.torchhub import ALIASES

# (encoder elements, predictor elements): the released checkpoints' sizes (ijepa-reference.md); ViT-H/16
# at 448 px differs from ViT-H/14 by its patch kernel and its 28x28 position table.
SIZES = {
    "ijepa_vith14_1k": (630_762_240, 22_377_728),
    "ijepa_vith14_22k": (630_762_240, 22_377_728),
    "ijepa_vith16_448_1k": (631_668_480, 22_580_480),
    "ijepa_vitg16_22k": (1_011_368_576, 29_550_976),
    "ijepa_vith14": (630_762_240, 22_377_728),
}


def _hub_list(repo_dir):
    """torch.hub.list(repo_dir, source="local"); torch versions without ``source`` list GitHub repos only,
    so there the same rule is applied to the local hubconf (torch.hub's own importer)."""
    if "source" in inspect.signature(torch.hub.list).parameters:
        return torch.hub.list(repo_dir, source="local")
    module = torch.hub._import_module("hubconf", str(repo_dir / "hubconf.py"))
    return [f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_")]


def test_entrypoints_are_the_registry_variants_plus_aliases():
    assert sorted(_hub_list(REPO_ROOT)) == sorted([*ijepa_hub.list_variants(), *ALIASES]) == sorted(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_every_entrypoint_builds_on_meta_with_the_released_size(name):
    with torch.device("meta"):
        model = torch.hub.load(str(REPO_ROOT), name, source="local", pretrained=False, with_predictor=True)
    count = lambda m: sum(t.numel() for t in m.state_dict().values())  # noqa: E731
    assert (count(model.encoder), count(model.predictor)) == SIZES[name]
    assert model.encoder is model.target_encoder and model.context_encoder is None
    assert callable(model.extract_features)


def test_entrypoints_are_keyword_only_with_one_line_docstrings():
    module = torch.hub._import_module("hubconf", str(REPO_ROOT / "hubconf.py"))
    assert set(module.dependencies) >= {"torch", "timm", "huggingface_hub", "safetensors"}
    for name in SIZES:
        fn = getattr(module, name)
        params = inspect.signature(fn).parameters
        assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params.values())
        assert {"pretrained", "encoder", "with_predictor"} <= set(params)
        assert fn.__doc__ and "\n" not in fn.__doc__.strip()


def test_entrypoint_options_reach_the_model():
    with torch.device("meta"):  # ViT-H on CPU takes long to initialise; options and shapes are what matter
        model = torch.hub.load(str(REPO_ROOT), "ijepa_vith14", source="local", pretrained=False,
                               encoder="context", img_size=448)
    assert model.variant is None and model.encoder_name == "context"  # random weights claim no release
    assert model.target_encoder is None and model.predictor is None
    assert model.encoder.pos_embed.shape == (1, 32 * 32, 1280)


def test_entrypoints_take_the_hub_vocabulary_and_the_old_encoder_both():
    with torch.device("meta"):
        model = torch.hub.load(str(REPO_ROOT), "ijepa_vith14_22k", source="local", pretrained=False,
                               with_context_encoder=True)
        with pytest.warns(DeprecationWarning, match="encoder='both' is deprecated"):
            old = torch.hub.load(str(REPO_ROOT), "ijepa_vith14_22k", source="local", pretrained=False, encoder="both")
    for m in (model, old):
        assert m.encoder is m.target_encoder and m.context_encoder is not None and m.predictor is None
