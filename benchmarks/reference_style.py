"""A baseline I-JEPA training step written the way the reference release does it.

Used only by the benchmarks, side by side with ijepa_hub on the same weights, masks and batch:
hand-written softmax attention, masks applied by a Python loop of gathers, a Python loop over
parameters for the EMA update, a GradScaler under bf16 autocast on GPU, AdamW without fusion, and no
torch.compile. Parameter names follow the released layout so that ijepa_hub's state dicts load.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def gather_each(x, masks):
    """One gather per mask in a Python loop, concatenated mask-major."""
    parts = [torch.gather(x, 1, m.unsqueeze(-1).repeat(1, 1, x.size(-1))) for m in masks]
    return torch.cat(parts, dim=0)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Encoder(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches, cfg.embed_dim), requires_grad=False)
        hidden = round(cfg.embed_dim * cfg.mlp_ratio)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, hidden) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

    def forward(self, x, masks=None):
        x = self.patch_embed(x) + self.pos_embed
        if masks is not None:
            x = gather_each(x, masks)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class Predictor(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        d = cfg.pred_embed_dim
        self.predictor_embed = nn.Linear(cfg.embed_dim, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.predictor_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches, d), requires_grad=False)
        self.predictor_blocks = nn.ModuleList(Block(d, cfg.num_heads, 4 * d) for _ in range(cfg.pred_depth))
        self.predictor_norm = nn.LayerNorm(d, eps=1e-6)
        self.predictor_proj = nn.Linear(d, cfg.embed_dim)

    def forward(self, x, masks_x, masks):
        b = len(x) // len(masks_x)
        x = self.predictor_embed(x)
        x = x + gather_each(self.predictor_pos_embed.repeat(b, 1, 1), masks_x)
        _, n_ctx, _ = x.shape
        pos = gather_each(self.predictor_pos_embed.repeat(b, 1, 1), masks)
        pred_tokens = self.mask_token.repeat(pos.size(0), pos.size(1), 1) + pos
        x = x.repeat(len(masks), 1, 1)
        x = torch.cat([x, pred_tokens], dim=1)
        for blk in self.predictor_blocks:
            x = blk(x)
        x = self.predictor_norm(x)[:, n_ctx:]
        return self.predictor_proj(x)


class ReferenceStyleStep:
    """One optimiser step as the release runs it, with weights copied from an ijepa_hub ``IJepa``."""

    def __init__(self, model, *, lr: float = 1e-3, weight_decay: float = 0.04, bf16: bool = False) -> None:
        cfg = model.config
        device = next(model.parameters()).device
        self.encoder = Encoder(cfg).to(device)
        self.encoder.load_state_dict(model.context_encoder.state_dict())
        self.predictor = Predictor(cfg).to(device)
        self.predictor.load_state_dict(model.predictor.state_dict())
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.load_state_dict(model.target_encoder.state_dict())
        for p in self.target_encoder.parameters():
            p.requires_grad = False
        params = [p for m in (self.encoder, self.predictor) for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)
        self.bf16 = bf16
        self.scaler = torch.amp.GradScaler(device.type) if bf16 else None
        self.device_type = device.type

    def __call__(self, images, masks_enc, masks_pred, momentum: float = 0.996) -> float:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            with torch.no_grad():
                h = self.target_encoder(images)
                h = F.layer_norm(h, (h.size(-1),))
                h = gather_each(h, masks_pred)
            z = self.encoder(images, masks_enc)
            z = self.predictor(z, masks_enc, masks_pred)
            loss = F.smooth_l1_loss(z, h)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad()
        with torch.no_grad():
            for online, target in zip(self.encoder.parameters(), self.target_encoder.parameters()):
                target.data.mul_(momentum).add_((1.0 - momentum) * online.detach().data)
        return loss.item()
