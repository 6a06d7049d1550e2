"""The model card (README.md) of a repo: YAML metadata for the Hub plus ``MODEL_CARD.md`` filled in.

Released weights carry their license and the paper's result; models trained here state their recipe,
data and metrics, and never the paper's numbers.
"""
from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.synthetic import synthetic_style
from ..recipe import describe_objective
from ..registry import VARIANTS, ModelConfig, PretrainedVariant
from .layout import LIBRARY_NAME, WEIGHTS_NAME, EncoderName
from .lineage import chain_license, provenance_markdown, released_step, strictest_license

__all__ = ["render_model_card", "PAPER_URL"]

def _template() -> str:
    return (resources.files("ijepa_hub") / "hub" / "MODEL_CARD.md").read_text()


def _markdown_table(rows: Mapping[str, Any]) -> str:
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows.items()]
    return "\n".join(lines)


PAPER_URL = "https://arxiv.org/abs/2301.08243"
_PAPER = f"[Assran et al., CVPR 2023]({PAPER_URL}), Table 1"


def _paper_result(variant: PretrainedVariant) -> list[EvalResult]:
    """The paper's ImageNet-1K linear-probe top-1 of a released variant, as model-index metadata."""
    if variant.imagenet_linear_top1 is None:
        return []
    return [EvalResult(
        task_type="image-classification", task_name="Image classification (linear probe on frozen features)",
        dataset_type="imagenet-1k", dataset_name="ImageNet-1K", dataset_split="validation",
        metric_type="accuracy", metric_name="Top-1 accuracy (linear probe, reported in the paper)",
        metric_value=variant.imagenet_linear_top1, source_name="Assran et al., CVPR 2023 (Table 1)",
        source_url=PAPER_URL,
    )]


def _named(origin: Mapping[str, Any]) -> str:
    revision = origin.get("revision")
    return f"`{origin['source']}`" + (f" (revision `{revision}`)" if revision else "")


def _start(origins: Mapping[str, Mapping[str, Any]], base: Any) -> str:
    """How a model trained here began: random init, continued from a source, or distilled from a teacher."""
    meta = f", Meta's released `{base.name}` weights ({base.url})" if base else ""
    if "teacher" in origins:
        return f"distilled from the frozen teacher {_named(origins['teacher'])}{meta}"
    if "init" in origins:
        return f"continuing the pretraining of {_named(origins['init'])}{meta}"
    return f"starting from Meta's released `{base.name}` weights ({base.url})" if base else "from random initialisation"


