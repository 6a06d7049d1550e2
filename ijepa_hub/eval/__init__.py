"""Evaluation on frozen features: k-NN, linear and attentive probes, the linear segmentation probe, the synthetic
shape / count probes, and pictures."""
from .attentive import attentive_probe, evaluate_attentive
from .data import LabelledSplits, folder_splits, labelled_splits, synthetic_splits
from .knn import KnnResult, knn_classify
from .linear import LinearProbeResult, linear_probe, train_linear
from .probes import card_metrics, evaluate_knn, evaluate_linear, random_init_encoder, random_init_model, synthetic_probe
from .segdata import SegmentationSplits, segmentation_splits
from .segmentation import evaluate_segmentation, segmentation_scores

__all__ = [
    "KnnResult", "knn_classify", "LinearProbeResult", "linear_probe", "train_linear",
    "LabelledSplits", "labelled_splits", "synthetic_splits", "folder_splits",
    "evaluate_knn", "evaluate_linear", "random_init_encoder", "random_init_model", "synthetic_probe", "card_metrics",
    "attentive_probe", "evaluate_attentive", "SegmentationSplits", "segmentation_splits", "evaluate_segmentation",
    "segmentation_scores",
]
