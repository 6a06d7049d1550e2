"""ijepa_hub: I-JEPA models, masking, training and Hugging Face Hub loading."""
from . import (
    finetune,  # fine-tuning: ijepa_hub.finetune.finetune(recipe, out_dir=...), CLI ijepa-finetune
    train,  # the trainer: ijepa_hub.train.train(recipe, out_dir=...), CLI ijepa-train
)
from .data import SyntheticShapes
from .deploy import export_deployable
from .errors import (
    CheckpointError,
    CheckpointWriteError,
    DataError,
    ExportError,
    HubLayoutError,
    IJepaError,
    ImageReadError,
    MaskError,
    MissingExtraError,
    PickleNotAllowedError,
    PoolingMismatchError,
    PushToHubError,
    RecipeError,
    RunFolderError,
    RunLockedError,
    StateDictMismatchError,
    TooManyBrokenImagesError,
    TrainingDivergedError,
    WeightsNotCachedError,
)
from .features import Features, extract_features, preprocess
from .hub import PretrainedIJepa, PretrainedModel, export_transformers, from_pretrained, push_to_hub, save_pretrained
from .models import AttentivePooler, Classifier, EncoderName, IJepa, Predictor, VisionTransformerEncoder, create_model
from .recipe import Recipe, list_recipes, load_recipe
from .reference import infer_model_config, load_reference_checkpoint, read_reference_checkpoint
from .registry import ModelConfig, get_model_config, get_variant, list_models, list_variants
from .version import __version__

__all__ = [
    "__version__",
    "create_model",
    "from_pretrained",
    "save_pretrained",
    "push_to_hub",
    "export_transformers",
    "export_deployable",
    "extract_features",
    "preprocess",
    "Features",
    "PretrainedIJepa",
    "PretrainedModel",
    "EncoderName",
    "load_reference_checkpoint",
    "read_reference_checkpoint",
    "infer_model_config",
    "list_models",
    "list_variants",
    "get_model_config",
    "get_variant",
    "load_recipe",
    "list_recipes",
    "train",
    "finetune",
    "Classifier",
    "AttentivePooler",
    "SyntheticShapes",
    "IJepa",
    "VisionTransformerEncoder",
    "Predictor",
    "ModelConfig",
    "Recipe",
    "IJepaError",
    "CheckpointError",
    "StateDictMismatchError",
    "PickleNotAllowedError",
    "HubLayoutError",
    "PoolingMismatchError",
    "WeightsNotCachedError",
    "CheckpointWriteError",
    "DataError",
    "ImageReadError",
    "TooManyBrokenImagesError",
    "TrainingDivergedError",
    "RecipeError",
    "PushToHubError",
    "MissingExtraError",
    "ExportError",
    "MaskError",
    "RunFolderError",
    "RunLockedError",
]
