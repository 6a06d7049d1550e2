"""ijepa_hub: I-JEPA models, masking, training and Hugging Face Hub loading."""
from .errors import CheckpointError, IJepaError, StateDictMismatchError
from .models import IJepa, Predictor, VisionTransformerEncoder, create_model
from .recipe import Recipe, list_recipes, load_recipe
from .reference import infer_model_config, load_reference_checkpoint, read_reference_checkpoint
from .registry import ModelConfig, get_model_config, get_variant, list_models, list_variants

__version__ = "0.1.0"

__all__ = [
    "create_model",
    "load_reference_checkpoint",
    "read_reference_checkpoint",
    "infer_model_config",
    "list_models",
    "list_variants",
    "get_model_config",
    "get_variant",
    "load_recipe",
    "list_recipes",
    "IJepa",
    "VisionTransformerEncoder",
    "Predictor",
    "ModelConfig",
    "Recipe",
    "IJepaError",
    "CheckpointError",
    "StateDictMismatchError",
]
