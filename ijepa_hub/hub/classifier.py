"""Fine-tuned classifiers as repos: ``config.json`` that timm and ijepa_hub both read, the card, loading.

A classifier repo is an ijepa_hub repo whose ``model.safetensors`` holds the whole classifier in timm's
layout (the encoder's keys plus ``head.weight`` / ``head.bias``, and ``attn_pool.*`` for an attentive
classifier). ``config.json`` says so at timm's top level (``num_classes``, ``label_names``, ``global_pool``,
``model_args.num_classes`` / ``model_args.global_pool``, ``pretrained_cfg``), so
``timm.create_model("hf-hub:<repo>", pretrained=True)`` builds the same classifier, and under
``ijepa.classifier`` (classes, evaluation crop, pooling, data), so ``from_pretrained`` returns a
:class:`~ijepa_hub.models.Classifier` with ``classify()``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelCardData

from ..errors import HubLayoutError, PoolingMismatchError
from ..models.classifier import POOLINGS, Classifier, pooling_of
from ..state_dict import load_strict, read_safetensors
from .files import README_NAME, save_weights, written_atomically
from .layout import (
    CLASSIFIER_KIND,
    CONFIG_NAME,
    LIBRARY_NAME,
    WEIGHTS_NAME,
    Origin,
    build_config,
    parse_config,
    repo_kind,
    write_config,
)
from .lineage import chain_license, provenance_markdown, strictest_license

__all__ = ["classifier_config", "save_classifier", "classifier_card", "is_classifier_config", "load_classifier"]

CLASSIFIER_KEY = "classifier"
# timm's global_pool -> what the card and ijepa.classifier.pooling say
POOLING_TEXT = {"avg": "mean of the normed patch tokens",
                "map": "attentive pooler on the normed patch tokens (timm attn_pool: AttentionPoolLatent, one learned query)"}
MODE_TEXT = {"full": "full: the encoder and the head were trained",
             "linear": "linear: the encoder was frozen, only the linear head was trained (a linear probe)",
             "attentive": "attentive: the encoder was frozen, the attentive pooler and the head were trained "
                          "(an attentive probe)"}


def is_classifier_config(data: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` dict describes a fine-tuned classifier (its repo kind, see :func:`repo_kind`)."""
    return repo_kind(data) == CLASSIFIER_KIND


