"""``Classifier``: an I-JEPA encoder with a linear head on its pooled features, in timm's layout.

The encoder is timm's VisionTransformer with ``fc_norm=False``: every patch token is normed, pooled, then
``head`` (``nn.Linear``) gives the logits. Two poolings, both timm's own (``global_pool``):

- ``"avg"``: the mean of the tokens (full and linear fine-tuning);
- ``"map"``: the attentive pooler (timm's ``attn_pool``, an :class:`~timm.layers.AttentionPoolLatent` with the
  encoder's ``num_heads``, ``mlp_ratio``, norm and activation): one learned query cross-attends over the
  tokens (attentive probing).

That is exactly what ``timm.create_model(..., num_classes=N, global_pool=...)`` builds from the same config,
so the state dict (``head.*``, and ``attn_pool.*`` under "map", beside the encoder's keys) loads in timm
unchanged and gives the same logits.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import torch
import torch.nn as nn

from ..bounds import CROP_FRACTION, POSITIVE, check_value
from ..data.images import ImageInput
from ..data.preprocess import as_image_list, preprocess
from ..data.transforms import CROP_PCT
from ..registry import ModelConfig
from .encoder import VisionTransformerEncoder
from .hub_mixin import HubMixin

__all__ = ["Classifier", "POOLINGS", "POOLED_PARTS", "pooling_of"]

Pooling = Literal["avg", "map"]
POOLINGS: tuple[str, ...] = ("avg", "map")
POOLED_PARTS = ("head.", "attn_pool.")  # key prefixes of the classifier's own modules, beside the encoder's


def pooling_of(keys: Iterable[str]) -> str:
    """The ``global_pool`` of a classifier's state-dict ``keys``: ``"map"`` if it holds ``attn_pool.*``, else ``"avg"``."""
    return "map" if any(k.startswith("attn_pool.") for k in keys) else "avg"


class Classifier(HubMixin, VisionTransformerEncoder):
    """Encoder + linear head: ``forward(images)`` gives logits [B, num_classes].

    ``label_names`` names the classes (index order); ``crop_pct`` is the evaluation crop the classifier
    was validated with (1.0 keeps the whole image). ``global_pool``: ``"avg"`` (mean of the tokens) or
    ``"map"`` (the attentive pooler, timm's ``attn_pool``). ``classify`` runs raw images end to end;
    ``save_pretrained`` / ``push_to_hub`` (:class:`HubMixin`) write a classifier repo that timm also loads.
    """

    repo_kind: ClassVar[str] = "classifier"

    def __init__(
        self,
        config: ModelConfig,
        label_names: Sequence[str],
        *,
        drop_path_rate: float = 0.0,
        head_init_std: float = 0.01,
        crop_pct: float | None = None,
        global_pool: Pooling = "avg",
    ) -> None:
        if len(label_names) < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {len(label_names)}: {list(label_names)}")
        if global_pool not in POOLINGS:
            raise ValueError(f"global_pool must be one of {POOLINGS}, got {global_pool!r}")
        super().__init__(
            img_size=config.img_size, patch_size=config.patch_size, in_chans=config.in_chans,
            embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
            drop_path_rate=drop_path_rate, global_pool=global_pool,
        )
        if self.attn_pool is not None:
            self.attn_pool.fused_attn = True  # F.scaled_dot_product_attention, as the blocks
        self.reset_classifier(len(label_names))  # timm's head: nn.Linear(embed_dim, num_classes) named "head"
        with torch.no_grad():
            nn.init.trunc_normal_(self.head.weight, std=head_init_std)
            nn.init.zeros_(self.head.bias)
        self.config = config
        self.label_names = [str(n) for n in label_names]
        self.crop_pct = CROP_PCT if crop_pct is None else crop_pct
        check_value("crop_pct (config.json ijepa.classifier.crop_pct)", self.crop_pct, CROP_FRACTION, error=ValueError)
        self.source: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Logits [B, num_classes] of a preprocessed batch [B, C, H, W]."""
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """timm's set, plus the attention pool's learned query (a token, like timm's ``cls_token``)."""
        return super().no_weight_decay() | ({"attn_pool.latent"} if self.attn_pool is not None else set())

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights without the head or the attention pool (the layout of an ijepa_hub ``model.safetensors``)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(POOLED_PARTS)}

    @torch.inference_mode()
    def classify(
        self, images: ImageInput | Sequence[ImageInput], *, top_k: int = 5, batch_size: int = 32,
    ) -> list[list[tuple[str, float]]]:
        """For each image (path, PIL image, array or tensor), the ``top_k`` ``(label, probability)`` pairs.

        Images are preprocessed as in validation (:func:`ijepa_hub.preprocess` with this model's
        ``crop_pct``); the model runs on its own device in fp32.
        """
        check_value("top_k", top_k, POSITIVE, error=ValueError)
        check_value("batch_size", batch_size, POSITIVE, error=ValueError)
        items = as_image_list(images)
        device = next(self.parameters()).device
        k = min(top_k, len(self.label_names))
        was_training = self.training
        self.eval()
        out: list[list[tuple[str, float]]] = []
        try:
            for i in range(0, len(items), batch_size):
                batch = torch.stack([preprocess(x, self.config.img_size, crop_pct=self.crop_pct) for x in items[i:i + batch_size]])
                probs = self(batch.to(device)).float().softmax(dim=-1)
                values, indices = probs.topk(k, dim=-1)
                out += [[(self.label_names[j], float(p)) for p, j in zip(v.tolist(), ix.tolist())]
                        for v, ix in zip(values, indices)]
        finally:
            self.train(was_training)
        return out

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, global_pool={self.global_pool!r}, source={self.source!r}"
