"""Writing repos: ``save_pretrained`` (an encoder repo), ``push_to_hub`` (a folder or a model, one Hub commit
through huggingface_hub) and ``export_transformers`` (a folder ``transformers`` loads).

Importing this module registers the writer behind every model's ``save_pretrained`` / ``push_to_hub`` methods
(:class:`~ijepa_hub.models.HubMixin`): a model is saved as a repo of its ``repo_kind``.
"""
from __future__ import annotations

import json
import os
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from safetensors.torch import save_file

from ..data.transforms import MEAN, STD
from ..deprecation import deprecated_function
from ..engine.files import check_entry
from ..errors import HubLayoutError, IJepaError, PushToHubError
from ..models import Classifier, IJepa
from ..models.hub_mixin import register_repo_writer
from ..recipe import Recipe
from ..registry import VARIANTS
from .card import render_model_card
from .classifier import classifier_card, is_classifier_config, save_classifier
from .convert import timm_to_transformers, transformers_config
from .files import README_NAME, cpu_tensors, save_weights, written_atomically
from .layout import (
    CONFIG_NAME,
    ENCODER_PART,
    PARTS,
    WEIGHTS_NAME,
    EncoderName,
    build_config,
    parse_config,
    read_config_json,
    renamed_options,
    select_parts,
    write_config,
)
from .lineage import chain_license, released_step, strictest_license, with_step
from .lineage import step as lineage_step
from .load import from_pretrained
from .network import failure_cause
from .provenance import Origin, model_origin, model_provenance

# What a failed upload raises: the Hub's HTTP errors, OSError (offline mode, files, requests' errors), the
# HTTP client's own base error (httpx's ConnectError is not an OSError) and an invalid repo id.
PUSH_ERRORS = (
    HfHubHTTPError, OSError, HFValidationError, *(c for c in HfHubHTTPError.__mro__[1:] if c.__name__ == "HTTPError"),
)

__all__ = ["save_pretrained", "push_to_hub", "check_push_target", "export_transformers", "save_weights", "ModelWriter"]

_REPO_FILES = frozenset({CONFIG_NAME, README_NAME, *(spec.file for spec in PARTS.values())})  # what a save owns
DEFAULT_COMMIT_MESSAGE = "Upload I-JEPA model with ijepa_hub"
_PROCESSOR_NAME = "preprocessor_config.json"


def _part(model: IJepa, part: str) -> nn.Module | None:
    return getattr(model, part, None)


