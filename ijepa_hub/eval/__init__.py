"""Evaluation on frozen features: k-NN, linear probe, and pictures."""
from .knn import KnnResult, knn_classify
from .linear import LinearProbeResult, linear_probe, train_linear

__all__ = ["KnnResult", "knn_classify", "LinearProbeResult", "linear_probe", "train_linear"]
