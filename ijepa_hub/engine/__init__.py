"""The run engine: what every training task (pretraining in :mod:`ijepa_hub.train`, fine-tuning in
:mod:`ijepa_hub.finetune`) shares.

- :mod:`.process`: the training process (process group, CPU threads, the run folder's lock) and the run folder;
- :mod:`.run`: the batch plan, schedules and steps of one call; :mod:`.schedules`: every task's schedules;
- :mod:`.step`: the accumulated optimiser step and the end of every step (:class:`StepEnd`);
- :mod:`.checkpoint`, :mod:`.checkpointer`, :mod:`.resume`: atomic checkpoints and exact resumption;
- :mod:`.files`: run and export files never used through links; :mod:`.progress`: plain progress lines off a terminal;
- :mod:`.faults`, :mod:`.lock`, :mod:`.threads`, :mod:`.distributed`, :mod:`.metrics`, :mod:`.optim`.

A task brings its model, data, loss and its own records; the engine runs them the same way.
"""
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, run_folder, save_checkpoint
from .checkpointer import Checkpointer
from .distributed import DistEnv, wrap_model
from .faults import BrokenImageCounter, StopSignal
from .metrics import MetricsWriter, progress_bar
from .optim import adamw, set_hyperparams
from .process import RunResult, open_run_folder, training_process
from .resume import Resume
from .run import Run
from .schedules import Hyperparams, Schedules, WarmupCosineSchedules
from .step import StepEnd, accumulated_step, autocast_factory

__all__ = [
    "CHECKPOINT_NAME", "load_checkpoint", "save_checkpoint", "run_folder", "Checkpointer", "DistEnv", "wrap_model",
    "BrokenImageCounter", "StopSignal", "MetricsWriter", "progress_bar", "adamw", "set_hyperparams", "RunResult",
    "open_run_folder", "training_process", "Resume", "Run", "Hyperparams", "Schedules", "WarmupCosineSchedules",
    "StepEnd", "accumulated_step", "autocast_factory",
]