def save_pretrained(
    model: IJepa,
    save_directory: str | os.PathLike,
    *,
    encoder: EncoderName = "target",
    with_context_encoder: bool = True,
    with_predictor: bool = True,
    recipe: Recipe | Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    variant: str | None = None,
    license: str | None = None,
    origins: Mapping[str, Origin] | None = None,
    provenance: Sequence[Mapping[str, Any]] | None = None,
    **deprecated: Any,
) -> Path:
    """Write ``model`` as an ijepa_hub repo folder and return its path.

    ``encoder`` is the feature encoder, written to ``model.safetensors`` (the paper evaluates the
    target encoder). ``with_context_encoder`` / ``with_predictor`` add those networks when ``model``
    has them (``include_context_encoder`` / ``include_predictor`` are their deprecated names). ``recipe``
    and ``metrics`` are recorded in ``config.json`` and the model card. ``variant`` (default: the
    model's own, set when its weights came from a released checkpoint) and ``license`` fill the card;
    with a ``recipe`` the weights count as trained here (a variant is then recorded as their base).
    ``origins`` (``{"init" | "teacher": Origin}``): the weights a run continued or distilled, recorded in
    ``config.json`` and the card. ``provenance``: the chain of what was done to the weights
    (:mod:`ijepa_hub.hub.provenance`); default: the loaded model's own chain (a reference checkpoint saved here gains
    a conversion step). The licence recorded is the most restrictive of ``license`` and the chain's.
    """
    options = renamed_options(
        dict(encoder=encoder, with_context_encoder=with_context_encoder, with_predictor=with_predictor), deprecated,
        where="save_pretrained",
    )
    encoder = options["encoder"]
    if encoder not in ENCODER_PART:
        raise ValueError(f"encoder must be 'target' or 'context', got {encoder!r}")
    if _part(model, ENCODER_PART[encoder]) is None:
        other = "context" if encoder == "target" else "target"
        raise HubLayoutError(
            f"this model has no {encoder} encoder (it was loaded with encoder={other!r}); "
            f"save it with encoder={other!r}"
        )
    files = {part: name for part, name in select_parts(**options).items() if _part(model, part) is not None}
    recipe_dict = recipe.to_dict() if isinstance(recipe, Recipe) else recipe
    released = variant if variant is not None else getattr(model, "variant", None)
    config = build_config(  # weights trained here (a recipe) are not the release, at most started from it
        model.config,
        encoder=encoder,
        files=files,
        variant=None if recipe_dict else released,
        base_variant=released if recipe_dict else None,
        recipe=recipe_dict,
        metrics=metrics,
    )
    origins = dict(origins or {})
    if origins:
        config["ijepa"]["origins"] = {key: origin.as_dict() for key, origin in origins.items()}
        base = next((o.variant for o in origins.values() if o.variant), None)
        if base and not config["ijepa"].get("base_variant"):
            config["ijepa"]["base_variant"] = base
    chain = list(provenance) if provenance is not None else model_provenance(model)
    if chain is None and released in VARIANTS:  # named a release without loading one: the release starts the chain
        chain = [released_step(released)]
        if recipe_dict:
            chain = with_step(chain, released, f"trained further (recipe {recipe_dict.get('name', 'custom')})")
    if license and strictest_license([license, chain_license(chain or [])]) != chain_license(chain or []):
        chain = [*(chain or []), lineage_step(None, f"licence {license} set by save_pretrained(license=...)",
                                              license=license)]
    if chain:
        config["ijepa"]["provenance"] = [dict(entry) for entry in chain]
    license = strictest_license([license, *(o.license for o in origins.values()), chain_license(chain or [])])
    if license:
        config["ijepa"]["license"] = license
        config["pretrained_cfg"]["license"] = license  # what timm reads
    folder = Path(save_directory)
    card = _card_for(config, repo_id=None, source=str(folder))
    with written_atomically(folder, keep=_REPO_FILES) as stage:  # files of an earlier save here are dropped
        for part, name in files.items():
            save_weights(getattr(model, part), stage / name)
        write_config(stage, config)
        card.save(stage / README_NAME)
    return folder


def _card_for(config: Mapping[str, Any], *, repo_id: str | None, source: str):
    if is_classifier_config(config):  # a fine-tuned classifier has a card of its own
        return classifier_card(config, repo_id=repo_id)
    parsed = parse_config(config, source=source)
    recipe = parsed.extra.get("recipe")
    return render_model_card(
        parsed.model,
        repo_id=repo_id,
        encoder=parsed.encoder,
        files=parsed.files,
        variant=parsed.variant,
        base_variant=parsed.extra.get("base_variant"),
        license=parsed.extra.get("license"),
        origins=parsed.extra.get("origins"),
        provenance=parsed.extra.get("provenance"),
        metrics=parsed.extra.get("metrics"),
        recipe=recipe if isinstance(recipe, Mapping) else None,
    )


