"""ijepa-finetune: a pretrained I-JEPA encoder plus a head, fine-tuned on labelled images
(``python -m ijepa_hub.finetune`` / ``torchrun -m ijepa_hub.finetune``)."""
from .loop import FinetuneResult, FinetuneSchedules, build_finetune_optimizer, finetune, finetune_step
from .model import build_classifier
from .recipe import FinetuneRecipe, list_finetune_recipes, load_finetune_recipe

__all__ = [
    "finetune", "finetune_step", "FinetuneResult", "FinetuneSchedules", "FinetuneRecipe", "load_finetune_recipe",
    "list_finetune_recipes", "build_classifier", "build_finetune_optimizer",
]
