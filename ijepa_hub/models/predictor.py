"""The narrow I-JEPA predictor, in the released key layout."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from ..registry import ModelConfig
from .encoder import MaskArg, gather_tokens, init_weights
from .pos_embed import sincos_2d

__all__ = ["Predictor"]


class Predictor(nn.Module):
    """Predicts target-encoder features at target positions from context-encoder tokens.

    Each target block is its own sequence: the embedded context tokens followed by mask tokens at that
    block's positions, so target blocks never attend to each other. All blocks of a batch run as one
    batch of ``M*B`` sequences (mask-major, matching :func:`~ijepa_hub.models.encoder.apply_masks`).
    """

    def __init__(
        self,
        *,
        num_patches: int,
        embed_dim: int = 768,
        predictor_embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        grid = round(num_patches**0.5)
        if grid * grid != num_patches:
            raise ValueError(f"predictor expects a square patch grid, got {num_patches} patches")
        self.grid_size = (grid, grid)
        self.embed_dim = embed_dim
        self.predictor_embed_dim = predictor_embed_dim
        self.grad_checkpointing = False

        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        self.predictor_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches, predictor_embed_dim), requires_grad=False
        )
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth ramp
        self.predictor_blocks = nn.ModuleList(
            Block(
                dim=predictor_embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=True,
                drop_path=dpr[i],
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
                act_layer=nn.GELU,
            )
            for i in range(depth)
        )
        for block in self.predictor_blocks:
            block.attn.fused_attn = True
        self.predictor_norm = nn.LayerNorm(predictor_embed_dim, eps=1e-6)
        # the width it predicts: the target encoder's (a distilled student's teacher may be wider than its encoder)
        self.out_dim = out_dim if out_dim is not None else embed_dim
        self.predictor_proj = nn.Linear(predictor_embed_dim, self.out_dim)
        init_weights(self)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    @classmethod
    def from_config(cls, config: ModelConfig, **kwargs) -> Predictor:
        return cls(
            num_patches=config.num_patches,
            embed_dim=config.embed_dim,
            predictor_embed_dim=config.pred_embed_dim,
            depth=config.pred_depth,
            num_heads=config.pred_num_heads,
            mlp_ratio=4.0,  # 4 for every released predictor, giant included
            **kwargs,
        )

    @torch.no_grad()
    def reset_pos_embed(self) -> None:
        self.predictor_pos_embed.copy_(sincos_2d(self.predictor_embed_dim, self.grid_size))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward(self, context: torch.Tensor, context_masks: MaskArg, target_masks: MaskArg) -> torch.Tensor:
        """Predict target features.

        Args:
            context: context-encoder output [B, K_ctx, D] (one context mask per image).
            context_masks: the context indices [B, K_ctx] (a list holding one such tensor is accepted).
            target_masks: M index tensors [B, K_tgt] (list, or a tensor [M, B, K_tgt]).

        Returns:
            [M*B, K_tgt, out_dim] predictions, mask-major (``out_dim``: the encoder's width unless given).
        """
        ctx_idx = _single_mask(context_masks)
        tgt_idx = target_masks if isinstance(target_masks, torch.Tensor) else torch.stack(list(target_masks))
        if tgt_idx.dim() == 2:
            tgt_idx = tgt_idx.unsqueeze(0)
        m, b, k_tgt = tgt_idx.shape
        if context.shape[0] != b:
            raise ValueError(f"context batch {context.shape[0]} does not match target masks batch {b}")

        pos = self.predictor_pos_embed.expand(b, -1, -1).to(context.dtype)
        x = self.predictor_embed(context) + gather_tokens(pos, ctx_idx)
        k_ctx = x.shape[1]
        x = x.repeat(m, 1, 1)  # [M*B, K_ctx, d], mask-major

        tgt_pos = gather_tokens(pos.repeat(m, 1, 1), tgt_idx.reshape(m * b, k_tgt))
        queries = self.mask_token.to(x.dtype) + tgt_pos
        x = torch.cat([x, queries], dim=1)

        if self.grad_checkpointing and torch.is_grad_enabled():
            from timm.models import checkpoint_seq

            x = checkpoint_seq(self.predictor_blocks, x)
        else:
            for block in self.predictor_blocks:
                x = block(x)
        x = self.predictor_norm(x[:, k_ctx:])
        return self.predictor_proj(x)


def _single_mask(masks: MaskArg) -> torch.Tensor:
    if isinstance(masks, torch.Tensor):
        if masks.dim() == 3 and masks.shape[0] == 1:
            return masks[0]
        if masks.dim() == 2:
            return masks
    elif masks is not None and len(masks) == 1:
        return masks[0]
    raise ValueError("the predictor takes exactly one context mask per image ([B, K] or a list of one)")
