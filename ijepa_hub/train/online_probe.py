"""The online probe: whether a run learns, seen while it trains.

Every ``train.eval_every`` steps (and at step 0, the random initialisation), the target encoder embeds a
small held-out labelled split and a weighted k-NN (:func:`ijepa_hub.eval.knn.knn_classify`) classifies
the test images by their pooled features. For the built-in synthetic data (``eval.data`` unset and the
training data synthetic: its style; or ``eval.data`` ``synthetic`` / ``synthetic:textured``) the labels are
the shape kind and the object count of held-out seeds (:func:`ijepa_hub.eval.data.synthetic_splits_by_label`);
for other data ``eval.data`` names a folder with class subfolders (or ``hfds/NAME``). The images are preprocessed
once; the probe draws no random number, so the training run is the same with or without it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch

from ..data import training_synthetic_style
from ..data.synthetic import synthetic_style
from ..errors import RecipeError
from ..eval.data import LabelledSplits, labelled_splits, synthetic_splits_by_label
from ..eval.knn import knn_classify
from ..features import preprocess
from ..recipe import Recipe

__all__ = ["OnlineProbe", "probe_splits", "run_probe"]

logger = logging.getLogger("ijepa_hub.train")

PROBE_SEED = 7  # held-out synthetic seeds 1014 / 1015: neither a training set's nor `ijepa-eval synthetic`'s (0)


def _subset(splits: LabelledSplits, num_train: int, num_test: int) -> LabelledSplits:
    """At most ``num_train`` / ``num_test`` images of each split, a fixed random choice (own generator)."""
    gen = torch.Generator().manual_seed(PROBE_SEED)
    tr = torch.randperm(len(splits.train_images), generator=gen)[:num_train].sort().values
    te = torch.randperm(len(splits.test_images), generator=gen)[:num_test].sort().values
    return LabelledSplits(
        splits.name, [splits.train_images[i] for i in tr], splits.train_labels[tr],
        [splits.test_images[i] for i in te], splits.test_labels[te], splits.classes, splits.crop_pct,
        splits.fingerprint,
    )


def _probe_style(recipe: Recipe) -> str | None:
    """The synthetic style the probe draws: ``eval.data``'s, or unset, the training data's; None: not synthetic."""
    ev = recipe.eval
    return synthetic_style(ev.data) if ev.data is not None else training_synthetic_style(recipe.data)


def probe_splits(recipe: Recipe) -> dict[str, LabelledSplits]:
    """The online probe's labelled splits by name: ``shape`` and ``count`` (synthetic) or ``class``."""
    ev = recipe.eval
    style = _probe_style(recipe)
    if style is not None:
        return synthetic_splits_by_label(
            ("shape", "count"), num_train=ev.num_train, num_test=ev.num_test, size=recipe.data.source_size,
            seed=PROBE_SEED, style=style,
        )
    if ev.data is None:
        raise RecipeError(
            "train.eval_every > 0 needs eval.data (a folder with one subfolder per class, or hfds/NAME) "
            "when the training data is not the built-in synthetic set; or set train.eval_every 0"
        )
    return {"class": _subset(labelled_splits(ev.data, seed=PROBE_SEED), ev.num_train, ev.num_test)}


class OnlineProbe:
    """k-NN top-1 (percent) of the pooled target-encoder features on fixed held-out splits.

    ``record = probe(encoder, step)`` gives ``{"step", "knn_<label>": top1, ...}`` and keeps it in
    :attr:`history`.
    """

    def __init__(self, splits: dict[str, LabelledSplits], img_size: int, *, k: int = 20, batch_size: int = 64) -> None:
        self.k, self.batch_size = k, batch_size
        self.labels, self.images, self.num_classes = {}, {}, {}
        for name, s in splits.items():
            key = id(s.train_images), id(s.test_images)  # synthetic labels share their images: preprocess once
            if key not in self.images:
                self.images[key] = tuple(
                    torch.stack([preprocess(image, img_size, crop_pct=s.crop_pct) for image in part])
                    for part in (s.train_images, s.test_images)
                )
            self.labels[name] = (key, s.train_labels, s.test_labels)
            self.num_classes[name] = len(s.classes)
        self.history: list[dict[str, float]] = []

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> OnlineProbe | None:
        """The probe of ``recipe``; None when ``train.eval_every`` is 0, or when the training data is not the
        synthetic set and ``eval.data`` is not given (a warning says so: the default recipe on your images)."""
        if recipe.train.eval_every <= 0:
            return None
        if recipe.eval.data is None and _probe_style(recipe) is None:
            logger.warning("online probe off: train.eval_every is %d but there are no labelled images to probe "
                           "%s with; pass --eval.data DIR (one subfolder per class)", recipe.train.eval_every,
                           recipe.data.path)
            return None
        return cls(probe_splits(recipe), recipe.model_config().img_size, k=recipe.eval.k)

    @torch.no_grad()
    def _pooled(self, encoder: torch.nn.Module, images: torch.Tensor, device: torch.device,
                autocast: Callable[[], ContextManager]) -> torch.Tensor:
        out = []
        for chunk in images.split(self.batch_size):
            with autocast():
                out.append(encoder(chunk.to(device, non_blocking=True)).float().mean(dim=1).cpu())
        return torch.cat(out)

    def __call__(self, encoder: torch.nn.Module, step: int, *, device: torch.device,
                 autocast: Callable[[], ContextManager]) -> dict[str, Any]:
        was_training = encoder.training
        encoder.eval()
        try:
            features = {key: tuple(self._pooled(encoder, part, device, autocast) for part in parts)
                        for key, parts in self.images.items()}
        finally:
            encoder.train(was_training)
        record: dict[str, Any] = {"step": step}
        for name, (key, train_labels, test_labels) in self.labels.items():
            train, test = features[key]
            result = knn_classify(train, train_labels, test, test_labels, k=self.k, num_classes=self.num_classes[name])
            record[f"knn_{name}"] = result.top1
        self.history.append(dict(record))
        return record


def run_probe(probe: OnlineProbe, encoder: torch.nn.Module, step: int, *, log: Any, monitor: Any,
              device: torch.device, autocast: Callable[[], ContextManager]) -> dict[str, Any]:
    """One probe at ``step``: measured (with its cost in seconds), watched by the collapse monitor for a
    falling trend (:meth:`~ijepa_hub.train.monitor.CollapseMonitor.watch_probe`), logged (metrics, bar)."""
    start = time.perf_counter()
    record = probe(encoder, step, device=device, autocast=autocast)
    record["probe_seconds"] = time.perf_counter() - start
    record["probe_warning"] = monitor.watch_probe(record)
    shown = {"probe_step": str(step), **{k: f"{v:.1f}" for k, v in record.items() if k.startswith("knn_")}}
    return log.event("probe", record, postfix=shown)