def classifier_config(
    model: Classifier, *, recipe: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None, origin: Origin | None = None,
    provenance: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` dict of ``model``: the encoder repo's fields with timm's classifier fields set.

    ``origin``: where the encoder's weights came from (:func:`~ijepa_hub.hub.provenance.model_origin`); its
    licence is the classifier's (a classifier of Meta's weights is CC BY-NC 4.0). ``provenance``: the chain of what
    was done to the weights (:mod:`ijepa_hub.hub.provenance`); the licence is the most restrictive in it."""
    config = build_config(model.config, encoder="target", files={"target_encoder": WEIGHTS_NAME}, recipe=recipe,
                          metrics=metrics, kind=CLASSIFIER_KIND)
    n, labels, pool = model.num_classes, list(model.label_names), model.global_pool
    config.update(num_classes=n, label_names=labels, global_pool=pool)
    config["model_args"].update(num_classes=n, global_pool=pool)
    config["pretrained_cfg"].update(num_classes=n, label_names=labels, crop_pct=model.crop_pct)
    config["ijepa"][CLASSIFIER_KEY] = {
        "num_classes": n, "label_names": labels, "crop_pct": model.crop_pct, "head": "head", "global_pool": pool,
        "pooling": POOLING_TEXT[pool], "base": model.source, **({"data": dict(data)} if data else {}),
    }
    if origin is not None:
        config["ijepa"]["origins"] = {"init": origin.as_dict()}
    if provenance:
        config["ijepa"]["provenance"] = [dict(step) for step in provenance]
    license = strictest_license([origin.license if origin else None, chain_license(provenance or [])])
    if license:
        config["ijepa"]["license"] = config["pretrained_cfg"]["license"] = license
    return config


def save_classifier(
    model: Classifier, save_directory: str | os.PathLike, *, recipe: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None, origin: Origin | None = None,
    provenance: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``model`` as a classifier repo folder (atomically, like :func:`~ijepa_hub.save_pretrained`); its
    licence is its ``origin``'s (see :func:`classifier_config`)."""
    config = classifier_config(model, recipe=recipe, metrics=metrics, data=data, origin=origin, provenance=provenance)
    card = classifier_card(config, repo_id=None)
    folder = Path(save_directory)
    with written_atomically(folder, keep=frozenset({CONFIG_NAME, WEIGHTS_NAME, README_NAME})) as stage:
        save_weights(model, stage / WEIGHTS_NAME)
        write_config(stage, config)
        card.save(stage / README_NAME)
    return folder


def _table(rows: Mapping[str, Any]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows.items())])


def classifier_card(config: Mapping[str, Any], *, repo_id: str | None) -> ModelCard:
    """The README.md of a classifier repo: the data, the recipe, the final top-1 and how to run it."""
    ijepa = config["ijepa"]
    clf, recipe, metrics = ijepa[CLASSIFIER_KEY], ijepa.get("recipe") or {}, ijepa.get("metrics") or {}
    model, optim = recipe.get("model") or {}, recipe.get("optim") or {}
    data = clf.get("data") or {}
    repo = repo_id or "<this-repo>"
    labels = clf["label_names"]
    shown = ", ".join(f"`{x}`" for x in labels[:20]) + (f" ... ({len(labels)} in all)" if len(labels) > 20 else "")
    pool = clf.get("global_pool", "avg")
    head = "attentive pooler + linear head" if pool == "map" else "linear head on mean-pooled tokens"
    facts = {
        "Architecture": f"`{parse_config(config, source=repo).model.name}` + {head} (timm `global_pool='{pool}'`)",
        "Classes": f"{clf['num_classes']}: {shown}",
        "Started from": f"`{clf.get('base')}`" if clf.get("base") else "not recorded",
        "Fine-tuning data": f"{data.get('name', 'not recorded')} ({data.get('num_train', '?')} train / "
                            f"{data.get('num_val', '?')} validation images)",
        "Fine-tuning mode": MODE_TEXT.get(model.get("mode"), "not recorded"),
        "Recipe": f"`{recipe.get('name', 'custom')}` ({optim.get('epochs', '?')} epochs, "
                  f"lr {optim.get('lr', '?')}, layer decay {optim.get('layer_decay', '?')}); all keys in `config.json` "
                  "under `ijepa.recipe`",
        "Validation top-1 (final)": f"{metrics['val_top1']}%" if "val_top1" in metrics else "not recorded",
    }
    if "best_val_top1" in metrics:
        facts["Validation top-1 (best epoch)"] = f"{metrics['best_val_top1']}%"
    card_data = ModelCardData(license=ijepa.get("license", "apache-2.0"), library_name=LIBRARY_NAME,
                              pipeline_tag="image-classification",
                              tags=["ijepa", "i-jepa", "vision-transformer", "timm", "image-classification"])
    body = f"""---
{card_data.to_yaml()}
---

# I-JEPA classifier

An [I-JEPA](https://arxiv.org/abs/2301.08243) encoder fine-tuned with
[ijepa_hub](https://github.com/ijepa-hub/ijepa_hub)'s `ijepa-finetune`.

{_table(facts)}

{provenance_markdown(ijepa.get("provenance"))}

## Use

```python
import ijepa_hub
clf = ijepa_hub.from_pretrained("{repo}")
clf.classify(["image.jpg"], top_k=5)     # [[(label, probability), ...]]
```

With timm (same weights, same logits):

```python
import timm
model = timm.create_model("hf-hub:{repo}", pretrained=True)
```

Deployment: `ijepa-hub export {repo} out/ --format onnx` (or `torch-export`).
"""
    return ModelCard(body)


def load_classifier(files: Any, data: Mapping[str, Any], *, options: Mapping[str, Any], allow_pickle: bool) -> Classifier:
    """The :class:`Classifier` of a classifier repo (``files``: a folder's or a Hub repo's file getter)."""
    if options.get("with_predictor") or options.get("with_context_encoder") or options.get("encoder") == "context":
        raise HubLayoutError(
            f"{files.source} is a fine-tuned classifier: it holds one encoder and its head, no context encoder "
            "or predictor. Load it without encoder= / with_context_encoder= / with_predictor="
        )
    repo = parse_config(data, source=files.source)
    clf = data["ijepa"][CLASSIFIER_KEY]
    labels = clf.get("label_names")
    if not isinstance(labels, list) or len(labels) != clf.get("num_classes"):
        raise HubLayoutError(f"{files.source}: config.json 'ijepa.classifier' has {clf.get('num_classes')!r} classes "
                             f"but label_names {labels!r}; re-save the classifier")
    path = files.get(WEIGHTS_NAME)
    if path is None:
        raise HubLayoutError(f"{files.source}: {WEIGHTS_NAME} is listed in config.json but missing; re-upload the repo")

    pool = clf.get("global_pool", "avg")  # repos written before attentive mode: mean pooling
    if pool not in POOLINGS:
        raise HubLayoutError(f"{files.source}: config.json 'ijepa.classifier.global_pool' is {pool!r}, not one of "
                             f"{', '.join(POOLINGS)}; re-save the classifier")
    with torch.device("meta"):  # no memory and no init for weights that are about to be replaced
        model = Classifier(repo.model, labels, crop_pct=clf.get("crop_pct"), global_pool=pool)
    model = model.to_empty(device="cpu")
    weights = read_safetensors(path, source=files.source)
    if pooling_of(weights) != pool:
        raise PoolingMismatchError(
            f"{files.source}: config.json says global_pool {pool!r} but {WEIGHTS_NAME} "
            f"{'lacks' if pool == 'map' else 'holds'} the attentive pooler's attn_pool.* weights; "
            "re-save the classifier (Classifier.save_pretrained) so that both agree"
        )
    load_strict(model, weights, source=files.source, what="classifier")
    model.source = files.source
    return model.eval()
