"""The training loop: the loss falls, accumulation equals the big batch, resume is exact, checkpoints
are strict, the export loads."""
from __future__ import annotations

import copy
import dataclasses
import json
import re

import pytest
import torch

import ijepa_hub
from ijepa_hub.data import MicroBatch
from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME
from ijepa_hub.errors import CheckpointError
from ijepa_hub.masks import MaskCollator
from ijepa_hub.train import load_checkpoint, save_checkpoint, train, train_step

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _run(recipe, out, steps, **kwargs):
    recipe = copy.deepcopy(recipe)
    recipe.train.max_steps = steps
    return train(recipe, out_dir=out, progress=False, **kwargs)


def test_loss_falls_and_metrics_are_logged(tiny_recipe, tmp_path):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.train.monitor_every = 10
    result = _run(recipe, tmp_path, 30)
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < 0.6 * first, result.losses
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, 31))
    assert [r["loss"] for r in records if "loss" in r] == pytest.approx(result.losses)
    monitor = [r for r in records if r.get("kind") == "monitor"]
    assert [r["step"] for r in monitor] == [0, 10, 20, 30]
    assert all(1.0 <= r["rankme"] <= 32 for r in monitor)  # at most min(N=32 images, D=192)
    assert (tmp_path / "recipe.yaml").is_file() and (tmp_path / CHECKPOINT_NAME).is_file()


def _micro_batches(recipe, k: int, b: int) -> list[MicroBatch]:
    """One batch of k*b images with fixed masks, split into k micro-batches of b."""
    cfg = recipe.model_config()
    collator = MaskCollator(recipe.mask, img_size=cfg.img_size, patch_size=cfg.patch_size)
    context, targets = collator.sample(k * b, 0)
    images = torch.randn(k * b, 3, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(k * b, 1, dtype=torch.long)
    return [
        MicroBatch(images[sl], labels[sl], [m[sl] for m in context], [m[sl] for m in targets], 0)
        for sl in (slice(i * b, (i + 1) * b) for i in range(k))
    ]


@pytest.mark.parametrize("k", [2, 4])
def test_gradient_accumulation_matches_the_full_batch(tiny_recipe, k):
    torch.manual_seed(0)
    full_model = ijepa_hub.IJepa(tiny_recipe.model_config())
    accum_model = copy.deepcopy(full_model)
    (full,) = _micro_batches(tiny_recipe, 1, 8)
    parts = _micro_batches(tiny_recipe, k, 8 // k)
    sgd = lambda m: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)  # noqa: E731
    loss_full = train_step(full_model, [full], sgd(full_model), device=torch.device("cpu"))
    loss_accum = train_step(accum_model, parts, sgd(accum_model), device=torch.device("cpu"))
    assert float(loss_accum) == pytest.approx(float(loss_full), rel=1e-6)
    grads = [(a.grad, b.grad) for a, b in zip(full_model.parameters(), accum_model.parameters()) if a.requires_grad]
    worst = max(float((ga - gb).abs().max()) for ga, gb in grads)
    scale = max(float(ga.abs().max()) for ga, _ in grads)
    assert worst <= 1e-5 * scale, (worst, scale)
    for a, b in zip(full_model.parameters(), accum_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# the default recipe's objectives: SIGReg draws fresh random projections from the torch RNG at every step
DEFAULT_OBJECTIVES = dataclasses.asdict(ijepa_hub.load_recipe("default").loss)


@pytest.mark.parametrize("objectives", [{}, DEFAULT_OBJECTIVES], ids=["prediction-loss", "default-objectives"])
def test_resume_continues_bit_exactly(tiny_recipe, tmp_path, objectives):
    tiny_recipe = copy.deepcopy(tiny_recipe)
    for key, value in objectives.items():
        setattr(tiny_recipe.loss, key, value)
    straight = _run(tiny_recipe, tmp_path / "straight", 8)
    first = _run(tiny_recipe, tmp_path / "split", 4)
    second = _run(tiny_recipe, tmp_path / "split", 8, resume="auto")
    assert (first.step, second.start_step, second.step) == (4, 4, 8)
    assert first.losses + second.losses == straight.losses
    a = load_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME)
    b = load_checkpoint(tmp_path / "split" / CHECKPOINT_NAME)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 9))


def test_new_run_refuses_a_folder_with_a_checkpoint(tiny_recipe, tmp_path):
    _run(tiny_recipe, tmp_path, 1)
    with pytest.raises(CheckpointError, match="--resume auto"):
        _run(tiny_recipe, tmp_path, 2)


def test_damaged_checkpoint_is_an_error_not_a_restart(tiny_recipe, tmp_path):
    _run(tiny_recipe, tmp_path, 2)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        _run(tiny_recipe, tmp_path, 4, resume="auto")


def test_mismatched_recipe_is_an_error_naming_the_key(tiny_recipe, tmp_path):
    _run(tiny_recipe, tmp_path, 2)
    changed = copy.deepcopy(tiny_recipe)
    changed.optim.lr *= 2
    changed.train.log_every = 5  # runtime keys may change
    expected = f"optim.lr: checkpoint {tiny_recipe.optim.lr}, now {changed.optim.lr}"
    with pytest.raises(CheckpointError, match=re.escape(expected)) as err:
        _run(changed, tmp_path, 4, resume="auto")
    assert "log_every" not in str(err.value)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / CHECKPOINT_NAME, {"step": 1})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary file left


def test_exported_folder_loads_through_from_pretrained(tiny_recipe, tmp_path):
    result = _run(tiny_recipe, tmp_path, 3)
    assert result.export_dir == tmp_path / "model"
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"]
    loaded = ijepa_hub.from_pretrained(result.export_dir, with_context_encoder=True, with_predictor=True)
    assert loaded.config == tiny_recipe.model_config()
    weights = loaded.state_dict()
    assert weights.keys() == state.keys()
    assert all(torch.equal(weights[k], state[k]) for k in state)
    card = (result.export_dir / "README.md").read_text()
    assert "default" in card and "final_loss" in card


def test_push_to_hub_uploads_the_trained_model(hub_server, tiny_recipe, tmp_path):
    result = _run(tiny_recipe, tmp_path, 2, push_to_hub="tester/trained-tiny")
    assert result.hub_url.startswith(f"{hub_server.endpoint}/tester/trained-tiny/commit/")
    pulled = ijepa_hub.from_pretrained("tester/trained-tiny", with_context_encoder=True, with_predictor=True)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"]
    assert all(torch.equal(v, state[k]) for k, v in pulled.state_dict().items())
