"""The I-JEPA encoder: timm's VisionTransformer in the released layout, with a masked forward."""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from ..registry import ModelConfig
from .pos_embed import resize_pos_embed, sincos_2d

__all__ = ["VisionTransformerEncoder", "apply_masks", "gather_tokens"]

MaskArg = torch.Tensor | Sequence[torch.Tensor] | None


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Select tokens ``index`` [B, K] from ``x`` [B, N, D] -> [B, K, D]."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def apply_masks(x: torch.Tensor, masks: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Gather each [B, K] index tensor of ``masks`` from ``x`` and stack mask-major: [M*B, K, D].

    A single tensor of shape [M, B, K] is accepted as well as a list of M tensors [B, K].
    """
    if isinstance(masks, torch.Tensor) and masks.dim() == 2:
        return gather_tokens(x, masks)
    masks = torch.stack(list(masks)) if not isinstance(masks, torch.Tensor) else masks
    m, b, k = masks.shape
    return gather_tokens(x.repeat(m, 1, 1), masks.reshape(m * b, k))


class VisionTransformerEncoder(VisionTransformer):
    """A ViT with no class token, a fixed sin-cos ``pos_embed`` and a per-token final norm.

    State-dict keys are those of the released checkpoints' ``encoder`` (and of timm). ``forward``
    returns the normed patch tokens [B, N, D]; with ``masks`` only the kept tokens go through the
    blocks (positions are added before the gather). Inputs of other sizes use a resized position table
    (:func:`resize_pos_embed`). ``global_pool`` is timm's pooling for :meth:`forward_head` ("avg"; a
    :class:`~ijepa_hub.models.Classifier` in attentive mode uses "map", timm's attention pool).
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
        **kwargs,
    ) -> None:
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=0,
            global_pool=global_pool,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            class_token=False,
            no_embed_class=True,
            fc_norm=False,
            dynamic_img_size=True,
            drop_path_rate=drop_path_rate,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            act_layer=nn.GELU,
            weight_init="skip",
            **kwargs,
        )
        self.pos_embed.requires_grad_(False)
        for block in self.blocks:
            block.attn.fused_attn = True  # F.scaled_dot_product_attention, whatever TIMM_FUSED_ATTN says
        init_weights(self)

    @classmethod
    def from_config(cls, config: ModelConfig, **kwargs) -> VisionTransformerEncoder:
        return cls(
            img_size=config.img_size,
            patch_size=config.patch_size,
            in_chans=config.in_chans,
            embed_dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            **kwargs,
        )

    @torch.no_grad()
    def reset_pos_embed(self) -> None:
        """Fill ``pos_embed`` with the fixed 2-D sin-cos table of the native grid."""
        self.pos_embed.copy_(sincos_2d(self.embed_dim, self.patch_embed.grid_size))

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape  # patch_embed emits NHWC with dynamic_img_size
        pos = resize_pos_embed(self.pos_embed, self.patch_embed.grid_size, (h, w))
        return x.reshape(b, h * w, c) + pos.to(x.dtype)

    def forward_features(self, x: torch.Tensor, masks: MaskArg = None) -> torch.Tensor:
        """Normed patch tokens: [B, N, D], or [M*B, K, D] for M index tensors [B, K] in ``masks``."""
        x = self._pos_embed(self.patch_embed(x))
        if masks is not None:
            x = apply_masks(x, masks)
        x = self.blocks_forward(x)
        return self.norm(x)

    def blocks_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            from timm.models import checkpoint_seq

            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward(self, x: torch.Tensor, masks: MaskArg = None) -> torch.Tensor:
        return self.forward_features(x, masks)

    def forward_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the normed patch tokens: the paper's evaluation feature [B, D]."""
        return self.forward_features(x).mean(dim=1)

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        return_class_token: bool = False,
        **kwargs,
    ) -> list:
        """DINOv2's interface over timm's :meth:`forward_intermediates` (``n``: last n blocks or block indices).

        As timm's: ``norm`` applies the final norm (DINOv2 defaults to True, timm and this method to
        False: pass it), ``reshape`` gives [B, D, h, w] instead of [B, N, D]. I-JEPA has no class
        token, so DINOv2's ``return_class_token=True`` pairs each output with the mean of that block's
        patch tokens [B, D] (the paper's pooled feature) in its place: ``[(tokens, pooled), ...]``.
        ``return_prefix_tokens`` is timm's flag; there are no prefix tokens, so it changes nothing.
        """
        outs = super().get_intermediate_layers(x, n, reshape=reshape, return_prefix_tokens=False, norm=norm, **kwargs)
        if return_class_token:
            return [(y, y.mean(dim=(2, 3) if reshape else 1)) for y in outs]
        return list(outs)


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """Initialise as the released models were trained.

    Trunc-normal (std 0.02) on every Linear and the patch-embedding conv, zero biases, LayerNorm
    (1, 0), no depth rescaling; fixed sin-cos tables where a module has them.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if hasattr(m, "reset_pos_embed"):
            m.reset_pos_embed()
