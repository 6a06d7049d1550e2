"""I-JEPA networks: encoder, predictor and the IJepa wrapper, the classifier, and the factory that builds them.

The layer below the hub: nothing here imports :mod:`ijepa_hub.hub` or :mod:`ijepa_hub.features`. The models'
``save_pretrained`` / ``push_to_hub`` come from :class:`HubMixin`, whose writer the hub layer registers.
"""
from .classifier import Classifier
from .encoder import VisionTransformerEncoder, apply_masks, gather_tokens
from .factory import create_model
from .heads import AttentivePooler
from .hub_mixin import HubMixin
from .ijepa import EncoderName, IJepa, jepa_loss
from .predictor import Predictor

__all__ = [
    "VisionTransformerEncoder",
    "Classifier",
    "Predictor",
    "IJepa",
    "create_model",
    "jepa_loss",
    "apply_masks",
    "gather_tokens",
    "AttentivePooler",
    "HubMixin",
    "EncoderName",
]
