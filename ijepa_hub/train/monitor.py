"""Watching a pretraining run: the collapse monitor (feature std and RankMe) on a fixed batch of images.

A falling I-JEPA loss is no evidence of learning: representations can collapse while the loss falls.
The collapse monitor embeds a fixed batch with the target encoder every N steps and warns when the
effective rank or the feature spread falls well below the best seen so far.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import torch

from ..data.hf_datasets import dataset_items
from ..data.pipeline import load_rgb
from ..deprecation import deprecated_attributes
from ..engine import metrics as _metrics
from ..errors import ImageReadError, TooManyBrokenImagesError
from ..features import preprocess

__all__ = [
    "effective_rank", "feature_std", "CollapseMonitor", "monitor_images",
]

__getattr__ = deprecated_attributes(__name__, {  # moved to the engine in 0.2: every task writes through them
    name: (f"ijepa_hub.engine.metrics.{name}", lambda name=name: getattr(_metrics, name))
    for name in ("MetricsWriter", "progress_bar", "StepLogger")
})

logger = logging.getLogger(__name__)

MIN_FEATURE_STD = 1e-3  # below this, pooled features differ between images by float noise only


def effective_rank(features: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., 2023): exp of the entropy of the normalised singular values of [N, D].

    Between 1 (all features on a line) and min(N, D) (a spread in every direction).
    """
    s = torch.linalg.svdvals(features.double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def feature_std(features: torch.Tensor) -> float:
    """Mean per-dimension standard deviation of the L2-normalised features, times sqrt(D).

    About 1 for well-spread features, 0 for a collapsed (constant) representation.
    """
    z = torch.nn.functional.normalize(features.double(), dim=1)
    return float(z.std(dim=0).mean() * math.sqrt(z.shape[1]))


class CollapseMonitor:
    """Tracks std and RankMe of pooled target-encoder features on a fixed batch.

    Logs RankMe and feature std of the raw pooled features and ``rankme_centered``, the RankMe of the
    spread between images (batch mean removed). Warns on collapse: the centred RankMe falls below
    ``warn_fraction`` of its peak (fewer directions tell images apart), or the feature std falls below
    ``MIN_FEATURE_STD`` (every image maps to nearly one vector). A falling raw RankMe / std with a steady
    centred RankMe is a growing shared component, not collapse: the built-in default run shows it while
    its probes rise above random initialisation (docs/evaluation.md). It also watches the online probe
    (:meth:`watch_probe`): a k-NN accuracy that falls ``probe_falls`` evaluations in a row is a warning.
    ``history`` and ``probe_history`` are saved in the checkpoint, so a resumed run warns against the
    same peaks and trends.
    """

    def __init__(self, images: torch.Tensor, *, warn_fraction: float = 0.5, probe_falls: int = 3) -> None:
        self.images, self.warn_fraction, self.probe_falls = images, warn_fraction, probe_falls
        self.history: list[dict[str, float]] = []
        self.probe_history: list[dict[str, float]] = []

    def watch_probe(self, record: dict[str, Any]) -> str:
        """Record an online-probe result (``{"step", "knn_<label>": top1...}``); returns (and logs) a warning
        naming each accuracy that fell at each of the last ``probe_falls`` evaluations, else ``""``."""
        self.probe_history.append({k: v for k, v in record.items() if k == "step" or k.startswith("knn_")})
        recent = self.probe_history[-(self.probe_falls + 1):]
        falling = []
        if len(recent) == self.probe_falls + 1:
            for key in (k for k in recent[-1] if k.startswith("knn_")):
                values = [r.get(key) for r in recent]
                if None not in values and all(b < a for a, b in zip(values, values[1:])):
                    falling.append(f"{key} fell {self.probe_falls} evaluations in a row, "
                                   f"{values[0]:.1f} -> {values[-1]:.1f} (step {recent[0]['step']} -> {recent[-1]['step']})")
        warning = "; ".join(falling)
        if warning:
            logger.warning("step %d: the online probe is falling (collapse, or over-fitting the pretext task?): %s",
                           record["step"], warning)
        return warning

    @torch.no_grad()
    def measure(self, encoder: torch.nn.Module, step: int, *, device: torch.device, autocast: Any) -> dict[str, Any]:
        """Embed the fixed batch, record and return ``{step, rankme, feature_std, collapse_warning}``."""
        was_training = encoder.training
        encoder.eval()
        pooled = []
        for chunk in self.images.split(64):
            with autocast():
                pooled.append(encoder(chunk.to(device, non_blocking=True)).float().mean(dim=1).cpu())
        encoder.train(was_training)
        features = torch.cat(pooled)
        record: dict[str, Any] = {
            "step": step,
            "rankme": effective_rank(features),
            "feature_std": feature_std(features),
            # The spread between images alone: a shared component can dominate the two above while the
            # image-dependent part, which a standardised probe reads, still carries information.
            "rankme_centered": effective_rank(features - features.mean(0)),
        }
        warnings = []
        if self.history and record["rankme_centered"] < self.warn_fraction * (
            peak := max(h.get("rankme_centered", 0.0) for h in self.history)
        ):
            warnings.append(f"rankme_centered {record['rankme_centered']:.3g} < {self.warn_fraction:.0%} of its peak {peak:.3g}")
        if record["feature_std"] < MIN_FEATURE_STD:
            warnings.append(f"feature_std {record['feature_std']:.3g} < {MIN_FEATURE_STD:g}: images map to nearly one vector")
        record["collapse_warning"] = "; ".join(warnings)
        if warnings:
            logger.warning("step %d: possible representation collapse: %s", step, record["collapse_warning"])
        self.history.append({k: record[k] for k in ("step", "rankme", "feature_std", "rankme_centered")})
        return record

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "probe_history": list(self.probe_history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.probe_history = list(state.get("probe_history", []))  # absent in checkpoints from before the probe


def monitor_images(dataset: Any, count: int, img_size: int, min_fraction: float, *, source: Any) -> torch.Tensor:
    """The collapse monitor's fixed batch: the first ``count`` readable images of ``dataset`` (``source``
    names it in the error when none is), preprocessed as for feature extraction."""
    n, images = min(count, len(dataset)), []
    for item, _ in dataset_items(dataset):  # a map-style dataset or a stream (hfids/)
        if len(images) == n:
            break
        try:
            images.append(preprocess(load_rgb(item, img_size, min_fraction), img_size))
        except ImageReadError as err:
            logger.warning("collapse monitor: skipping unreadable image: %s", err)
    if not images:
        raise TooManyBrokenImagesError(f"no image of {source} can be decoded; check --data (data.path)")
    return torch.stack(images)
