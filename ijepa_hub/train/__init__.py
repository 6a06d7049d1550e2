"""ijepa-train: I-JEPA pretraining on the run engine (:mod:`ijepa_hub.engine`), from one CPU to many GPUs
(``python -m ijepa_hub.train`` / ``torchrun``)."""
from ..deprecation import alias_moved_modules
from ..engine.checkpoint import load_checkpoint, save_checkpoint
from .loop import TrainResult, train, train_iteration, train_step
from .monitor import effective_rank, feature_std

__all__ = [
    "train", "train_step", "train_iteration", "TrainResult", "save_checkpoint", "load_checkpoint", "effective_rank",
    "feature_std",
]

# 0.1 kept the run engine here; its modules moved to ijepa_hub.engine in 0.2
alias_moved_modules({
    f"ijepa_hub.train.{name}": f"ijepa_hub.engine.{name}"
    for name in ("checkpoint", "checkpointer", "resume", "lock", "faults", "threads", "distributed", "run", "schedules")
})