def _push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload an ijepa_hub folder (encoder or classifier repo) to ``repo_id`` in one commit; return the commit URL.

    The README.md uploaded is the card generated for ``repo_id`` (the folder itself is not changed: the
    upload reads a temporary folder of links to its files plus the card). Weight files of parts the folder
    no longer has (a predictor pushed before, say) are deleted from the repo in the same commit.
    """
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise HubLayoutError(f"{folder} has no {CONFIG_NAME}; write it with ijepa_hub.save_pretrained first")
    layout = _checked_for_push(folder)
    card = _card_for(read_config_json(config_path, source=str(folder)), repo_id=repo_id, source=str(folder))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ijepa_hub-push-") as tmp:
        staging = Path(tmp)
        for name, path in layout.items():
            (staging / name).symlink_to(path)  # a link: the weights are not copied
        card.save(staging / README_NAME)
        stale = [spec.file for spec in PARTS.values() if not (staging / spec.file).exists()]
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=staging,
            commit_message=commit_message or DEFAULT_COMMIT_MESSAGE,
            revision=revision,
            delete_patterns=stale or None,
        )
    return info.commit_url


def _checked_for_push(folder: Path) -> dict[str, Path]:
    """The files a push uploads (``config.json`` and the weights ``ijepa.files`` names), after the folder has
    loaded as :func:`~ijepa_hub.from_pretrained` would load the repo (all parts, strictly, finite weights).

    Nothing else in the folder is uploaded, and a file that is a link leaving the folder is refused: a push
    publishes the model, never a stray file (or what a link points at).
    """
    repo = parse_config(read_config_json(folder / CONFIG_NAME, source=str(folder)), source=str(folder))
    names = [CONFIG_NAME, *repo.files.values()]
    root, layout = folder.resolve(), {}
    for name in names:
        path = (folder / name).resolve()
        if not path.is_relative_to(root) or Path(name).is_absolute():
            raise HubLayoutError(
                f"{folder / name} leads outside {folder} (a link or a path with '..'); a push uploads only the "
                "folder's own files. Fix: replace the link by the file itself."
            )
        layout[name] = path
    try:
        from_pretrained(folder, encoder=repo.encoder, with_context_encoder="context_encoder" in repo.files,
                        with_predictor="predictor" in repo.files)
    except IJepaError as err:
        raise HubLayoutError(f"{folder} does not load, so it was not pushed: {err}") from err
    return layout


def push_to_hub(
    model_or_folder: IJepa | Classifier | str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    **save_kwargs: Any,
) -> str:
    """Create ``repo_id`` if needed and upload a model or a repo folder to it in one commit; return the commit URL.

    A folder (``str`` / path) is uploaded as :func:`save_pretrained` or ``Classifier.save_pretrained`` wrote it:
    its ``config.json``, the weights it names and a card generated for ``repo_id``, after checking that it
    loads; weight files of parts it no longer has are deleted from the repo in the same commit. A failed upload
    of a folder (network, permissions, an invalid repo id) raises :class:`PushToHubError` giving the command
    that pushes it again. A model is first saved as a repo of its kind (``save_kwargs`` go to that save) into a
    temporary folder.
    """
    hub = dict(token=token, private=private, revision=revision, commit_message=commit_message)
    if isinstance(model_or_folder, (str, os.PathLike)):
        if save_kwargs:
            raise TypeError(f"push_to_hub: {', '.join(sorted(save_kwargs))} apply when saving a model, not to a "
                            f"folder ({os.fspath(model_or_folder)}), which is uploaded as it is")
        try:
            return _push_folder(model_or_folder, repo_id, **hub)
        except PUSH_ERRORS as err:
            command = f"ijepa-hub push {shlex.quote(os.fspath(model_or_folder))} {shlex.quote(repo_id)}"
            raise PushToHubError(
                f"pushing {os.fspath(model_or_folder)} to the Hub repo {repo_id} failed: {failure_cause(err)}. "
                f"The model is safe in {os.fspath(model_or_folder)}; once the cause is fixed, push "
                f"it again with: {command}"
            ) from err
    with tempfile.TemporaryDirectory(prefix="ijepa_hub-push-") as tmp:
        folder = _save_by_kind(model_or_folder, Path(tmp) / "repo", **save_kwargs)
        try:
            return _push_folder(folder, repo_id, **hub)
        except PUSH_ERRORS as err:
            raise PushToHubError(f"pushing to the Hub repo {repo_id} failed: {failure_cause(err)}. "
                                 "Fix: push again once the cause is fixed.") from err


def check_push_target(repo_id: str) -> None:
    """Refuse, before a run trains, a ``--push-to-hub`` that cannot succeed: an invalid repo id, or offline mode
    (:class:`PushToHubError`, one line naming the fix)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PushToHubError(f"--push-to-hub {repo_id!r} is not a Hub repo id ({str(err).splitlines()[0]}). Fix: "
                             "pass owner/name (letters, digits, '-', '_', '.'), or drop --push-to-hub.") from None
    if constants.is_offline_mode():
        raise PushToHubError(f"--push-to-hub {repo_id}: HF_HUB_OFFLINE=1 forbids uploads, so the push would fail "
                             "after training. Fix: unset HF_HUB_OFFLINE, or drop --push-to-hub and push later "
                             "with ijepa-hub push.")


