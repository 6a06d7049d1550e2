import pytest
import torch

import ijepa_hub
from ijepa_hub.errors import CheckpointError, StateDictMismatchError


def write_released_layout(model, path, **extra):
    def prefixed(m):
        return {f"module.{k}": v for k, v in m.state_dict().items()}
    blob = {
        "encoder": prefixed(model.context_encoder),
        "predictor": prefixed(model.predictor),
        "target_encoder": prefixed(model.target_encoder),
        "opt": {"state": {}, "param_groups": [{"lr": 1e-3}]},
        "scaler": None, "epoch": 300, "loss": 0.1, "batch_size": 128, "world_size": 16, "lr": 1e-3,
    }
    blob.update(extra)
    torch.save(blob, path)


@pytest.fixture
def released(tmp_path):
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch16", img_size=32, patch_size=8, pred_depth=3)
    with torch.no_grad():  # make the target encoder differ from the context encoder
        for p in model.target_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "IN1K-vit.t.8-1e.pth.tar"
    write_released_layout(model, path)
    return model, path


def test_released_layout_loads_with_identical_outputs(released):
    model, path = released
    loaded = ijepa_hub.load_reference_checkpoint(path)
    assert loaded.config == model.config and loaded.config.pred_depth == 3 and loaded.config.patch_size == 8
    x = torch.randn(2, 3, 32, 32)
    ctx, tgt = [torch.tensor([[0, 1, 2, 3, 4, 5]] * 2)], [torch.tensor([[9, 10]] * 2)]
    with torch.no_grad():
        for name in ("context_encoder", "target_encoder"):
            assert torch.equal(getattr(loaded, name)(x), getattr(model, name)(x))
        assert torch.equal(loaded.predict(x, ctx, tgt), model.predict(x, ctx, tgt))


def test_architecture_is_inferred_from_shapes(tmp_path):
    with torch.device("meta"):
        big = ijepa_hub.create_model("vit_small_patch14", img_size=98)
    sd = ijepa_hub.infer_model_config(big.context_encoder.state_dict(), big.predictor.state_dict())
    assert (sd.arch, sd.patch_size, sd.img_size, sd.pred_depth, sd.pred_embed_dim, sd.num_heads) == (
        "small", 14, 98, 6, 192, 6)


def test_missing_and_unexpected_keys_are_listed(released, tmp_path):
    model, _ = released
    blob_path = tmp_path / "bad.pth.tar"
    write_released_layout(model, blob_path)
    blob = torch.load(blob_path, weights_only=True)
    del blob["target_encoder"]["module.blocks.3.mlp.fc2.bias"]
    blob["predictor"]["module.predictor_extra.weight"] = torch.zeros(1)
    torch.save(blob, blob_path)
    with pytest.raises(StateDictMismatchError) as err:
        ijepa_hub.load_reference_checkpoint(blob_path)
    assert "blocks.3.mlp.fc2.bias" in str(err.value) and str(blob_path) in str(err.value)
    assert err.value.what == "target_encoder"
    del blob["target_encoder"]
    torch.save(blob, blob_path)
    with pytest.raises(CheckpointError, match="target_encoder"):
        ijepa_hub.load_reference_checkpoint(blob_path)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_refused_without_running_them(released, tmp_path, capsys):
    model, _ = released
    path = tmp_path / "evil.pth.tar"
    write_released_layout(model, path, extra=Payload())
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        ijepa_hub.load_reference_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_truncated_and_missing_files_are_clear_errors(released, tmp_path):
    _, path = released
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated"):
        ijepa_hub.load_reference_checkpoint(cut)
    with pytest.raises(FileNotFoundError):
        ijepa_hub.load_reference_checkpoint(tmp_path / "nope.pth.tar")
