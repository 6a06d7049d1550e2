import math

import pytest
import torch
import torch.nn.functional as F

import ijepa_hub
from ijepa_hub.engine.schedules import Hyperparams, Schedules
from ijepa_hub.masks import MaskCollator
from ijepa_hub.models import jepa_loss
from ijepa_hub.recipe import MaskSection, OptimSection
from ijepa_hub.train.optim import build_optimizer, param_groups, set_hyperparams


def test_loss_values_by_hand():
    pred = torch.tensor([0.0, 0.5, 2.0, -3.0])
    target = torch.zeros(4)
    # smooth L1, beta 1: 0.5 x^2 below 1, |x| - 0.5 above
    assert jepa_loss(pred, target).item() == pytest.approx((0 + 0.125 + 1.5 + 2.5) / 4)
    assert jepa_loss(pred, target, "l2").item() == pytest.approx((0 + 0.25 + 4 + 9) / 4)
    with pytest.raises(ValueError, match="l2"):
        jepa_loss(pred, target, "l1")


def test_schedules_by_hand():
    optim = OptimSection(epochs=10, warmup_epochs=2, start_lr=0.1, lr=1.0, final_lr=0.0,
                         weight_decay=0.04, final_weight_decay=0.4, ema=(0.996, 1.0))
    s = Schedules.from_recipe(optim, steps_per_epoch=10)
    assert (s.total_steps, s.warmup_steps) == (100, 20)
    assert s.lr(0) == pytest.approx(0.1) and s.lr(10) == pytest.approx(0.55) and s.lr(20) == pytest.approx(1.0)
    assert s.lr(60) == pytest.approx(0.5)  # half way through the cosine
    assert s.lr(40) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert s.lr(100) == pytest.approx(0.0) and s.lr(150) == pytest.approx(0.0)
    assert s.weight_decay(0) == pytest.approx(0.04) and s.weight_decay(50) == pytest.approx(0.22)
    assert s.weight_decay(100) == pytest.approx(0.4) and s.weight_decay(25) == pytest.approx(0.22 - 0.18 * math.cos(math.pi / 4))
    assert s.momentum(0) == pytest.approx(0.996) and s.momentum(50) == pytest.approx(0.998)
    assert s.momentum(100) == 1.0 and s.momentum(200) == 1.0


def test_ema_update_by_hand(tiny_ijepa):
    with torch.no_grad():
        for p in tiny_ijepa.context_encoder.parameters():
            p.add_(1.0)
    before = {n: p.clone() for n, p in tiny_ijepa.target_encoder.named_parameters()}
    online = dict(tiny_ijepa.context_encoder.named_parameters())
    tiny_ijepa.update_target(0.9)
    for n, p in tiny_ijepa.target_encoder.named_parameters():
        torch.testing.assert_close(p, 0.9 * before[n] + 0.1 * online[n], atol=1e-6, rtol=0)
    tiny_ijepa.update_target(1.0)
    tiny_ijepa.update_target(0.0)
    for n, p in tiny_ijepa.target_encoder.named_parameters():
        assert torch.equal(p, online[n])
    with pytest.raises(ValueError):
        tiny_ijepa.update_target(1.5)


def test_target_path_is_nonaffine_layernorm_then_gather(tiny_ijepa, image_batch):
    masks = [torch.tensor([[0, 5], [3, 4]]), torch.tensor([[15, 1], [2, 9]])]
    out = tiny_ijepa.target_features(image_batch, masks)
    h = F.layer_norm(tiny_ijepa.target_encoder(image_batch), (192,))
    expected = torch.cat([torch.stack([h[b, m[b]] for b in range(2)]) for m in masks])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert not out.requires_grad


def test_initialisation_as_released():
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_small_patch16", img_size=64)
    enc = model.context_encoder
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.equal(m.bias, torch.zeros_like(m.bias)), name
            assert m.weight.abs().max() <= 2.0
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))
    # no depth rescaling: the last block's output projections have the same spread as the first's
    for layer in ("attn.proj", "mlp.fc2", "attn.qkv"):
        w0 = dict(enc.named_parameters())[f"blocks.0.{layer}.weight"]
        w11 = dict(enc.named_parameters())[f"blocks.11.{layer}.weight"]
        assert w0.std().item() == pytest.approx(0.02, rel=0.05) and w11.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.predictor.mask_token.std().item() == pytest.approx(0.02, rel=0.25)
    for a, b in zip(model.context_encoder.state_dict().values(), model.target_encoder.state_dict().values()):
        assert torch.equal(a, b)  # the target encoder starts as an exact copy


def test_param_groups_exclude_biases_norms_and_frozen_tables(tiny_ijepa):
    decay, no_decay = param_groups(tiny_ijepa)
    names = {id(p): n for n, p in tiny_ijepa.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert "predictor.mask_token" in decayed and "context_encoder.blocks.0.attn.qkv.weight" in decayed
    assert "context_encoder.blocks.0.attn.qkv.bias" in undecayed and "context_encoder.norm.weight" in undecayed
    everything = decayed | undecayed
    assert not any(n.startswith("target_encoder") for n in everything)
    assert "context_encoder.pos_embed" not in everything and "predictor.predictor_pos_embed" not in everything
    trainable = {n for n, p in tiny_ijepa.named_parameters() if p.requires_grad}
    assert everything == trainable and not decayed & undecayed
    opt = build_optimizer(tiny_ijepa, OptimSection())
    set_hyperparams(opt, Hyperparams(lr=0.5, weight_decay=0.3))
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]


def test_cpu_optimizer_is_fused_and_steps_like_the_reference_adamw(tiny_ijepa):
    """The fused kernel (default on CPU as on CUDA) takes the same step as the per-parameter loop."""
    optim = OptimSection(start_lr=1e-2, weight_decay=0.05)
    fused = build_optimizer(tiny_ijepa, optim)
    assert fused.defaults["fused"] is True
    plain = build_optimizer(tiny_ijepa, optim, fused=False)
    params = [p for g in fused.param_groups for p in g["params"]]
    start = [p.detach().clone() for p in params]
    grads = [torch.randn_like(p) for p in params]
    after = {}
    for name, opt in (("fused", fused), ("plain", plain)):
        with torch.no_grad():
            for p, s in zip(params, start):
                p.copy_(s)
        for _ in range(3):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
        after[name] = [p.detach().clone() for p in params]
    for a, b, s in zip(after["fused"], after["plain"], start):
        assert not torch.equal(a, s)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_twenty_step_cpu_loop_lowers_the_loss_and_never_trains_the_target():
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch16", img_size=32, patch_size=8, pred_depth=2)
    collate = MaskCollator(MaskSection(min_keep=2), img_size=32, patch_size=8)
    optim = OptimSection(epochs=1, warmup_epochs=0.1, start_lr=1e-4, lr=1e-3, final_lr=1e-4,
                         weight_decay=0.04, final_weight_decay=0.04)
    schedules = Schedules.from_recipe(optim, steps_per_epoch=20)
    opt = build_optimizer(model, optim)
    image_batch = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    losses = []
    for step in range(20):
        ctx, tgt = collate.sample(8, step)
        used = schedules.at_iteration(step)  # as released: lr, wd at step + 1, momentum at step
        set_hyperparams(opt, used)
        loss = model(image_batch, ctx, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_target(used.momentum)
        losses.append(loss.item())
        assert all(p.grad is None for p in model.target_encoder.parameters())
    assert all(not p.requires_grad for p in model.target_encoder.parameters())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