def _save_by_kind(model: IJepa | Classifier, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
    """Write ``model`` as a repo of its kind: a classifier repo for a :class:`Classifier`, else an encoder repo."""
    if isinstance(model, Classifier):  # its licence is its source's: Meta's weights stay CC BY-NC 4.0
        kwargs.setdefault("origin", model_origin(model))
        kwargs.setdefault("provenance", model_provenance(model))
        return save_classifier(model, save_directory, **kwargs)
    if isinstance(model, IJepa):
        return save_pretrained(model, save_directory, **kwargs)
    raise TypeError(f"cannot save a {type(model).__name__} as a repo: give an IJepa (or PretrainedIJepa) or a "
                    "Classifier")


class ModelWriter:
    """The :class:`~ijepa_hub.models.hub_mixin.RepoWriter` of the models' methods: the model's own feature
    encoder (``encoder_name``) by default, where the functions default to the target encoder."""

    @staticmethod
    def _defaults(model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(model, IJepa) and not isinstance(model, Classifier):
            kwargs.setdefault("encoder", model.encoder_name)
        return kwargs

    def save(self, model: Any, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        return _save_by_kind(model, save_directory, **self._defaults(model, kwargs))

    def push(self, model: Any, repo_id: str, **kwargs: Any) -> str:
        return push_to_hub(model, repo_id, **self._defaults(model, kwargs))


register_repo_writer(ModelWriter())
push_folder = deprecated_function(_push_folder, "ijepa_hub.hub.save.push_folder", "ijepa_hub.push_to_hub")


def export_transformers(encoder: nn.Module, config, save_directory: str | os.PathLike) -> Path:
    """Write ``encoder`` (released / timm layout) as a folder ``transformers.IJepaModel`` loads.

    ``config`` is the encoder's :class:`~ijepa_hub.ModelConfig`. The folder holds ``config.json``,
    ``model.safetensors`` and a ``preprocessor_config.json`` with the training statistics
    (ImageNet mean/std; transformers' processor resizes to the model size without cropping).
    """
    keep = frozenset({WEIGHTS_NAME, CONFIG_NAME, _PROCESSOR_NAME})
    _refuse_model_folder(Path(save_directory), keep)
    with written_atomically(Path(save_directory), keep=keep) as stage:
        weights = timm_to_transformers(cpu_tensors(encoder))
        save_file(weights, os.fspath(stage / WEIGHTS_NAME), metadata={"format": "pt"})
        (stage / CONFIG_NAME).write_text(json.dumps(transformers_config(config), indent=2) + "\n")
        (stage / _PROCESSOR_NAME).write_text(json.dumps(_processor_config(config), indent=2) + "\n")
    return Path(save_directory)


def _refuse_model_folder(folder: Path, keep: frozenset[str]) -> None:
    """An export may replace an earlier export, never an ijepa_hub model (its config and weights would be lost);
    a link or a file where the folder goes is refused too."""
    check_entry(folder, folder=True)
    config = folder / CONFIG_NAME
    try:
        data = read_config_json(config, source=str(folder)) if config.is_file() else {}
    except (OSError, ValueError):
        data = None
    others = sorted(p.name for p in folder.glob("*.safetensors") if p.name not in keep) if folder.is_dir() else []
    if not isinstance(data, dict) or "ijepa" in data or others:
        raise HubLayoutError(
            f"{folder} holds a model ({'its ' + CONFIG_NAME if not others else ', '.join(others)}) that an export "
            "would overwrite; an export goes into a new folder (or one an earlier export wrote). Fix: choose "
            "another output folder."
        )


def _processor_config(config) -> dict[str, Any]:
    """transformers' ``preprocessor_config.json``: the training statistics (no crop: transformers resizes)."""
    return {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": config.img_size, "width": config.img_size},
        "resample": 3,  # bicubic
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(MEAN),
        "image_std": list(STD),
    }
