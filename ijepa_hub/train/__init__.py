"""ijepa-train: the trainer, from one CPU to many GPUs (``python -m ijepa_hub.train`` / ``torchrun``)."""
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import TrainResult, train, train_iteration, train_step
from .monitor import effective_rank, feature_std

__all__ = [
    "train", "train_step", "train_iteration", "TrainResult", "save_checkpoint", "load_checkpoint", "effective_rank",
    "feature_std",
]
