"""Frozen-feature evaluations of an encoder: k-NN, linear probe, and the synthetic shape / count probes.

Each returns plain dicts (JSON-ready); :func:`format_table` renders them for a terminal.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ..data.synthetic import STYLES, synthetic_spec
from ..models import IJepa
from ..models.extract import Quantize
from ..precision import Precision
from ..registry import ModelConfig
from .cache import cached_features, computed_on, weights_digest
from .checks import check_classes
from .data import LabelledSplits, synthetic_splits_by_label
from .knn import knn_classify
from .linear import linear_probe

__all__ = [
    "split_features", "evaluate_knn", "evaluate_linear", "random_init_model", "random_init_encoder", "synthetic_probe", "format_table",
    "card_metrics",
]


def split_features(
    encoder: nn.Module, splits: LabelledSplits, *, layers: int = 1, cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64, device: str | torch.device | None = None, dtype: Precision | None = "auto",
    quantize: Quantize | None = None, progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of the train and test images (cached, see :func:`~ijepa_hub.eval.cache.cached_features`);
    ``dtype`` and ``quantize`` are :func:`~ijepa_hub.extract_features`'s."""
    common = dict(layers=layers, crop_pct=splits.crop_pct, cache_dir=cache_dir, batch_size=batch_size, device=device,
                  dtype=dtype, quantize=quantize, progress=progress,
                  weights_key=weights_digest(encoder) if cache_dir != "" else "uncached")
    train = cached_features(encoder, splits.train_images, fingerprint=splits.fingerprint + ":train", **common)
    test = cached_features(encoder, splits.test_images, fingerprint=splits.fingerprint + ":test", **common)
    return train, test


def _compute_dtype(encoder: nn.Module, feature_kwargs: dict[str, Any]) -> str:
    """What the features of a probe were computed in (float32, bfloat16, int8...), for its result."""
    return computed_on(encoder, feature_kwargs.get("device"), dtype=feature_kwargs.get("dtype", "auto"),
                       quantize=feature_kwargs.get("quantize"))["compute_dtype"]


def evaluate_knn(
    encoder: nn.Module, splits: LabelledSplits, *, k: int = 20, temperature: float = 0.07, **feature_kwargs: Any
) -> dict[str, Any]:
    """Weighted k-NN (cosine similarity, ``exp(sim / T)`` votes) on pooled last-layer features."""
    check_classes(splits.train_labels, what=f"k-NN on {splits.name}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k-NN: k={k!r} must be a positive integer. Fix: pass --k 1 or more.")
    train, test = split_features(encoder, splits, **feature_kwargs)
    r = knn_classify(train, splits.train_labels, test, splits.test_labels, k=k, temperature=temperature,
                     num_classes=len(splits.classes))
    return {"data": splits.name, "protocol": "knn", "k": r.k, "temperature": temperature, "top1": r.top1,
            "top5": r.top5, "num_train": len(train), "num_test": len(test), "num_classes": len(splits.classes),
            "compute_dtype": _compute_dtype(encoder, feature_kwargs)}


def evaluate_linear(
    encoder: nn.Module, splits: LabelledSplits, *, layers: int = 1, seed: int = 0, **feature_kwargs: Any
) -> dict[str, Any]:
    """Linear probe on pooled features (``layers=4``: the last four blocks concatenated, the paper's protocol),
    its learning rate and weight decay chosen on a held-out 20 % of the training split."""
    check_classes(splits.train_labels, what=f"linear probe on {splits.name}")
    train, test = split_features(encoder, splits, layers=layers, **feature_kwargs)
    r = linear_probe(train, splits.train_labels, test, splits.test_labels, seed=seed)
    return {"data": splits.name, "protocol": "linear", "layers": layers, "top1": r.top1, "val_top1": r.val_top1,
            "lr": r.lr, "weight_decay": r.weight_decay, "sweep": r.sweep, "num_train": len(train),
            "num_test": len(test), "num_classes": len(splits.classes), "compute_dtype": _compute_dtype(encoder, feature_kwargs)}


