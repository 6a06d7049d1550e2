"""Push to and pull from the loopback test Hub with the real huggingface_hub client; timm reads the repo."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO_ROOT
from huggingface_hub import HfApi, hf_hub_download
from safetensors.torch import load_file

import ijepa_hub

REPO = "tester/tiny-ijepa"


@pytest.fixture(scope="module")
def pushed(hub_server, tiny_model):
    """The tiny model pushed once, with a recipe and metrics: (commit_url, commit sha, requests made)."""
    before = len(hub_server.requests)
    url = ijepa_hub.push_to_hub(
        tiny_model, REPO, recipe=ijepa_hub.load_recipe("in1k_vith14"), metrics={"knn_top1": 12.5}
    )
    return url, url.rstrip("/").rsplit("/", 1)[-1], hub_server.requests[before:]


def test_push_writes_one_commit_with_the_layout(pushed, hub_server, tiny_model):
    url, sha, requests = pushed
    assert url == f"{hub_server.endpoint}/{REPO}/commit/{sha}" and len(sha) == 40
    files = set(HfApi().list_repo_files(REPO))
    assert files == {".gitattributes", "config.json", "model.safetensors", "context_encoder.safetensors",
                     "predictor.safetensors", "README.md"}
    assert [p for m, p in requests if m == "POST" and "/commit/" in p] == [f"/api/models/{REPO}/commit/main"]
    target = load_file(hf_hub_download(REPO, "model.safetensors"))
    assert set(target) == set(tiny_model.target_encoder.state_dict())
    assert torch.equal(target["blocks.0.attn.qkv.weight"], tiny_model.target_encoder.blocks[0].attn.qkv.weight)
    config = json.load(open(hf_hub_download(REPO, "config.json")))
    assert config["ijepa"]["encoder"] == "target"
    assert config["ijepa"]["recipe"]["name"] == "in1k_vith14"
    card = open(hf_hub_download(REPO, "README.md")).read()
    assert "pipeline_tag: image-feature-extraction" in card and "library_name: ijepa_hub" in card
    assert f'from_pretrained("{REPO}")' in card and "knn_top1 | 12.5" in card


def test_pull_by_repo_id_and_pinned_revision(pushed, tiny_model, images):
    expected = ijepa_hub.extract_features(tiny_model.target_encoder, images)
    # a second commit on main, so that the pinned revision and main differ
    other = ijepa_hub.create_model("vit_tiny_patch16", img_size=32, with_predictor=False)
    ijepa_hub.push_to_hub(other, REPO, with_context_encoder=False)
    pinned = ijepa_hub.from_pretrained(REPO, revision=pushed[1], with_predictor=True, with_context_encoder=True)
    latest = ijepa_hub.from_pretrained(REPO)
    assert torch.equal(pinned.extract_features(images).pooled, expected.pooled)
    assert torch.equal(pinned.extract_features(images).patch_tokens, expected.patch_tokens)
    for part in ("context_encoder", "predictor"):
        ref = getattr(tiny_model, part).state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in getattr(pinned, part).state_dict().items())
    assert torch.equal(latest.extract_features(images).pooled,
                       ijepa_hub.extract_features(other.target_encoder, images).pooled)
    with pytest.raises(ijepa_hub.HubLayoutError, match="context_encoder"):
        ijepa_hub.from_pretrained(REPO, encoder="context")  # main has no context encoder any more


def test_offline_reload_from_cache_in_a_fresh_process(pushed, tiny_model, images, tmp_path):
    ijepa_hub.from_pretrained(REPO, revision=pushed[1])  # fills the cache
    expected = ijepa_hub.extract_features(tiny_model.target_encoder, images).pooled
    torch.save({"images": [torch.from_numpy(i) for i in images]}, tmp_path / "images.pt")
    script = textwrap.dedent(f"""
        import torch, ijepa_hub
        images = [t.numpy() for t in torch.load({str(tmp_path / 'images.pt')!r})["images"]]
        model = ijepa_hub.from_pretrained({REPO!r}, revision={pushed[1]!r})
        torch.save(model.extract_features(images).pooled, {str(tmp_path / 'out.pt')!r})
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9", PYTHONPATH=str(REPO_ROOT))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)


def test_timm_reads_the_same_repo(pushed, tiny_model):
    import timm

    encoder = timm.create_model(f"hf-hub:{REPO}@{pushed[1]}", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = tiny_model.target_encoder.forward_pooled(x)
        theirs = encoder(x)
    assert theirs.shape == (2, 192)
    assert (ours - theirs).abs().max() <= 1e-5
    data_cfg = timm.data.resolve_data_config({}, model=encoder)
    assert data_cfg["input_size"] == (3, 32, 32) and data_cfg["crop_pct"] == ijepa_hub.features.CROP_PCT
    assert tuple(data_cfg["mean"]) == ijepa_hub.features.MEAN and data_cfg["interpolation"] == "bicubic"


def test_missing_repo_and_revision_raise_hub_errors(pushed):
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        ijepa_hub.from_pretrained("tester/does-not-exist")
    with pytest.raises(RevisionNotFoundError):
        ijepa_hub.from_pretrained(REPO, revision="no-such-branch")
