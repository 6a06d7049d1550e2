"""The trainer follows the released schedule semantics exactly (issue 11, part 1).

The released trainer steps its lr and weight-decay schedulers (``step()`` increments, then computes) at
the start of each iteration, so iteration t (from 0) trains with their values at t + 1; it draws the EMA
momentum after the optimiser step, value at t. The first test states this on the values the optimiser
and the EMA actually receive inside ``train``; the second runs the trainer's own iteration against an
independent plain-PyTorch re-statement of the released loop and compares every weight.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

import ijepa_hub
import ijepa_hub.train.loop as loop
from ijepa_hub.data import MicroBatch
from ijepa_hub.engine.schedules import Hyperparams, Schedules
from ijepa_hub.masks import MaskCollator
from ijepa_hub.recipe import MaskSection, OptimSection
from ijepa_hub.train.optim import build_optimizer, set_hyperparams

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_first_iterations_use_the_released_values(tiny_recipe, tmp_path, monkeypatch):
    recipe = copy.deepcopy(tiny_recipe)
    recipe.optim.warmup_epochs, recipe.optim.final_weight_decay = 0.25, 0.4  # 32 steps per epoch: warmup 8
    recipe.train.max_steps = 2
    seen: list[dict] = []
    real_step, real_ema = loop.train_step, loop.ema_update

    def train_step(module, micro, optimizer, **kwargs):
        groups = optimizer.param_groups
        seen.append({"lr": [g["lr"] for g in groups], "wd": [g["weight_decay"] for g in groups]})
        return real_step(module, micro, optimizer, **kwargs)

    def ema_update(core, momentum):
        seen[-1]["momentum"] = momentum
        return real_ema(core, momentum)

    monkeypatch.setattr(loop, "train_step", train_step)
    monkeypatch.setattr(loop, "ema_update", ema_update)
    loop.train(recipe, out_dir=tmp_path, progress=False, export=False)

    o = recipe.optim
    warmup, total = 8, 64
    first_lr = o.start_lr + (o.lr - o.start_lr) / warmup
    first_wd = o.final_weight_decay + (o.weight_decay - o.final_weight_decay) * 0.5 * (1 + math.cos(math.pi / total))
    assert seen[0]["lr"] == pytest.approx([first_lr, first_lr], rel=1e-12)
    assert seen[0]["wd"] == pytest.approx([first_wd, 0.0], rel=1e-12)  # biases and 1-D weights: no decay
    assert seen[0]["momentum"] == o.ema[0]
    assert seen[1]["lr"][0] == pytest.approx(o.start_lr + 2 * (o.lr - o.start_lr) / warmup, rel=1e-12)
    assert seen[1]["momentum"] == pytest.approx(o.ema[0] + (o.ema[1] - o.ema[0]) / total, rel=1e-12)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["lr"], r["weight_decay"], r["momentum"]) for r in records if "loss" in r]
    assert logged == [(s["lr"][0], s["wd"][0], s["momentum"]) for s in seen]  # the log shows what was used


# --- the released loop, restated in plain PyTorch ---------------------------------------------------------

class _WarmupCosineLR:
    """Linear warmup then cosine; ``step()`` increments its counter, then computes and sets the lr."""

    def __init__(self, optimizer, *, warmup_steps, start_lr, ref_lr, final_lr, total_steps):
        self.optimizer, self.warmup_steps = optimizer, warmup_steps
        self.start_lr, self.ref_lr, self.final_lr = start_lr, ref_lr, final_lr
        self.cosine_steps, self.count = total_steps - warmup_steps, 0

    def step(self) -> float:
        self.count += 1
        if self.count < self.warmup_steps:
            lr = self.start_lr + self.count / max(1, self.warmup_steps) * (self.ref_lr - self.start_lr)
        else:
            progress = (self.count - self.warmup_steps) / max(1, self.cosine_steps)
            lr = max(self.final_lr, self.final_lr + (self.ref_lr - self.final_lr) * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr


class _CosineWD:
    """Cosine weight decay ``ref -> final``; ``step()`` increments, then sets it on the decayed groups."""

    def __init__(self, optimizer, *, ref_wd, final_wd, total_steps):
        self.optimizer, self.ref_wd, self.final_wd, self.total_steps, self.count = optimizer, ref_wd, final_wd, total_steps, 0

    def step(self) -> float:
        self.count += 1
        wd = self.final_wd + (self.ref_wd - self.final_wd) * 0.5 * (1 + math.cos(math.pi * self.count / self.total_steps))
        wd = max(self.final_wd, wd) if self.final_wd <= self.ref_wd else min(self.final_wd, wd)
        for group in self.optimizer.param_groups:
            if not group.get("WD_exclude", False):
                group["weight_decay"] = wd
        return wd


def _released_loss(model, images, context, targets):
    with torch.no_grad():
        h = model.target_encoder(images)
        h = F.layer_norm(h, (h.size(-1),))
        h = torch.cat([torch.gather(h, 1, m.unsqueeze(-1).expand(-1, -1, h.size(-1))) for m in targets])
    z = model.predictor(model.context_encoder(images, context), context, targets)
    return F.smooth_l1_loss(z, h)


def _released_run(model, optim: OptimSection, total: int, warmup: int, batches) -> None:
    nets = [model.context_encoder, model.predictor]
    named = [(n, p) for net in nets for n, p in net.named_parameters()]
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in named if "bias" not in n and p.ndim != 1]},
        {"params": [p for n, p in named if "bias" in n or p.ndim == 1], "WD_exclude": True, "weight_decay": 0},
    ], betas=optim.betas, eps=optim.eps)
    lr_sched = _WarmupCosineLR(optimizer, warmup_steps=warmup, start_lr=optim.start_lr, ref_lr=optim.lr,
                               final_lr=optim.final_lr, total_steps=total)
    wd_sched = _CosineWD(optimizer, ref_wd=optim.weight_decay, final_wd=optim.final_weight_decay, total_steps=total)
    ema = optim.ema
    momenta = (ema[0] + i * (ema[1] - ema[0]) / total for i in range(total + 1))
    for images, context, targets in batches:
        lr_sched.step()
        wd_sched.step()
        loss = _released_loss(model, images, context, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        m = next(momenta)
        with torch.no_grad():
            for param_q, param_k in zip(model.context_encoder.parameters(), model.target_encoder.parameters()):
                param_k.mul_(m).add_((1.0 - m) * param_q.detach())


def _trainer_run(model, optim: OptimSection, schedules: Schedules, batches, *, old: bool = False) -> None:
    optimizer = build_optimizer(model, optim)
    for step, (images, context, targets) in enumerate(batches):
        micro = [MicroBatch(images, torch.zeros(len(images), 1, dtype=torch.long), context, targets, 0)]
        if not old:
            loop.train_iteration(model, model, micro, optimizer, schedules, step, device=torch.device("cpu"))
            continue
        # the semantics before issue 11: every schedule at t
        set_hyperparams(optimizer, Hyperparams(schedules.lr(step), schedules.weight_decay(step)))
        loop.train_step(model, micro, optimizer, device=torch.device("cpu"))
        loop.ema_update(model, schedules.momentum(step))


def _max_weight_difference(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def test_ten_steps_match_the_released_loop(record_property):
    optim = OptimSection(epochs=2, warmup_epochs=0.4, start_lr=2e-4, lr=2e-3, final_lr=1e-6,
                         weight_decay=0.04, final_weight_decay=0.4, ema=(0.99, 1.0))
    schedules = Schedules.from_recipe(optim, steps_per_epoch=10)
    assert (schedules.total_steps, schedules.warmup_steps) == (20, 4)  # 10 steps: warmup and cosine
    torch.manual_seed(0)
    start = ijepa_hub.create_model("vit_tiny_patch16", img_size=32, patch_size=8, pred_depth=2)
    collator = MaskCollator(MaskSection(min_keep=2), img_size=32, patch_size=8)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), *collator.sample(8, step)) for step in range(10)]

    released, trainer, old = copy.deepcopy(start), copy.deepcopy(start), copy.deepcopy(start)
    _released_run(released, optim, schedules.total_steps, schedules.warmup_steps, batches)
    _trainer_run(trainer, optim, schedules, batches)
    _trainer_run(old, optim, schedules, batches, old=True)

    moved = _max_weight_difference(released, start)
    new_diff, old_diff = _max_weight_difference(released, trainer), _max_weight_difference(released, old)
    record_property("max_abs_diff_released_vs_trainer", new_diff)
    record_property("max_abs_diff_released_vs_old_semantics", old_diff)
    print(f"\n10 steps: weights moved {moved:.3g}; |released - trainer| {new_diff:.3g}; "
          f"|released - old (all at t)| {old_diff:.3g}")
    assert moved > 1e-2  # the comparison is not between untrained networks
    assert new_diff <= 1e-5
    assert old_diff > 100 * max(new_diff, 1e-7)  # the comparison sees the off-by-one
