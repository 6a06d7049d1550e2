"""Hub interop: the repo layout and kinds, key conversion, loading, saving / pushing, torch.hub entrypoints."""
from ..deprecation import deprecated_attributes
from ..released import reference_checkpoint_path
from .convert import timm_to_transformers, transformers_to_timm
from .layout import CLASSIFIER_KIND, ENCODER_KIND, REPO_KINDS, repo_kind
from .load import from_pretrained, read_config
from .model import PretrainedIJepa, PretrainedModel
from .save import export_transformers, push_to_hub, save_pretrained

__all__ = [
    "from_pretrained",
    "save_pretrained",
    "push_to_hub",
    "export_transformers",
    "read_config",
    "reference_checkpoint_path",
    "timm_to_transformers",
    "transformers_to_timm",
    "PretrainedIJepa",
    "PretrainedModel",
    "repo_kind",
    "REPO_KINDS",
    "ENCODER_KIND",
    "CLASSIFIER_KIND",
]


# push_folder(folder, repo_id, ...) is push_to_hub(folder, repo_id, ...): the one push function
__getattr__ = deprecated_attributes(__name__, {"push_folder": ("ijepa_hub.push_to_hub", lambda: push_to_hub)})
