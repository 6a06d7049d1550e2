"""``PretrainedIJepa``: what ``from_pretrained`` and the torch.hub entrypoints return.

An :class:`~ijepa_hub.IJepa` (with its ``encoder``, ``extract_features``, ``save_pretrained`` and
``push_to_hub``) that holds only the networks asked for: a network not loaded is ``None``, so no
memory is spent on it. It records where its weights came from (``variant``, ``source``), and its
``forward`` returns features: a loaded model is for inference, not for the training loss.
"""
from __future__ import annotations

from typing import Any, Union

import torch

from ..deprecation import deprecated_attributes
from ..models import Classifier, IJepa
from ..registry import ModelConfig
from .layout import ENCODER_PART, EncoderName, renamed_options, select_parts

__all__ = ["PretrainedIJepa", "PretrainedModel"]

__getattr__ = deprecated_attributes(__name__, {
    # EncoderChoice also allowed "both", the deprecated spelling of encoder="target", with_context_encoder=True
    "EncoderChoice": ("ijepa_hub.EncoderName", lambda: EncoderName),
})


class PretrainedIJepa(IJepa):
    """An I-JEPA model with its feature encoder and, if asked for, the context encoder and the predictor.

    ``encoder`` is the feature encoder: ``"target"`` (the EMA encoder the paper evaluates, default) or
    ``"context"``. ``with_context_encoder=True`` keeps the context encoder beside the target encoder;
    ``with_predictor=True`` keeps the predictor. :attr:`encoder` is the feature encoder module.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        encoder: EncoderName = "target",
        with_context_encoder: bool = False,
        with_predictor: bool = False,
        variant: str | None = None,
        source: str | None = None,
        **ijepa_kwargs: Any,
    ) -> None:
        options = renamed_options(
            dict(encoder=encoder, with_context_encoder=with_context_encoder), {}, where="PretrainedIJepa"
        )
        parts = select_parts(options["encoder"], with_context_encoder=options["with_context_encoder"],
                             with_predictor=with_predictor)
        super().__init__(config, with_predictor=with_predictor, **ijepa_kwargs)
        for part in ENCODER_PART.values():
            if part not in parts:
                setattr(self, part, None)
        self.encoder_name = options["encoder"]
        self.variant = variant
        self.source = source

    @staticmethod
    def parts_for(encoder: EncoderName, with_predictor: bool, with_context_encoder: bool = False) -> tuple[str, ...]:
        """The parts (``target_encoder``...) that a model built with these options holds (``encoder="both"``:
        deprecated, still accepted)."""
        options = renamed_options(dict(encoder=encoder, with_context_encoder=with_context_encoder), {},
                                  where="PretrainedIJepa.parts_for")
        return tuple(select_parts(**options, with_predictor=with_predictor))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a preprocessed batch [B, C, H, W] (see :func:`ijepa_hub.preprocess`): the feature
        encoder's normed patch tokens [B, N, D]; average them over N for the paper's pooled feature.

        (The training loss is :meth:`IJepa.forward`; to train, build an :class:`IJepa` with
        :func:`ijepa_hub.load_reference_checkpoint` or :func:`ijepa_hub.create_model`.)
        """
        return self.forward_features(images)

    def extra_repr(self) -> str:
        return f"encoder={self.encoder_name!r}, variant={self.variant!r}, source={self.source!r}"


# What ``from_pretrained`` returns: the kind of repo decides (config.json's ``ijepa.kind``). An encoder repo,
# a released checkpoint or a transformers-layout repo gives a PretrainedIJepa; a classifier repo a Classifier.
PretrainedModel = Union[PretrainedIJepa, Classifier]  # noqa: UP007  (a runtime alias, usable in isinstance)
