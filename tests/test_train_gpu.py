"""CUDA: a ViT-H/14 training step in bf16 with fused AdamW and the EMA update (throughput and memory go
to benchmarks/bench_train_step.py, not here)."""
from __future__ import annotations

import pytest
import torch

from ijepa_hub import load_recipe
from ijepa_hub.data import MicroBatch
from ijepa_hub.engine.step import autocast_factory
from ijepa_hub.masks import MaskCollator
from ijepa_hub.models import IJepa
from ijepa_hub.train.loop import train_step
from ijepa_hub.train.optim import build_optimizer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_vit_h14_step_runs_in_bf16_with_fused_adamw():
    recipe = load_recipe("in1k_vith14")
    config, device, b = recipe.model_config(), torch.device("cuda"), 8
    torch.manual_seed(0)
    model = IJepa(config).to(device)
    optimizer = build_optimizer(model, recipe.optim)
    assert all(group["fused"] for group in optimizer.param_groups)
    context, targets = MaskCollator(recipe.mask, img_size=224, patch_size=14).sample(b, 0)
    images = torch.randn(b, 3, 224, 224)
    batch = MicroBatch(images, torch.zeros(b, 1, dtype=torch.long), context, targets, 0)
    before = model.context_encoder.blocks[0].attn.qkv.weight.detach().clone()
    target_before = model.target_encoder.blocks[0].attn.qkv.weight.detach().clone()
    autocast = autocast_factory(recipe.train.precision, device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert model.context_encoder(images[:1].to(device)).dtype == torch.bfloat16
    loss = train_step(model, [batch], optimizer, device=device, autocast=autocast)
    model.update_target(0.996)
    assert torch.isfinite(loss) and 0 < float(loss) < 2
    after = model.context_encoder.blocks[0].attn.qkv.weight
    assert after.dtype == torch.float32 and not torch.equal(after, before)
    expected = 0.996 * target_before + 0.004 * after.detach()
    torch.testing.assert_close(model.target_encoder.blocks[0].attn.qkv.weight, expected)
