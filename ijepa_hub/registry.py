"""The one source of numbers: architectures, named models and the released variants.

Everything else (``create_model``, the hub loaders, ``hubconf.py``, the CLIs, the docs) reads from
here. Training recipes live as YAML beside this module (``ijepa_hub/recipes``) and are read through
:mod:`ijepa_hub.recipe`; a released variant holds its own :class:`ModelConfig` and names the recipe that
produced it (a test checks that the two agree). This module imports nothing else of the package.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

__all__ = [
    "is_random_init",
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
    "ALIASES",
    "MODEL_FIELDS",
    "preset",
    "resolve_alias",
    "architecture_for_width",
    "mlp_ratio_for",
    "default_predictor",
]


@dataclass(frozen=True)
class Architecture:
    """A named ViT size (a preset): encoder width, depth, heads and MLP ratio, and its predictor."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    pred_embed_dim: int = 384
    pred_depth: int = 12

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)  # timm's Mlp rounds down


# Encoder sizes (ViT paper / I-JEPA release). Giant uses an MLP hidden size of 6144 = 1408 * 48 / 11.
# Predictors: huge and giant are the released ones; the smaller sizes keep the predictor narrower than
# the encoder and a multiple of 32 per head.
ARCHITECTURES: dict[str, Architecture] = {
    "tiny": Architecture(192, 12, 3, pred_embed_dim=96, pred_depth=6),
    "small": Architecture(384, 12, 6, pred_embed_dim=192, pred_depth=6),
    "base": Architecture(768, 12, 12, pred_embed_dim=384, pred_depth=6),
    "large": Architecture(1024, 24, 16, pred_embed_dim=384, pred_depth=12),
    "huge": Architecture(1280, 32, 16, pred_embed_dim=384, pred_depth=12),
    "giant": Architecture(1408, 40, 16, 48 / 11, pred_embed_dim=384, pred_depth=16),
}
_NAME = re.compile(r"^vit_(?P<arch>[a-z]+)_patch(?P<patch>[1-9][0-9]*)$")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Everything needed to build an I-JEPA model (encoders + predictor), stated explicitly.

    Any ViT: the named architectures (:data:`ARCHITECTURES`) are presets of these fields, not a limit.
    ``pred_num_heads`` defaults to the encoder's ``num_heads``, as in the released predictors.
    """

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    mlp_ratio: float = 4.0
    img_size: int = 224
    in_chans: int = 3
    pred_embed_dim: int = 384
    pred_depth: int = 12
    pred_num_heads: int | None = None

    def __post_init__(self) -> None:
        if self.pred_num_heads is None:
            object.__setattr__(self, "pred_num_heads", self.num_heads)
        ints = ("embed_dim", "depth", "num_heads", "patch_size", "img_size", "in_chans", "pred_embed_dim",
                "pred_depth", "pred_num_heads")
        bad = [f"{k}={getattr(self, k)!r}" for k in ints
               if not isinstance(getattr(self, k), int) or isinstance(getattr(self, k), bool) or getattr(self, k) < 1]
        if not isinstance(self.mlp_ratio, (int, float)) or isinstance(self.mlp_ratio, bool) or self.mlp_ratio <= 0:
            bad.append(f"mlp_ratio={self.mlp_ratio!r}")
        if bad:
            raise ValueError(f"model sizes must be positive integers (mlp_ratio a positive number): {', '.join(bad)}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        for width, heads, what in ((self.embed_dim, self.num_heads, "embed_dim"),
                                   (self.pred_embed_dim, self.pred_num_heads, "pred_embed_dim")):
            if width % heads:
                head_key = "num_heads" if what == "embed_dim" else "pred_num_heads"
                raise ValueError(f"{what} {width} is not divisible by {head_key} {heads}")
            if width % 4:
                raise ValueError(f"{what} {width} must be a multiple of 4 (2-D sin-cos position table)")

    @property
    def arch(self) -> str | None:
        """The preset whose encoder this is (``"huge"``), or ``None`` for another size."""
        for name, a in ARCHITECTURES.items():
            if (a.embed_dim, a.depth, a.num_heads, a.mlp_hidden_dim) == (
                self.embed_dim, self.depth, self.num_heads, self.mlp_hidden_dim
            ):
                return name
        return None

    @property
    def name(self) -> str:
        """``vit_<preset>_patch<p>`` (accepted back by :func:`get_model_config`), or ``vit_custom_patch<p>``."""
        return f"vit_{self.arch or 'custom'}_patch{self.patch_size}"

    def describe(self) -> str:
        """One line with every size, for logs and cards."""
        return (
            f"{self.name} at {self.img_size} px (width {self.embed_dim}, {self.depth} blocks, {self.num_heads} heads, "
            f"MLP {self.mlp_hidden_dim}; predictor width {self.pred_embed_dim}, {self.pred_depth} blocks, "
            f"{self.pred_num_heads} heads)"
        )

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)  # timm's Mlp rounds down

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed; ``None`` values are ignored.

        Changing ``num_heads`` also changes ``pred_num_heads`` when that followed the encoder.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown model field(s) {', '.join(unknown)}; fields: {', '.join(MODEL_FIELDS)}")
        if "num_heads" in changes and "pred_num_heads" not in changes and self.pred_num_heads == self.num_heads:
            changes["pred_num_heads"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


MODEL_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelConfig))


def preset(arch: str, patch_size: int, **overrides) -> ModelConfig:
    """The :class:`ModelConfig` of a named size (``"huge"``) and patch size, with field overrides."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    a = ARCHITECTURES[arch]
    base = ModelConfig(
        embed_dim=a.embed_dim, depth=a.depth, num_heads=a.num_heads, mlp_ratio=a.mlp_ratio, patch_size=patch_size,
        pred_embed_dim=a.pred_embed_dim, pred_depth=a.pred_depth,
    )
    return base.replace(**overrides)


