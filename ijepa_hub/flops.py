"""FLOPs of the networks and of one I-JEPA training step, counted from the sizes (no model built).

A multiply-add counts as 2 FLOPs; only matrix products are counted (as ``torch.utils.flop_counter``
does: norms, activations and softmax are left out). One ViT forward over ``n`` tokens, width ``D``,
depth ``L``, MLP ratio ``r``:

    MACs = L * (n * (4 D^2 + 2 r D^2) + 2 n^2 D)   (+ patch embedding N * 3 * p^2 * D)

A training step per image: target encoder forward over all N tokens (no gradient) + 3 x (context encoder
over K_ctx tokens + predictor), where 3 x is forward plus a backward of twice the forward, except for the
context encoder's patch embedding, whose input needs no gradient (2 x). The predictor embeds the K_ctx
context tokens once, then runs M sequences of K_ctx + K_tgt tokens at its width d and projects the M*K_tgt
predictions back to D. ``tests/test_plan.py`` checks this against ``FlopCounterMode`` on real steps.
"""
from __future__ import annotations

from .registry import ModelConfig

__all__ = ["FLOP_FORMULA", "vit_forward_macs", "recompute_macs", "patch_embed_macs", "encoder_forward_flops", "ijepa_step_flops"]

FLOP_FORMULA = (
    "2 FLOPs per multiply-add, matrix products only. ViT forward over n tokens: L*(n*(4D^2 + 2rD^2) + 2n^2 D) "
    "MACs, plus the patch embedding N*3*p^2*D over all N patches. Training step per image = target encoder "
    "forward over N tokens + 3 x (context encoder over K_ctx tokens + predictor: K_ctx*D*d embed + M sequences "
    "of K_ctx+K_tgt tokens at width d + M*K_tgt*d*D projection), the context patch embedding 2 x (no input "
    "gradient); K_ctx and K_tgt the sizes of the step's masks (ijepa_hub.flops)."
)


def vit_forward_macs(tokens: float, dim: int, depth: int, mlp_ratio: float = 4.0) -> float:
    """Multiply-adds of ``depth`` transformer blocks over ``tokens`` tokens of width ``dim``."""
    return depth * (tokens * (4 * dim**2 + 2 * mlp_ratio * dim**2) + 2 * tokens**2 * dim)


def recompute_macs(tokens: float, dim: int, depth: int, mlp_ratio: float = 4.0) -> float:
    """Multiply-adds the backward of activation checkpointing runs again, per block sequence: torch's
    checkpoint stops each block's recomputation before fc2 (no backward needs its output), so attention,
    its projections and fc1 run again."""
    return depth * (tokens * (4 + mlp_ratio) * dim**2 + 2 * tokens**2 * dim)


def patch_embed_macs(config: ModelConfig) -> float:
    """Multiply-adds of the patch-embedding convolution over all patches of one image."""
    return config.num_patches * config.in_chans * config.patch_size**2 * config.embed_dim


def encoder_forward_flops(config: ModelConfig, tokens: float | None = None) -> float:
    """FLOPs of one encoder forward over ``tokens`` kept tokens (all patches by default)."""
    n = config.num_patches if tokens is None else tokens
    return 2 * (vit_forward_macs(n, config.embed_dim, config.depth, config.mlp_ratio) + patch_embed_macs(config))


def ijepa_step_flops(config: ModelConfig, k_ctx: float, k_tgt: float, num_targets: int = 4) -> dict[str, float]:
    """FLOPs per image of one training step (forward + backward), split by network, for given mask sizes."""
    d, big = config.pred_embed_dim, config.embed_dim
    target = encoder_forward_flops(config)
    context = 3 * encoder_forward_flops(config, k_ctx) - 2 * patch_embed_macs(config)  # no input gradient
    predictor = 3 * 2 * (
        k_ctx * big * d
        + num_targets * vit_forward_macs(k_ctx + k_tgt, d, config.pred_depth, 4.0)
        + num_targets * k_tgt * d * big
    )
    return {"target_forward": target, "context_fwd_bwd": context, "predictor_fwd_bwd": predictor,
            "total": target + context + predictor}