def _origin_facts(origins: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    labels = {"init": "Started from", "teacher": "Teacher"}
    return {labels[k]: _named(o) + (f", licence {o['license']}" if o.get("license") else "")
            for k, o in origins.items() if k in labels}


def _training_facts(recipe: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, str]:
    data = recipe.get("data") or {}
    where = data.get("path") or "built-in synthetic shapes"
    synthetic = synthetic_style(data.get("path") or data.get("dataset")) is not None
    amount = f", {data['num_samples']} images" if synthetic and data.get("num_samples") else ""
    steps = metrics.get("steps")
    seen = f" ({metrics['images_seen']} images seen)" if metrics.get("images_seen") else ""
    return {
        "Recipe": f"`{recipe.get('name', 'custom')}`",
        "Training data": f"{data.get('dataset', 'unknown')} ({where}{amount})",
        "Training steps": f"{steps}{seen}" if steps is not None else "not recorded",
    }


def render_model_card(
    config: ModelConfig,
    *,
    repo_id: str | None,
    encoder: EncoderName,
    files: Mapping[str, str],
    variant: str | None = None,
    base_variant: str | None = None,
    license: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    origins: Mapping[str, Mapping[str, Any]] | None = None,
    provenance: Sequence[Mapping[str, Any]] | None = None,
) -> ModelCard:
    """The README.md of a repo: YAML metadata plus ``MODEL_CARD.md`` filled in.

    Three kinds of weights, three kinds of card: a released variant's (``variant``: Meta's weights, CC
    BY-NC 4.0, the paper's results); trained here (``recipe``: what it was trained on and for how long,
    its own metrics, never the paper's numbers; ``base_variant`` when it started from released weights,
    whose license it then inherits); neither (e.g. random initialisation: no training claimed).
    """
    trained = recipe is not None
    released = VARIANTS.get(variant) if variant and not trained else None
    base = VARIANTS.get(base_variant or variant or "") if trained else None
    origin = released or base  # the release the weights come from, if they do
    license = strictest_license([license, origin.license if origin else None, chain_license(provenance or [])]) \
        or "apache-2.0"
    title = f"I-JEPA {config.name}" + (f" ({released.name})" if released else "")
    paper = _paper_result(released) if released else []
    card_data = ModelCardData(
        license=license,
        library_name=LIBRARY_NAME,
        pipeline_tag="image-feature-extraction",
        tags=["ijepa", "i-jepa", "self-supervised", "vision-transformer", "timm", "image-feature-extraction"],
        base_model=origin.hf_transformers_repo if origin else None,
        datasets=[released.dataset] if released else None,
        model_name=title if paper else None,
        eval_results=paper or None,
    )
    facts = {
        "Architecture": f"`{config.name}`, no class token",
        "Input size": f"{config.img_size} px",
        "Width / depth / heads / MLP": f"{config.embed_dim} / {config.depth} / {config.num_heads} / {config.mlp_hidden_dim}",
        "`model.safetensors`": f"{encoder} encoder",
    }
    facts.update({f"`{name}`": part.replace("_", " ") for part, name in files.items() if name != WEIGHTS_NAME})
    if released:
        facts["Weights"] = f"Meta's released checkpoint, converted: {released.url}"
        facts["Training data"] = f"{released.dataset}, {released.epochs} epochs"
        training = (
            f"These are the weights Meta released with the paper ({released.url}), converted to safetensors "
            f"without change: trained on {released.dataset} for {released.epochs} epochs with the released recipe "
            f"(`{released.recipe}` in ijepa_hub)."
        )
    elif trained:
        facts.update(_training_facts(recipe, metrics or {}))
        start = _start(origins or {}, base)
        facts.update(_origin_facts(origins or {}))
        facts["Objective"] = describe_objective(recipe.get("loss"))
        training = (
            f"Trained with ijepa_hub's trainer (`ijepa-train`), {start}; the recipe is recorded in `config.json` "
            "under `ijepa.recipe`. These are not Meta's released weights: the paper's results do not apply to them."
        )
    else:
        facts["Weights"] = "not trained by ijepa_hub and not a released checkpoint"
        training = (
            "No training is recorded for these weights: they are not a released I-JEPA checkpoint and were not "
            "saved by ijepa_hub's trainer (a randomly initialised model, for example). No results apply to them."
        )
    if released and released.imagenet_linear_top1 is not None:
        paper = {"ImageNet-1K linear probe top-1 (paper)": f"{released.imagenet_linear_top1}% ({_PAPER})"}
        facts.update(paper)
        metrics_md = _markdown_table(paper)
    elif released:
        metrics_md = f"The paper reports no ImageNet-1K linear-probe result for this checkpoint ({_PAPER})."
    else:
        metrics_md = _markdown_table({str(k): v for k, v in metrics.items()}) if metrics else "None reported."
    license_note = (
        "The weights derive from Meta's I-JEPA release and are licensed CC BY-NC 4.0 (non-commercial use only)."
        if license == "cc-by-nc-4.0"
        else f"License of the weights: {license}."
    )
    body = string.Template(_template()).safe_substitute(
        card_data=card_data.to_yaml(),
        title=title,
        repo_id=repo_id or "<this-repo>",
        encoder=encoder,
        img_size=config.img_size,
        facts=_markdown_table(facts),
        training=training + "\n\n" + provenance_markdown(provenance if provenance else
                                                        [released_step(released.name)] if released else None),
        metrics=metrics_md,
        license_note=license_note,
    )
    return ModelCard(body)
