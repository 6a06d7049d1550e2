"""Hub interop: the repo layout, key conversion, loading, saving / pushing, torch.hub entrypoints."""
from .convert import timm_to_transformers, transformers_to_timm
from .load import from_pretrained, read_config
from .model import PretrainedIJepa
from .released import reference_checkpoint_path
from .save import export_transformers, push_folder, push_to_hub, save_pretrained

__all__ = [
    "from_pretrained",
    "save_pretrained",
    "push_to_hub",
    "push_folder",
    "export_transformers",
    "read_config",
    "reference_checkpoint_path",
    "timm_to_transformers",
    "transformers_to_timm",
    "PretrainedIJepa",
]
