"""Heads on frozen (or fine-tuned) encoder tokens: the attentive pooler of V-JEPA's frozen evaluation."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.layers import AttentionPoolLatent

__all__ = ["AttentivePooler"]


class AttentivePooler(nn.Module):
    """One learned query cross-attends over tokens [B, N, D], then a linear classifier: logits [B, num_classes].

    The pooling is timm's :class:`~timm.layers.AttentionPoolLatent` (multi-head cross-attention from a
    learned latent query, then a residual MLP on the LayerNormed result). ``num_classes=0`` returns the
    pooled vector [B, D] (no classifier), for a caller's own head.
    """

    def __init__(self, embed_dim: int, num_heads: int = 8, num_classes: int = 1000, *, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"AttentivePooler: num_heads={num_heads} must divide embed_dim={embed_dim}")
        self.pool = AttentionPoolLatent(embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                        norm_layer=partial(nn.LayerNorm, eps=1e-6))
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.01)
            nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(tokens))
