"""The ijepa_hub repo layout: file names, the parts table and ``config.json`` (ijepa and timm fields).

A repo (local folder or Hub) holds::

    config.json                   ijepa fields under "ijepa"; timm's architecture/model_args/pretrained_cfg
    model.safetensors             the feature encoder (target by default), released / timm key layout
    context_encoder.safetensors   optional
    predictor.safetensors         optional
    README.md                     model card (:mod:`ijepa_hub.hub.card`)

The vocabulary, the same for loading and saving: ``encoder="target" | "context"`` names the *feature
encoder*, the one in ``model.safetensors`` and the one ``extract_features`` runs (``model.encoder``);
``with_context_encoder=`` / ``with_predictor=`` ask for the other networks beside it. :data:`PARTS`
is the one table of the networks (``ijepa.files`` in config.json maps the same part names to files).

``ijepa.kind`` says which kind of repo it is: ``"encoder"`` (the above) or ``"classifier"`` (a fine-tuned
classifier, :mod:`ijepa_hub.hub.classifier`); repos written before the field are told apart by their content
(:func:`repo_kind`).

The same repo loads in ``timm.create_model("hf-hub:<repo>")``: timm reads the top-level fields and
``model.safetensors`` and builds a VisionTransformer with per-token norm then average pooling.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.transforms import CROP_PCT, INTERPOLATION, MEAN, STD
from ..errors import HubLayoutError
from ..models.ijepa import EncoderName
from ..registry import ARCHITECTURES, MODEL_FIELDS, VARIANTS, ModelConfig, PretrainedVariant
from ..version import __version__

__all__ = [
    "Origin",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CONTEXT_WEIGHTS_NAME",
    "PREDICTOR_WEIGHTS_NAME",
    "PICKLE_SUFFIXES",
    "FORMAT_VERSION",
    "EncoderName",
    "ENCODER_KIND",
    "CLASSIFIER_KIND",
    "REPO_KINDS",
    "repo_kind",
    "PARTS",
    "ENCODER_PART",
    "select_parts",
    "renamed_options",
    "RepoConfig",
    "timm_architecture",
    "build_config",
    "parse_config",
    "write_config",
    "read_config_json",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CONTEXT_WEIGHTS_NAME = "context_encoder.safetensors"
PREDICTOR_WEIGHTS_NAME = "predictor.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".tar")
FORMAT_VERSION = 1
LIBRARY_NAME = "ijepa_hub"

# The kinds of repo (``ijepa.kind`` in config.json); the hub owns saving and loading each.
ENCODER_KIND = "encoder"  # I-JEPA networks: the feature encoder, optionally the context encoder and predictor
CLASSIFIER_KIND = "classifier"  # a fine-tuned classifier (encoder + head, timm's layout)
REPO_KINDS = (ENCODER_KIND, CLASSIFIER_KIND)


@dataclass(frozen=True)
class Part:
    """One network of an I-JEPA repo: the model attribute (= part name) that holds it, its file, its role."""

    file: str  # its file when it is not the feature encoder (the feature encoder is always WEIGHTS_NAME)
    meaning: str


# The one table of the parts: part name (IJepa attribute, key of ijepa.files) -> file -> meaning.
PARTS: dict[str, Part] = {
    "target_encoder": Part(WEIGHTS_NAME, "EMA encoder: the paper's feature encoder (encoder='target', default)"),
    "context_encoder": Part(
        CONTEXT_WEIGHTS_NAME,
        "encoder trained by gradient, what the facebook/ and timm mirrors hold; in model.safetensors when "
        "encoder='context'",
    ),
    "predictor": Part(PREDICTOR_WEIGHTS_NAME, "predicts target features from context tokens; for training only"),
}
# encoder= value -> the part that is the feature encoder
ENCODER_PART: dict[str, str] = {"target": "target_encoder", "context": "context_encoder"}
_RENAMED_OPTIONS = {"include_context_encoder": "with_context_encoder", "include_predictor": "with_predictor"}


def select_parts(encoder: str, *, with_context_encoder: bool, with_predictor: bool) -> dict[str, str]:
    """Part -> file of a repo with feature encoder ``encoder`` and the extra networks asked for.

    The context encoder is extra only beside the target encoder (as the feature encoder it is already in).
    """
    if encoder not in ENCODER_PART:
        raise ValueError(f"encoder must be 'target' or 'context' (the feature encoder), got {encoder!r}")
    files = {ENCODER_PART[encoder]: WEIGHTS_NAME}
    if with_context_encoder and encoder == "target":
        files["context_encoder"] = PARTS["context_encoder"].file
    if with_predictor:
        files["predictor"] = PARTS["predictor"].file
    return files


def renamed_options(options: dict[str, Any], old: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``options`` with the old names in ``old`` applied, each with a DeprecationWarning (kept for one release).

    ``include_context_encoder`` / ``include_predictor`` are now ``with_context_encoder`` / ``with_predictor``;
    ``encoder="both"`` is now ``encoder="target", with_context_encoder=True``.
    """
    options = dict(options)
    for name, value in old.items():
        if name not in _RENAMED_OPTIONS:
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")
        new = _RENAMED_OPTIONS[name]
        _deprecated(f"{where}: {name}= is deprecated, use {new}= (same meaning)")
        options[new] = value
    if options.get("encoder") == "both":
        _deprecated(f"{where}: encoder='both' is deprecated, use encoder='target', with_context_encoder=True")
        options.update(encoder="target", with_context_encoder=True)
    return options


