"""IJepa: the context encoder, the EMA target encoder, the predictor, the target path and the loss."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.images import ImageInput
from ..registry import ModelConfig
from .encoder import MaskArg, VisionTransformerEncoder, apply_masks
from .extract import Features, extract_features
from .hub_mixin import HubMixin
from .objectives import Objectives, normalize_targets
from .predictor import Predictor

__all__ = ["IJepa", "jepa_loss", "ema_", "LossKind", "EncoderName"]

LossKind = Literal["smooth_l1", "l2"]
# The encoder selector: which encoder is the feature encoder (``model.encoder``, ``model.safetensors``).
EncoderName = Literal["target", "context"]


def jepa_loss(prediction: torch.Tensor, target: torch.Tensor, kind: LossKind = "smooth_l1") -> torch.Tensor:
    """Mean regression loss between predicted and target features.

    ``smooth_l1`` (beta 1) is what the released code optimises; ``l2`` (mean squared error) is what the
    paper writes.
    """
    if kind == "smooth_l1":
        return F.smooth_l1_loss(prediction, target, beta=1.0)
    if kind == "l2":
        return F.mse_loss(prediction, target)
    raise ValueError(f"unknown loss {kind!r}; use 'smooth_l1' or 'l2'")


@torch.no_grad()
def ema_(target: list[torch.Tensor], online: list[torch.Tensor], momentum: float) -> None:
    """In place, ``target = m * target + (1 - m) * online`` for lists of tensors.

    One fused ``lerp`` pass (``target + (1 - m) * (online - target)``): equal to the two-op form up to
    float rounding, exact at ``m`` = 0 and 1, and reads and writes less memory than a multiply then an add.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
    torch._foreach_lerp_(target, online, 1.0 - momentum)


class IJepa(HubMixin, nn.Module):
    """The three I-JEPA networks and the training objective.

    ``context_encoder`` sees the context tokens and is trained by gradient; ``target_encoder`` is an
    exponential moving average of it that sees the full image; ``predictor`` maps context tokens to
    target-encoder features at the target positions.

    Every model, built here or loaded, has the same user methods: :attr:`encoder` (the feature encoder,
    the target encoder unless ``encoder_name`` says ``"context"``), :meth:`forward_features`,
    :meth:`extract_features`, :meth:`save_pretrained` and :meth:`push_to_hub` (from :class:`HubMixin`:
    an encoder repo whose ``model.safetensors`` is :attr:`encoder_name`'s encoder). ``forward`` is the
    training loss.
    """

    repo_kind: ClassVar[str] = "encoder"  # saved as an encoder repo (HubMixin)
    encoder_name: EncoderName = "target"  # which encoder `encoder` is (the feature encoder)
    # Provenance, set by the loaders: the released variant whose weights these are (None: not released
    # weights, e.g. a new model or random init), and where they were read from.
    variant: str | None = None
    source: str | None = None

    def __init__(
        self,
        config: ModelConfig,
        *,
        loss: LossKind = "smooth_l1",
        drop_path_rate: float = 0.0,
        with_predictor: bool = True,
        objectives: Objectives | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.loss_kind: LossKind = loss
        self.objectives = objectives if objectives is not None else Objectives()  # opt-in extra terms
        self.context_encoder = VisionTransformerEncoder.from_config(config, drop_path_rate=drop_path_rate)
        self.target_encoder = copy.deepcopy(self.context_encoder)
        self.target_encoder.requires_grad_(False)
        self.predictor = Predictor.from_config(config) if with_predictor else None

    @property
    def encoder(self) -> VisionTransformerEncoder:
        """The feature encoder: what :meth:`extract_features` runs and ``model.safetensors`` holds."""
        return self.context_encoder if self.encoder_name == "context" else self.target_encoder

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normed patch tokens [B, N, D] of the feature encoder for a preprocessed batch [B, C, H, W]."""
        return self.encoder(images)

    def extract_features(self, images: ImageInput | Sequence[ImageInput], **kwargs: Any) -> Features:
        """Features of one image or a list, from the feature encoder (see :func:`ijepa_hub.extract_features`)."""
        return extract_features(self.encoder, images, **kwargs)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in the backward pass (context encoder and predictor)."""
        self.context_encoder.set_grad_checkpointing(enable)
        if self.predictor is not None:
            self.predictor.set_grad_checkpointing(enable)

    @torch.no_grad()
    def target_features(self, images: torch.Tensor, target_masks: MaskArg) -> torch.Tensor:
        """The regression targets: target encoder on the full image, normalisation (released: non-affine
        layer norm; ``objectives.target_norm``), gather.

        Returns [M*B, K_tgt, D], mask-major.
        """
        h = self.target_encoder(images)
        h = normalize_targets(h, self.objectives.target_norm)
        return apply_masks(h, target_masks)

    def predict(self, images: torch.Tensor, context_masks: MaskArg, target_masks: MaskArg) -> torch.Tensor:
        """Predicted target features [M*B, K_tgt, D] from the context tokens."""
        return self._context_and_prediction(images, context_masks, target_masks)[1]

    def _context_and_prediction(
        self, images: torch.Tensor, context_masks: MaskArg, target_masks: MaskArg
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.predictor is None:
            raise RuntimeError("this IJepa was built without a predictor (with_predictor=False)")
        z = self.context_encoder(images, context_masks)
        return z, self.predictor(z, context_masks, target_masks)

    def forward(self, images: torch.Tensor, context_masks: MaskArg, target_masks: MaskArg) -> torch.Tensor:
        """The I-JEPA loss for a batch of images and their masks, plus the enabled :attr:`objectives`."""
        target = self.target_features(images, target_masks)
        context, prediction = self._context_and_prediction(images, context_masks, target_masks)
        loss = jepa_loss(prediction, target.to(prediction.dtype), self.loss_kind)
        extra = self.objectives.extra_loss(context, prediction)
        return loss if extra is None else loss + extra

    def _ema_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        target = [p for p in self.target_encoder.parameters()]
        online = [p.detach() for p in self.context_encoder.parameters()]
        if len(target) != len(online):
            raise RuntimeError("context and target encoders have different parameter lists")
        return target, online

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA step ``target = m * target + (1 - m) * context`` over all parameters (:func:`ema_`)."""
        ema_(*self._ema_pairs(), momentum)
