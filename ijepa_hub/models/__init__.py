"""I-JEPA networks: encoder, predictor and the IJepa wrapper, and the factory that builds them."""
from .classifier import Classifier
from .encoder import VisionTransformerEncoder, apply_masks, gather_tokens
from .factory import create_model
from .heads import AttentivePooler
from .ijepa import IJepa, jepa_loss
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
]