def mlp_ratio_for(embed_dim: int, hidden_dim: int) -> float:
    """An ``mlp_ratio`` for which ``int(embed_dim * mlp_ratio) == hidden_dim`` (timm's rounding)."""
    ratio = hidden_dim / embed_dim
    while int(embed_dim * ratio) < hidden_dim:
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def default_predictor(embed_dim: int, num_heads: int) -> tuple[int, int]:
    """Predictor (width, depth) for an encoder: the preset's for a known width, else about half the width."""
    for a in ARCHITECTURES.values():
        if a.embed_dim == embed_dim and a.pred_embed_dim % num_heads == 0:
            return a.pred_embed_dim, a.pred_depth
    step = num_heads * 4 // math.gcd(num_heads, 4)
    return max(step, (embed_dim // 2) // step * step), 6


MODELS: dict[str, ModelConfig] = {
    f"vit_{arch}_patch{patch}": preset(arch, patch) for arch in ARCHITECTURES for patch in (14, 16)
}

REFERENCE_URL_ROOT = "https://dl.fbaipublicfiles.com/ijepa/"


@dataclass(frozen=True)
class PretrainedVariant:
    """A released I-JEPA checkpoint: its architecture, where its weights are, and what the paper reports."""

    name: str
    model_config: ModelConfig
    recipe: str  # the YAML recipe (ijepa_hub/recipes/<recipe>.yaml) that trained it; a test checks they agree
    filename: str  # released training checkpoint: both encoders and the predictor
    hf_transformers_repo: str  # transformers-layout mirror on the HF Hub: context encoder only
    dataset: str
    epochs: int
    imagenet_linear_top1: float | None = None  # paper, Table 1 (target encoder, linear probe)
    license: str = "cc-by-nc-4.0"

    @property
    def url(self) -> str:
        return REFERENCE_URL_ROOT + self.filename


VARIANTS: dict[str, PretrainedVariant] = {
    v.name: v
    for v in (
        PretrainedVariant(
            "ijepa_vith14_1k", preset("huge", 14), "in1k_vith14", "IN1K-vit.h.14-300e.pth.tar",
            "facebook/ijepa_vith14_1k", "imagenet-1k", 300, 79.3,
        ),
        PretrainedVariant(
            "ijepa_vith14_22k", preset("huge", 14), "in22k_vith14", "IN22K-vit.h.14-900e.pth.tar",
            "facebook/ijepa_vith14_22k", "imagenet-22k", 66,
        ),
        PretrainedVariant(
            "ijepa_vith16_448_1k", preset("huge", 16, img_size=448), "in1k_vith16_448",
            "IN1K-vit.h.16-448px-300e.pth.tar", "facebook/ijepa_vith16_1k", "imagenet-1k", 300, 81.1,
        ),
        PretrainedVariant(
            "ijepa_vitg16_22k", preset("giant", 16), "in22k_vitg16", "IN22K-vit.g.16-600e.pth.tar",
            "facebook/ijepa_vitg16_22k", "imagenet-22k", 44,
        ),
    )
}

# Short names (torch.hub, from_pretrained, create_model); each maps to a released variant.
ALIASES: dict[str, str] = {"ijepa_vith14": "ijepa_vith14_1k"}


def list_models() -> list[str]:
    """Names accepted by :func:`ijepa_hub.create_model` (any ``vit_<size>_patch<p>`` is accepted too)."""
    return sorted(MODELS)


def list_variants() -> list[str]:
    """Names of the released pretrained variants."""
    return list(VARIANTS)


def is_random_init(source: str) -> bool:
    """True for ``vit_<size>_patch<p>`` that is not a path nor a released variant: an architecture name, which
    a task starts from random initialisation (anything else is a pretrained source)."""
    import os

    return not os.path.exists(source) and resolve_alias(source) not in VARIANTS and bool(_NAME.match(source))


def resolve_alias(name: str) -> str:
    """The released variant an alias (``ijepa_vith14``) stands for; other names unchanged."""
    return ALIASES.get(name, name)


def get_model_config(name: str, **overrides) -> ModelConfig:
    """The named model with field overrides (``img_size=64``, ``depth=6``, ``embed_dim=256, num_heads=4``...).

    ``name`` is a released variant or alias (``ijepa_vith14_1k``), or ``vit_<size>_patch<p>`` for a size
    of :data:`ARCHITECTURES` and any patch size. Every :class:`ModelConfig` field can be overridden.
    """
    name = resolve_alias(name)
    match = _NAME.match(name)
    if name in VARIANTS:
        base = VARIANTS[name].model_config
    elif match and match["arch"] in ARCHITECTURES:
        base = preset(match["arch"], int(match["patch"]))
    else:
        raise KeyError(
            f"unknown model {name!r}. Known models: {', '.join(list_models())} (and vit_<size>_patch<p> for any "
            f"patch size); released variants: {', '.join([*VARIANTS, *ALIASES])}. "
            "For another size, start from the nearest and override embed_dim=, depth=, num_heads=..."
        )
    return base.replace(**overrides)


def get_variant(name: str) -> PretrainedVariant:
    try:
        return VARIANTS[resolve_alias(name)]
    except KeyError:
        raise KeyError(f"unknown released variant {name!r}; choose one of {', '.join([*VARIANTS, *ALIASES])}") from None


def architecture_for_width(embed_dim: int) -> str | None:
    """The preset with this encoder width (head counts are not stored in weights), or ``None``."""
    for name, arch in ARCHITECTURES.items():
        if arch.embed_dim == embed_dim:
            return name
    return None
