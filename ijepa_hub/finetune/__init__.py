"""ijepa-finetune: a pretrained I-JEPA encoder plus a head, fine-tuned on labelled images on the run engine
(:mod:`ijepa_hub.engine`; ``python -m ijepa_hub.finetune`` / ``torchrun -m ijepa_hub.finetune``)."""
from ..deprecation import deprecated_attributes
from ..engine.schedules import WarmupCosineSchedules
from .loop import FinetuneResult, build_finetune_optimizer, finetune, finetune_step
from .model import build_classifier
from .recipe import FinetuneRecipe, list_finetune_recipes, load_finetune_recipe

__all__ = [
    "finetune", "finetune_step", "FinetuneResult", "FinetuneRecipe", "load_finetune_recipe",
    "list_finetune_recipes", "build_classifier", "build_finetune_optimizer",
]

__getattr__ = deprecated_attributes(
    __name__, {"FinetuneSchedules": ("ijepa_hub.engine.schedules.WarmupCosineSchedules", lambda: WarmupCosineSchedules)}
)
