"""CPU fast paths (issue 24): bf16 chosen by capability, int8 extraction, their accuracy cost, lossy exports.

The model is a random vit_tiny with 8 px patches at 32 px and two blocks (fast to export); the probe bounds
are checked on 500 / 1000 held-out synthetic shapes, where one test image is 0.1 point.
"""
from __future__ import annotations

import json
import logging

import pytest
import torch

import ijepa_hub
from ijepa_hub.eval import cache as feature_cache
from ijepa_hub.eval.cli import main as eval_main
from ijepa_hub.eval.cost import accuracy_cost, default_cost_splits, extraction_cost, feature_cosine
from ijepa_hub.features import extract_features
from ijepa_hub.models.extract import compute_dtype
from ijepa_hub.precision import extraction_dtype, resolve_precision

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from ijepa_hub.deploy import CostLimits, export_deployable, run_exported  # noqa: E402
from ijepa_hub.errors import ExportError  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ijepa_hub.create_model("vit_tiny_patch8", img_size=32, depth=2, with_predictor=False).eval().encoder


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("native", [False, True])
def test_auto_dtype_chooses_bf16_on_cpu_by_capability_and_says_so(native, monkeypatch, caplog, encoder, batch):
    monkeypatch.setenv("IJEPA_HUB_CPU_BF16", "1" if native else "0")
    monkeypatch.setattr("ijepa_hub.precision._ANNOUNCED", set())
    expected = torch.bfloat16 if native else torch.float32
    with caplog.at_level(logging.INFO, logger="ijepa_hub.precision"):
        assert extraction_dtype("auto", "cpu") == extraction_dtype(None, "cpu") == expected
    assert len(caplog.records) == 1 and ("bfloat16" if native else "float32") in caplog.text  # logged once
    assert resolve_precision("auto", "cpu") == torch.float32  # the trainer's auto is unchanged
    assert extraction_dtype("auto", "cuda") == torch.bfloat16
    assert extraction_dtype("fp32", "cpu") == torch.float32 and extraction_dtype("bf16", "cpu") == torch.bfloat16
    auto = extract_features(encoder, batch, preprocessed=True).pooled
    forced = extract_features(encoder, batch, preprocessed=True, dtype="bf16" if native else "fp32").pooled
    other = extract_features(encoder, batch, preprocessed=True, dtype="fp32" if native else "bf16").pooled
    assert torch.equal(auto, forced) and not torch.equal(auto, other)
    assert feature_cache.computed_on(encoder, None)["compute_dtype"] == ("bfloat16" if native else "float32")


def test_bf16_and_int8_pooled_features_are_close_to_fp32(encoder, batch):
    fp32 = extract_features(encoder, batch, preprocessed=True, dtype="fp32", layers=2, per_layer=True)
    bf16 = extract_features(encoder, batch, preprocessed=True, dtype="bf16", layers=2, per_layer=True)
    int8 = extract_features(encoder, batch, preprocessed=True, quantize="int8", layers=2, per_layer=True, batch_size=4)
    assert feature_cosine(bf16.pooled, fp32.pooled)["min"] >= 0.999
    assert feature_cosine(int8.pooled, fp32.pooled)["min"] >= 0.99
    assert not torch.equal(int8.pooled, fp32.pooled) and not torch.equal(int8.pooled, bf16.pooled)  # really int8
    assert int8.patch_tokens.shape == fp32.patch_tokens.shape == (6, 16, 192) and len(int8.layer_tokens) == 2


@pytest.mark.slow  # about 20 s on 2 idle cores: 1,500 images three ways and six linear probes
def test_probe_top1_moves_within_the_bounds_with_bf16_and_int8(encoder):
    splits = default_cost_splits(num_train=500, num_test=1000)
    fp32 = {}

    def reference(images):  # computed once for both comparisons
        key = id(images)
        if key not in fp32:
            fp32[key] = extract_features(encoder, list(images), crop_pct=1.0, dtype="fp32").pooled
        return fp32[key]

    for how, cosine, points in (({"dtype": "bf16"}, 0.999, 0.5), ({"quantize": "int8"}, 0.99, 1.0)):
        cost = accuracy_cost(reference, lambda im, how=how: extract_features(encoder, list(im), crop_pct=1.0, **how).pooled,
                             splits)
        assert cost["cosine"]["min"] >= cosine, how
        assert abs(cost["knn_top1_change"]) <= points and abs(cost["linear_top1_change"]) <= points, (how, cost)
        assert cost["reference"]["linear_top1"] > 100 / len(splits.classes) + 5  # above chance: the probe means something


