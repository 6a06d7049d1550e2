"""Evaluation that refuses what it cannot measure, and a feature cache that knows where features came from (issue 17)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ijepa_hub.eval.cache as feature_cache
from ijepa_hub.eval.data import folder_splits
from ijepa_hub.eval.knn import knn_classify
from ijepa_hub.features import Features

# --- 17. degenerate k-NN input is refused; small temperatures do not overflow ---------------------------------------

_E0, _E1 = torch.eye(4)[0], torch.eye(4)[1]


def _two_classes(n: int = 5):
    gen = torch.Generator().manual_seed(0)
    train = torch.cat([_E0 + 0.01 * torch.randn(n, 4, generator=gen), _E1 + 0.01 * torch.randn(n, 4, generator=gen)])
    return train, torch.tensor([0] * n + [1] * n)


def test_a_small_temperature_weighs_votes_without_overflow():
    train, labels = _two_classes()
    test = F.normalize(_E0 + 1.2 * _E1, dim=0)[None]  # near both classes (cosine 0.64 and 0.77), nearer class 1
    for temperature in (0.005, 0.01, 0.07):
        result = knn_classify(train, labels, test, torch.tensor([1]), k=10, temperature=temperature)
        assert result.top1 == 100.0 and result.predictions.tolist() == [1], temperature


@pytest.mark.parametrize("case", ["one_class", "k_0", "temperature_0"])
def test_what_cannot_be_measured_is_refused(case):
    train, labels = _two_classes()
    kwargs = {"k": 0} if case == "k_0" else {"temperature": 0.0} if case == "temperature_0" else {}
    if case == "one_class":
        labels = torch.zeros_like(labels)
    with pytest.raises(ValueError, match="at least 2 classes" if case == "one_class" else "k >= 1 and a temperature > 0"):
        knn_classify(train, labels, train[:2], labels[:2], **kwargs)


def test_a_class_with_a_single_image_is_refused_not_silently_untested(tmp_path):
    for name, count in (("cats", 3), ("dogs", 3), ("owl", 1)):
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / name / f"{i}.png")
    with pytest.raises(ValueError, match="owl hold a single image"):
        folder_splits(tmp_path)


# --- 18. cached features are keyed on where and how they were computed -------------------------------------------------

def test_cached_features_are_not_reused_across_devices_or_dtypes(tiny_model, tmp_path, monkeypatch):
    import copy

    images = [np.full((32, 32, 3), v, np.uint8) for v in (0, 80, 160)]
    encoder = copy.deepcopy(tiny_model.target_encoder)
    key = dict(fingerprint="three", weights_key="same-weights", cache_dir=tmp_path)
    first = feature_cache.cached_features(encoder, images, **key)
    sentinel = torch.full_like(first, 7.0)
    monkeypatch.setattr(feature_cache, "extract_features", lambda *a, **k: Features(pooled=sentinel, patch_tokens=None))
    assert torch.equal(feature_cache.cached_features(encoder, images, **key), first)  # same request: the cache
    assert torch.equal(feature_cache.cached_features(encoder, images, device="cuda", **key), sentinel)  # bf16 there
    assert torch.equal(feature_cache.cached_features(encoder.to(torch.bfloat16), images, **key), sentinel)


def test_a_damaged_feature_cache_is_extracted_again(tiny_model, tmp_path):
    images = [np.full((32, 32, 3), v, np.uint8) for v in (0, 80)]
    first = feature_cache.cached_features(tiny_model.target_encoder, images, fingerprint="two", cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.safetensors")
    cached.write_bytes(cached.read_bytes()[:100])
    again = feature_cache.cached_features(tiny_model.target_encoder, images, fingerprint="two", cache_dir=tmp_path)
    assert torch.equal(again, first) and cached.stat().st_size > 100
