"""The one source of numbers: architectures, named models and the released variants.

Everything else (``create_model``, the hub loaders, ``hubconf.py``, the CLIs, the docs) reads from
here. Training recipes live as YAML beside this module (``ijepa_hub/recipes``) and are read through
:mod:`ijepa_hub.recipe`; a released variant names the recipe that produced it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = [
    "Architecture",
    "ModelConfig",
    "PretrainedVariant",
    "ARCHITECTURES",
    "MODELS",
    "VARIANTS",
    "REFERENCE_URL_ROOT",
    "list_models",
    "list_variants",
    "get_model_config",
    "get_variant",
    "arch_for_width",
]


@dataclass(frozen=True)
class Architecture:
    """A ViT encoder size: width, depth, heads and MLP ratio."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0

    @property
    def mlp_hidden_dim(self) -> int:
        return round(self.embed_dim * self.mlp_ratio)


# Encoder sizes (ViT paper / I-JEPA release). Giant uses an MLP hidden size of 6144 = 1408 * 48 / 11.
ARCHITECTURES: dict[str, Architecture] = {
    "tiny": Architecture(192, 12, 3),
    "small": Architecture(384, 12, 6),
    "base": Architecture(768, 12, 12),
    "large": Architecture(1024, 24, 16),
    "huge": Architecture(1280, 32, 16),
    "giant": Architecture(1408, 40, 16, 48 / 11),
}

# Predictor (width, depth) per encoder size. Huge and giant are the released values; the smaller ones
# keep the predictor narrower than the encoder and a multiple of 32 per head.
_PREDICTOR: dict[str, tuple[int, int]] = {
    "tiny": (96, 6),
    "small": (192, 6),
    "base": (384, 6),
    "large": (384, 12),
    "huge": (384, 12),
    "giant": (384, 16),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build an I-JEPA model (encoders + predictor)."""

    arch: str
    patch_size: int
    img_size: int = 224
    pred_embed_dim: int = 384
    pred_depth: int = 12
    in_chans: int = 3

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {sorted(ARCHITECTURES)}")
        if self.img_size % self.patch_size:
            raise ValueError(
                f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.pred_embed_dim % self.num_heads:
            raise ValueError(
                f"pred_embed_dim {self.pred_embed_dim} must be divisible by the encoder's "
                f"{self.num_heads} heads (the predictor uses the same head count)"
            )

    @property
    def name(self) -> str:
        return f"vit_{self.arch}_patch{self.patch_size}"

    @property
    def architecture(self) -> Architecture:
        return ARCHITECTURES[self.arch]

    @property
    def embed_dim(self) -> int:
        return self.architecture.embed_dim

    @property
    def depth(self) -> int:
        return self.architecture.depth

    @property
    def num_heads(self) -> int:
        return self.architecture.num_heads

    @property
    def mlp_ratio(self) -> float:
        return self.architecture.mlp_ratio

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


MODELS: dict[str, ModelConfig] = {
    f"vit_{arch}_patch{patch}": ModelConfig(
        arch=arch, patch_size=patch, pred_embed_dim=_PREDICTOR[arch][0], pred_depth=_PREDICTOR[arch][1]
    )
    for arch in ARCHITECTURES
    for patch in (14, 16)
}

REFERENCE_URL_ROOT = "https://dl.fbaipublicfiles.com/ijepa/"


@dataclass(frozen=True)
class PretrainedVariant:
    """A released I-JEPA checkpoint and where its weights can be fetched."""

    name: str
    recipe: str  # the YAML recipe (ijepa_hub/recipes/<recipe>.yaml) that trained it
    filename: str  # released training checkpoint: both encoders and the predictor
    hf_transformers_repo: str  # transformers-layout mirror on the HF Hub: context encoder only
    dataset: str
    epochs: int
    imagenet_linear_top1: float | None = None  # paper, Table 1 (target encoder, linear probe)
    license: str = "cc-by-nc-4.0"

    @property
    def url(self) -> str:
        return REFERENCE_URL_ROOT + self.filename

    @property
    def model_config(self) -> ModelConfig:
        from .recipe import load_recipe

        return load_recipe(self.recipe).model_config()


VARIANTS: dict[str, PretrainedVariant] = {
    v.name: v
    for v in (
        PretrainedVariant(
            "ijepa_vith14_1k", "in1k_vith14", "IN1K-vit.h.14-300e.pth.tar",
            "facebook/ijepa_vith14_1k", "imagenet-1k", 300, 79.3,
        ),
        PretrainedVariant(
            "ijepa_vith14_22k", "in22k_vith14", "IN22K-vit.h.14-900e.pth.tar",
            "facebook/ijepa_vith14_22k", "imagenet-22k", 66,
        ),
        PretrainedVariant(
            "ijepa_vith16_448_1k", "in1k_vith16_448", "IN1K-vit.h.16-448px-300e.pth.tar",
            "facebook/ijepa_vith16_1k", "imagenet-1k", 300, 81.1,
        ),
        PretrainedVariant(
            "ijepa_vitg16_22k", "in22k_vitg16", "IN22K-vit.g.16-600e.pth.tar",
            "facebook/ijepa_vitg16_22k", "imagenet-22k", 44,
        ),
    )
}


def list_models() -> list[str]:
    """Names accepted by :func:`ijepa_hub.create_model`."""
    return sorted(MODELS)


def list_variants() -> list[str]:
    """Names of the released pretrained variants."""
    return list(VARIANTS)


def get_model_config(name: str, **overrides) -> ModelConfig:
    """The named architecture, with optional field overrides (``img_size=64``, ``patch_size=8``...)."""
    if name in VARIANTS:
        base = VARIANTS[name].model_config
    elif name in MODELS:
        base = MODELS[name]
    else:
        raise KeyError(
            f"unknown model {name!r}. Known models: {', '.join(list_models())}; "
            f"released variants: {', '.join(list_variants())}"
        )
    return base.replace(**overrides)


def get_variant(name: str) -> PretrainedVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown released variant {name!r}; choose one of {', '.join(VARIANTS)}") from None


def arch_for_width(embed_dim: int) -> str:
    """The architecture name for an encoder width (head counts are not stored in checkpoints)."""
    for name, arch in ARCHITECTURES.items():
        if arch.embed_dim == embed_dim:
            return name
    widths = {a.embed_dim: n for n, a in ARCHITECTURES.items()}
    raise ValueError(f"no known ViT has width {embed_dim}; known widths: {widths}")
