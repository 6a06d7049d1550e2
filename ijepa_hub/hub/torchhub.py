"""torch.hub entrypoints, generated from the registry's released variants (``hubconf.py`` re-exports them)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import ALIASES, VARIANTS, PretrainedVariant
from .layout import EncoderName, renamed_options
from .load import from_pretrained
from .model import PretrainedIJepa

__all__ = ["ALIASES", "entrypoints"]


def _entrypoint(name: str, variant: PretrainedVariant) -> Callable[..., PretrainedIJepa]:
    def entrypoint(
        *,
        pretrained: bool = True,
        encoder: EncoderName = "target",
        with_context_encoder: bool = False,
        with_predictor: bool = False,
        **kwargs: Any,
    ) -> PretrainedIJepa:
        options = renamed_options(
            dict(encoder=encoder, with_context_encoder=with_context_encoder, with_predictor=with_predictor), {},
            where=name,
        )
        if pretrained:
            return from_pretrained(variant.name, **options, **kwargs)
        # random weights: the variant's architecture only, so the model does not claim the release (variant=None)
        config = variant.model_config.replace(**kwargs)
        return PretrainedIJepa(config, **options, source=f"torch.hub {name} (pretrained=False: random weights)")

    config = variant.model_config
    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = (
        f"I-JEPA {config.name} at {config.img_size} px, {variant.dataset}, "
        f"{variant.epochs} epochs (target encoder by default; pretrained=False: random weights)."
    )
    return entrypoint


def entrypoints() -> dict[str, Callable[..., PretrainedIJepa]]:
    """One keyword-only builder per released variant, plus the :data:`ALIASES`."""
    entries = {name: _entrypoint(name, variant) for name, variant in VARIANTS.items()}
    entries.update({alias: _entrypoint(alias, VARIANTS[target]) for alias, target in ALIASES.items()})
    return entries
