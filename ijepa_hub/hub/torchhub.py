"""torch.hub entrypoints, generated from the registry's released variants (``hubconf.py`` re-exports them)."""
from __future__ import annotations

from typing import Any, Callable

from ..registry import VARIANTS, PretrainedVariant
from .load import from_pretrained
from .model import EncoderChoice, PretrainedIJepa

__all__ = ["ALIASES", "entrypoints"]

# Short names for torch.hub users; each maps to a registry variant.
ALIASES = {"ijepa_vith14": "ijepa_vith14_1k"}


def _entrypoint(name: str, variant: PretrainedVariant) -> Callable[..., PretrainedIJepa]:
    def entrypoint(
        *,
        pretrained: bool = True,
        encoder: EncoderChoice = "target",
        with_predictor: bool = False,
        **kwargs: Any,
    ) -> PretrainedIJepa:
        if pretrained:
            return from_pretrained(variant.name, encoder=encoder, with_predictor=with_predictor, **kwargs)
        config = variant.model_config.replace(**kwargs)
        return PretrainedIJepa(config, encoder=encoder, with_predictor=with_predictor, variant=variant.name)

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