def _deprecated(message: str) -> None:
    """A DeprecationWarning pointing at the first caller outside ijepa_hub (the user's line, through methods)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(0), 1  # level 1: this function, as warnings.warn counts
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)
# the "ijepa" section's fields; others are ignored with a warning (metadata from another version)
KNOWN_FIELDS = (
    "format_version", "library_version", "model", "encoder", "files", "preprocessing", "variant", "source_url",
    "base_variant", "recipe", "metrics", "license",
    "origins",  # where weights trained from other weights started: {"init" | "teacher": {source, revision, ...}}
    "provenance",  # the chain of what was done to the weights, oldest first (hub/provenance.py)
    "classifier",  # fine-tuned classifiers (hub/classifier.py)
    "kind",  # the repo kind (REPO_KINDS); absent in repos written before it
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """A source of weights: as named (``source``, ``revision``), the released variant it derives from (if any)
    and the licence its weights carry (None: not stated by the source)."""

    source: str
    revision: str | None = None
    variant: str | None = None
    license: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "revision": self.revision, "variant": self.variant, "license": self.license}


@dataclass
class RepoConfig:
    """What ``config.json`` of an ijepa_hub repo says: the model, and which file holds which network."""

    model: ModelConfig
    encoder: EncoderName  # the encoder in model.safetensors
    files: dict[str, str]  # part ("target_encoder", "context_encoder", "predictor") -> file name
    kind: str = ENCODER_KIND  # the repo kind (REPO_KINDS)
    variant: str | None = None  # the released variant whose weights these are (not set for models trained here)
    extra: dict[str, Any] = field(default_factory=dict)  # recipe, metrics, base_variant, license, origins


def timm_architecture(config: ModelConfig) -> str:
    """The timm model name that ``model_args`` specialise (every size is also given in ``model_args``)."""
    import timm

    arch, p, size = config.arch, config.patch_size, config.img_size
    candidates = [f"vit_{arch}_patch{p}_gap_{size}", f"vit_{arch}_patch{p}_{size}", f"vit_{arch}_patch{p}_gap_224",
                  f"vit_{arch}_patch{p}_224", f"vit_{arch}_patch16_224"] if arch else []
    for name in candidates:
        if timm.is_model(name):
            return name
    return "vit_base_patch16_224"


def _timm_fields(config: ModelConfig, variant: PretrainedVariant | None) -> dict[str, Any]:
    model_args = {
        "img_size": config.img_size,
        "patch_size": config.patch_size,
        "in_chans": config.in_chans,
        "embed_dim": config.embed_dim,
        "depth": config.depth,
        "num_heads": config.num_heads,
        "mlp_ratio": config.mlp_ratio,
        "qkv_bias": True,
        "class_token": False,
        "no_embed_class": True,
        "global_pool": "avg",
        "fc_norm": False,  # norm each token, then average: the paper's feature
        "num_classes": 0,
    }
    pretrained_cfg = {
        "input_size": [config.in_chans, config.img_size, config.img_size],
        "fixed_input_size": False,
        "interpolation": INTERPOLATION,
        "crop_pct": CROP_PCT,
        "crop_mode": "center",
        "mean": list(MEAN),
        "std": list(STD),
        "num_classes": 0,
        "pool_size": None,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": variant.license if variant else None,
    }
    return {
        "architecture": timm_architecture(config),
        "num_classes": 0,
        "num_features": config.embed_dim,
        "global_pool": "avg",
        "model_args": model_args,
        "pretrained_cfg": {k: v for k, v in pretrained_cfg.items() if v is not None},
    }


def build_config(
    config: ModelConfig,
    *,
    encoder: EncoderName,
    files: Mapping[str, str],
    variant: str | None = None,
    base_variant: str | None = None,
    recipe: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    kind: str = ENCODER_KIND,
) -> dict[str, Any]:
    """The ``config.json`` dict: timm's fields at the top level, ijepa_hub's under ``"ijepa"``.

    ``variant``: the weights are a released variant's; ``base_variant``: they were trained (``recipe``)
    starting from one; ``kind``: the repo kind (``"encoder"``, ``"classifier"``)."""
    if kind not in REPO_KINDS:
        raise ValueError(f"kind must be one of {', '.join(REPO_KINDS)}, got {kind!r}")
    if encoder not in ENCODER_PART:
        raise ValueError(f"encoder must be 'target' or 'context', got {encoder!r}")
    released = VARIANTS.get(variant) if variant else None
    ijepa: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "library_version": __version__,
        "model": config.to_dict(),
        "encoder": encoder,
        "files": dict(files),
        "preprocessing": {
            "resize": "shorter side to floor(img_size / crop_pct)",
            "crop_pct": CROP_PCT,
            "interpolation": INTERPOLATION,
            "mean": list(MEAN),
            "std": list(STD),
        },
    }
    if variant:
        ijepa["variant"] = variant
    if released:
        ijepa["source_url"] = released.url
    if base_variant:
        ijepa["base_variant"] = base_variant
    if recipe:
        ijepa["recipe"] = dict(recipe)
    if metrics:
        ijepa["metrics"] = dict(metrics)
    return {**_timm_fields(config, released), "ijepa": ijepa}


def repo_kind(data: Mapping[str, Any]) -> str:
    """The kind of repo a ``config.json`` dict describes: ``ijepa.kind``, or for repos written before that field
    (and transformers-layout repos, which hold an encoder) what their content says."""
    ijepa = data.get("ijepa")
    if not isinstance(ijepa, Mapping):
        return ENCODER_KIND
    kind = ijepa.get("kind")
    if kind is None:
        return CLASSIFIER_KIND if "classifier" in ijepa else ENCODER_KIND
    if not isinstance(kind, str):
        raise HubLayoutError(f"config.json 'ijepa.kind' is {str(kind)[:60]} (a {type(kind).__name__}), not a string: "
                             f"one of {', '.join(REPO_KINDS)}. Fix: set it to the repo's kind, or re-save the model.")
    if kind not in REPO_KINDS:
        raise HubLayoutError(
            f"config.json says ijepa.kind={kind!r}; ijepa_hub {__version__} reads {', '.join(REPO_KINDS)} repos. "
            "Fix: upgrade ijepa_hub (pip install -U ijepa-hub)."
        )
    return kind


def _model_config(model: Any, *, source: str) -> ModelConfig:
    """``ijepa.model`` as a :class:`ModelConfig`: every field present, none unknown, numbers where expected.

    Repos written by ijepa_hub 0.1.0 name a preset (``arch``) instead of the encoder's sizes; they still load.
    """
    if not isinstance(model, Mapping):
        raise HubLayoutError(f"{source}: config.json 'ijepa.model' is a {type(model).__name__}, not an object")
    model = dict(model)
    if "arch" in model and "embed_dim" not in model:  # the 0.1.0 form
        arch = model.pop("arch")
        if arch not in ARCHITECTURES:
            raise HubLayoutError(f"{source}: config.json 'ijepa.model.arch' is {arch!r}, not one of {', '.join(ARCHITECTURES)}")
        a = ARCHITECTURES[arch]
        model = {"embed_dim": a.embed_dim, "depth": a.depth, "num_heads": a.num_heads, "mlp_ratio": a.mlp_ratio, **model}
    model.setdefault("pred_num_heads", model.get("num_heads"))
    fields = list(MODEL_FIELDS)
    unknown, missing = sorted(set(model) - set(fields)), [f for f in fields if f not in model]
    wrong = [
        f"{k}={model[k]!r}" for k in fields if k in model
        and not (type(model[k]) in (int, float) if k == "mlp_ratio" else type(model[k]) is int)
    ]
    problems = [f"{title} {', '.join(keys)}" for title, keys in
                (("unknown", unknown), ("missing", missing), ("wrongly typed", wrong)) if keys]
    if problems:
        raise HubLayoutError(
            f"{source}: config.json 'ijepa.model' has {'; '.join(problems)} (fields: {', '.join(fields)}; integers, "
            "mlp_ratio a number). Fix: re-save the model with ijepa_hub.save_pretrained, or upgrade "
            "ijepa_hub if a newer version wrote it."
        )
    try:
        return ModelConfig(**model)
    except ValueError as err:
        raise HubLayoutError(f"{source}: config.json 'ijepa.model' is invalid: {err}") from None


def parse_config(data: Mapping[str, Any], *, source: str) -> RepoConfig:
    """Read an ijepa_hub ``config.json``; errors name ``source``, the offending field and the fix."""
    ijepa = data.get("ijepa")
    if not isinstance(ijepa, Mapping):
        raise HubLayoutError(f"{source}: config.json has no 'ijepa' section; not an ijepa_hub repo")
    version = ijepa.get("format_version")
    if version != FORMAT_VERSION:
        raise HubLayoutError(
            f"{source}: config.json format_version {version!r} is not {FORMAT_VERSION}; "
            "upgrade ijepa_hub (pip install -U ijepa-hub)"
        )
    missing = [k for k in ("model", "encoder", "files") if k not in ijepa]
    if missing:
        raise HubLayoutError(
            f"{source}: config.json lacks {', '.join(f'ijepa.{k}' for k in missing)}. Fix: re-save the model "
            "with ijepa_hub.save_pretrained."
        )
    unknown = sorted(set(ijepa) - set(KNOWN_FIELDS))
    if unknown:
        logger.warning("%s: config.json fields %s are unknown to ijepa_hub %s and ignored", source,
                       ", ".join(f"ijepa.{k}" for k in unknown), __version__)
    model = _model_config(ijepa["model"], source=source)
    encoder, files = ijepa["encoder"], ijepa["files"]
    if not isinstance(files, Mapping) or set(files) - set(PARTS) or not all(isinstance(v, str) for v in files.values()):
        raise HubLayoutError(
            f"{source}: config.json 'ijepa.files' is {files!r}; it maps parts ({', '.join(PARTS)}) to file names"
        )
    files = dict(files)
    if not isinstance(encoder, str):
        raise HubLayoutError(
            f"{source}: config.json 'ijepa.encoder' is {str(encoder)[:60]} (a {type(encoder).__name__}), not a string; "
            f"it names the encoder in {WEIGHTS_NAME}: one of {', '.join(map(repr, ENCODER_PART))}. Fix: set it to "
            "one of those, or re-save the model with ijepa_hub.save_pretrained."
        )
    if encoder not in ENCODER_PART or files.get(ENCODER_PART[encoder]) != WEIGHTS_NAME:
        raise HubLayoutError(
            f"{source}: config.json says encoder={encoder!r} but files={files}; "
            f"{WEIGHTS_NAME} must hold the target or context encoder"
        )
    variant = ijepa.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise HubLayoutError(f"{source}: config.json 'ijepa.variant' is {str(variant)[:60]} (a {type(variant).__name__}), "
                             "not a released variant's name. Fix: set it to one of ijepa_hub.list_variants(), or drop it.")
    extra = {k: ijepa[k] for k in ("recipe", "metrics", "base_variant", "license", "origins", "provenance")
             if k in ijepa}
    try:
        kind = repo_kind(data)
    except HubLayoutError as err:
        raise HubLayoutError(f"{source}: {err}") from None
    return RepoConfig(model=model, encoder=encoder, files=files, kind=kind, variant=variant, extra=extra)


def read_config_json(path: str | os.PathLike, *, source: str) -> dict[str, Any]:
    """A ``config.json`` file as a dict; a :class:`HubLayoutError` naming ``source`` when it is not valid JSON,
    nests too deeply for the parser (a few kB of ``[`` exhaust Python's stack) or is not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HubLayoutError(
            f"{source}: {CONFIG_NAME} is not valid JSON ({err}); it is truncated or was edited by hand. "
            "Fix: download it again, or re-save the model with ijepa_hub.save_pretrained."
        ) from err
    except RecursionError:  # json recurses once per nesting level
        raise HubLayoutError(
            f"{source}: {CONFIG_NAME} nests arrays or objects too deeply to read (thousands of levels; a "
            "config.json has a few). It is damaged or hostile. Fix: download it again, or re-save the model with "
            "ijepa_hub.save_pretrained."
        ) from None
    if not isinstance(data, dict):
        raise HubLayoutError(f"{source}: {CONFIG_NAME} holds a {type(data).__name__}, not a JSON object")
    return data


def write_config(folder: Path, data: Mapping[str, Any]) -> Path:
    path = folder / CONFIG_NAME
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path
