"""``PretrainedIJepa``: what ``from_pretrained`` and the torch.hub entrypoints return.

An :class:`~ijepa_hub.IJepa` that holds only the networks that were asked for (an encoder not loaded
is ``None``, so no memory is spent on it) and adds ``extract_features``, ``save_pretrained`` and
``push_to_hub``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Sequence

from ..features import Features, ImageInput, extract_features
from ..models import IJepa, VisionTransformerEncoder
from ..registry import ModelConfig
from . import save as _save

__all__ = ["PretrainedIJepa", "EncoderChoice"]

EncoderChoice = Literal["target", "context", "both"]
_KEEP = {
    "target": ("target_encoder",),
    "context": ("context_encoder",),
    "both": ("context_encoder", "target_encoder"),
}


class PretrainedIJepa(IJepa):
    """An I-JEPA model with one or both encoders (and optionally the predictor) and Hub methods.

    ``encoder`` picks the networks kept: ``"target"`` (the EMA encoder the paper evaluates),
    ``"context"``, or ``"both"`` (features from the target). :attr:`encoder` is the feature encoder.
    Training methods of :class:`IJepa` need ``"both"`` and the predictor.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        encoder: EncoderChoice = "target",
        with_predictor: bool = False,
        variant: str | None = None,
        source: str | None = None,
        **ijepa_kwargs: Any,
    ) -> None:
        if encoder not in _KEEP:
            raise ValueError(f"encoder must be one of {list(_KEEP)}, got {encoder!r}")
        super().__init__(config, with_predictor=with_predictor, **ijepa_kwargs)
        for part in ("context_encoder", "target_encoder"):
            if part not in _KEEP[encoder]:
                setattr(self, part, None)
        self.encoder_name: Literal["target", "context"] = "context" if encoder == "context" else "target"
        self.variant = variant
        self.source = source

    @staticmethod
    def parts_for(encoder: EncoderChoice, with_predictor: bool) -> tuple[str, ...]:
        """The state-dict parts (``target_encoder``...) that a model built with these options loads."""
        if encoder not in _KEEP:
            raise ValueError(f"encoder must be one of {list(_KEEP)}, got {encoder!r}")
        return _KEEP[encoder] + (("predictor",) if with_predictor else ())

    @property
    def encoder(self) -> VisionTransformerEncoder:
        """The encoder that ``extract_features`` runs."""
        return self.context_encoder if self.encoder_name == "context" else self.target_encoder

    def forward_features(self, x):
        """Normed patch tokens [B, N, D] of the feature encoder for a preprocessed batch."""
        return self.encoder(x)

    def extract_features(self, images: ImageInput | Sequence[ImageInput], **kwargs: Any) -> Features:
        """Features of one image or a list; see :func:`ijepa_hub.extract_features` for the options."""
        return extract_features(self.encoder, images, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        """Write this model as an ijepa_hub repo folder (see :func:`ijepa_hub.save_pretrained`)."""
        kwargs.setdefault("encoder", self.encoder_name)
        return _save.save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this model to the Hub in one commit; returns the commit URL (see :func:`ijepa_hub.push_to_hub`)."""
        kwargs.setdefault("encoder", self.encoder_name)
        return _save.push_to_hub(self, repo_id, **kwargs)

    def extra_repr(self) -> str:
        return f"encoder={self.encoder_name!r}, variant={self.variant!r}, source={self.source!r}"