def test_extraction_cost_reports_the_compute_dtype(encoder):
    cost = extraction_cost(encoder, default_cost_splits(num_train=40, num_test=40), dtype="bf16")
    assert cost["compute_dtype"] == "bfloat16" and cost["num_test"] == 40 and cost["cosine"]["min"] >= 0.999


def test_int8_takes_the_cpu_and_fp32_only_and_is_keyed_apart_in_the_cache(encoder):
    assert compute_dtype("auto", "cpu", "int8") == compute_dtype("fp32", "cpu", "int8") == "int8"
    with pytest.raises(ValueError, match="dtype='bf16' does not apply"):
        compute_dtype("bf16", "cpu", "int8")
    with pytest.raises(ValueError, match="runs on the CPU"):
        compute_dtype("auto", "cuda", "int8")
    with pytest.raises(ValueError, match="quantize must be one of int8"):
        compute_dtype("auto", "cpu", "int4")
    keys = {feature_cache.computed_on(encoder, None, dtype=d, quantize=q)["compute_dtype"]
            for d, q in (("fp32", None), ("bf16", None), ("auto", "int8"))}
    assert keys == {"float32", "bfloat16", "int8"}


def test_eval_cli_refuses_int8_with_bf16_in_one_line(capsys):
    assert eval_main(["knn", "vit_tiny_patch16", "--quantize", "int8", "--dtype", "bf16", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dtype='bf16' does not apply" in err


def test_int8_onnx_export_records_its_accuracy_and_runs_close_to_eager(encoder, batch, tmp_path):
    result = export_deployable(encoder, tmp_path / "int8", quantize="int8")
    meta = json.loads((tmp_path / "int8" / "export.json").read_text())
    assert meta["quantize"] == "int8" and meta["accuracy"] == json.loads(json.dumps(result.accuracy | {
        "limits": {"min_cosine": 0.99, "max_top1_drop": 1.0}, "forced": False}))
    acc = meta["accuracy"]
    assert acc["data"] == "synthetic-shape" and (acc["num_train"], acc["num_test"]) == (200, 200)
    assert acc["cosine"]["mean"] >= 0.99 and acc["top1_drop"] <= 1.0 and not acc["exceeds"]
    with torch.no_grad():
        tokens = encoder(batch)
    got_tokens, got_pooled = run_exported(result.file, batch)
    assert got_tokens.shape == tokens.shape
    assert feature_cosine(got_pooled, tokens.mean(1))["min"] >= 0.99 and not torch.equal(got_pooled, tokens.mean(1))


def test_an_export_beyond_the_accuracy_limits_is_refused_unless_forced(encoder, tmp_path):
    strict, small = CostLimits(min_cosine=1.0 + 1e-6), default_cost_splits(num_train=24, num_test=24)  # none reaches it
    with pytest.raises(ExportError, match="costs too much accuracy.*--force"):
        export_deployable(encoder, tmp_path / "out", dtype="fp16", limits=strict, calib_data=small)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []  # nothing left behind
    export_deployable(encoder, tmp_path / "out", dtype="fp16", limits=strict, calib_data=small, force=True)
    acc = json.loads((tmp_path / "out" / "export.json").read_text())["accuracy"]
    assert acc["exceeds"] and acc["forced"] and acc["limits"]["min_cosine"] == strict.min_cosine


def test_unsupported_lossy_exports_are_refused_before_any_work(encoder, tmp_path):
    with pytest.raises(ExportError, match="bf16 ONNX models do not run in onnxruntime on CPU"):
        export_deployable(encoder, tmp_path / "a", dtype="bf16")
    with pytest.raises(ExportError, match="--quantize int8 applies to --format onnx with --dtype fp32"):
        export_deployable(encoder, tmp_path / "b", format="torch-export", quantize="int8")
    assert list(tmp_path.iterdir()) == []