def random_init_model(config: ModelConfig, *, seed: int = 0, with_predictor: bool = False) -> IJepa:
    """The encoders an ``ijepa-train`` run with ``train.seed=seed`` starts from (and its predictor with
    ``with_predictor``), drawn without touching the caller's RNG: the baseline a trained model is compared with,
    or saved to be fine-tuned."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return IJepa(config, with_predictor=with_predictor).eval()


def random_init_encoder(config: ModelConfig, *, seed: int = 0) -> nn.Module:
    """The target encoder of :func:`random_init_model` (the released initialisation), for baselines."""
    return random_init_model(config, seed=seed).target_encoder.eval()


def synthetic_probe(
    encoder: nn.Module,
    *,
    baseline: nn.Module | None = None,
    labels: Sequence[str] = ("shape", "count"),
    num_train: int = 2000,
    num_test: int = 1000,
    layers: int = 1,
    seed: int = 0,
    style: str = STYLES[0],
    **feature_kwargs: Any,
) -> dict[str, Any]:
    """Linear probe and k-NN on the held-out synthetic shapes in ``style``, by shape kind and by object count.

    With ``baseline`` (usually :func:`random_init_encoder` of the same architecture) the same probes run
    on it and ``margin`` gives encoder minus baseline, in points: the evidence that training taught
    something a random network does not already give.
    """
    splits = synthetic_splits_by_label(labels, num_train=num_train, num_test=num_test, seed=seed, style=style)
    first = splits[labels[0]]  # every label describes the same images: extract once per encoder
    rows: dict[str, Any] = {label: {} for label in labels}
    for who, net in (("model", encoder), ("random_init", baseline)):
        if net is None:
            continue
        train, test = split_features(net, first, layers=layers, **feature_kwargs)
        for label, s in splits.items():
            lin = linear_probe(train, s.train_labels, test, s.test_labels, seed=seed)
            knn = knn_classify(train, s.train_labels, test, s.test_labels, num_classes=len(s.classes))
            rows[label][who] = {"linear_top1": lin.top1, "knn_top1": knn.top1}
    if baseline is not None:
        for row in rows.values():
            row["margin"] = {m: row["model"][m] - row["random_init"][m] for m in ("linear_top1", "knn_top1")}
    return {"data": synthetic_spec(style), "layers": layers, "num_train": num_train, "num_test": num_test,
            "num_classes": {label: len(s.classes) for label, s in splits.items()}, "labels": rows}


def sample_sizes(result: dict[str, Any]) -> str:
    """``"48 train / 12 test images, 4 classes"``: the sample sizes a result was measured on (per label if several)."""
    classes = result.get("num_classes")
    if isinstance(classes, dict):
        classes = ", ".join(f"{label} {n}" for label, n in classes.items())
    return f"{result['num_train']} train / {result['num_test']} test images, {classes} classes"


def format_table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain-text table with aligned columns; floats to one decimal."""
    cells = [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def card_metrics(results: Any) -> dict[str, float]:
    """Flat ``{name: value}`` metrics for a model card from what ``ijepa-eval knn / linear / synthetic --json``
    write (a result, a list of them, or a list mixing several), or from a mapping that is already flat."""
    items = results if isinstance(results, list) else [results]
    out: dict[str, float] = {}
    for r in items:
        if not isinstance(r, dict):
            raise ValueError(f"expected ijepa-eval results (JSON objects), got {type(r).__name__}")
        if r.get("protocol") == "knn":
            out[f"{r['data']}: k-NN top-1 % (k={r['k']})"] = r["top1"]
            out[f"{r['data']}: k-NN top-5 % (k={r['k']})"] = r["top5"]
        elif r.get("protocol") == "linear":
            out[f"{r['data']}: linear probe top-1 % (last {r['layers']} blocks)"] = r["top1"]
        elif isinstance(r.get("labels"), dict):  # synthetic_probe
            for label, row in r["labels"].items():
                for who, values in row.items():
                    for metric, value in values.items():
                        probe = "linear probe" if metric.startswith("linear") else "k-NN"
                        out[f"synthetic {label}: {probe} top-1 % ({who.replace('_', ' ')})"] = value
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r.values()):
            out.update(r)
        else:
            raise ValueError(
                "not metrics: expected the JSON of ijepa-eval knn, linear or synthetic, or a flat mapping of "
                f"numbers; got keys {sorted(r)[:8]}"
            )
    return {k: round(float(v), 2) for k, v in out.items()}

