"""Weighted k-nearest-neighbour classification on frozen features (the DINO protocol)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["KnnResult", "knn_classify"]


@dataclass
class KnnResult:
    top1: float  # percent
    top5: float  # percent
    k: int
    temperature: float
    predictions: torch.Tensor  # [N_test] top-1 class


@torch.no_grad()
def knn_classify(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> KnnResult:
    """Classify each test feature by the votes of its ``k`` most cosine-similar training features.

    Each neighbour votes for its class with weight ``exp(similarity / temperature)`` (computed relative to
    the nearest neighbour's, which scales every vote of a test image alike and never overflows). Top-5
    counts a hit when the true class is among the five classes with the most weight. ``k < 1``, a
    temperature <= 0, no test images or fewer than two classes cannot be measured: a ValueError.
    """
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError("features and labels must have the same length")
    if k < 1 or not temperature > 0:
        raise ValueError(f"k-NN needs k >= 1 and a temperature > 0, got k={k}, temperature={temperature}")
    if not len(test_labels) or train_labels.unique().numel() < 2:
        raise ValueError(
            f"k-NN accuracy needs test images and at least 2 classes among the training labels (got "
            f"{train_labels.unique().numel()} class(es), {len(test_labels)} test image(s)): one class scores 100 %"
        )
    num_classes = int(num_classes if num_classes is not None else max(train_labels.max(), test_labels.max()) + 1)
    k = min(k, len(train_features))
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    train_labels = train_labels.long()
    hits1 = hits5 = 0
    predictions = []
    for start in range(0, len(test), chunk_size):
        sims, idx = (test[start : start + chunk_size] @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(sims), num_classes)
        # weights relative to the nearest neighbour's: the same votes, without overflow at small temperatures
        votes.scatter_add_(1, train_labels[idx], ((sims - sims[:, :1]) / temperature).exp())
        ranked = votes.topk(min(5, num_classes), dim=1).indices
        truth = test_labels[start : start + chunk_size].long()[:, None]
        hits1 += (ranked[:, :1] == truth).sum().item()
        hits5 += (ranked == truth).any(dim=1).sum().item()
        predictions.append(ranked[:, 0])
    n = len(test)
    return KnnResult(100.0 * hits1 / n, 100.0 * hits5 / n, k, temperature, torch.cat(predictions))
