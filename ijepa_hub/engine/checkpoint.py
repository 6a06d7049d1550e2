"""Training checkpoints: written atomically, read strictly, checked against the recipe before resuming.

A checkpoint holds the task's networks, the optimiser, the (unused under bf16) grad scaler, the
schedules, every rank's RNG states, the data position and the task's own state (the pretraining monitor's
history, the fine-tuner's validations): everything needed for ``--resume auto`` to continue exactly where
the run stopped.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, CheckpointWriteError, RunFolderError
from ..limits import MAX_STEPS
from ..recipe import Recipe
from ..state_dict import read_torch_pickle
from .files import check_entry

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "resolve_resume",
    "run_folder",
    "RUN_OUTPUTS",
    "check_run_outputs",
    "check_resumable",
    "remove_partial_checkpoints",
    "rng_state",
    "set_rng_state",
]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "ijepa_hub.train/1"
_REQUIRED = ("format", "step", "recipe", "model", "optimizer", "schedules", "rng", "data")
# Recipe keys that may change between a run and its resume: they do not change the mathematics.
_RUNTIME_KEYS = {
    "name", "description", "data.path", "train.max_steps", "train.checkpoint_every", "train.log_every",
    "train.monitor_every", "train.num_workers", "train.threads", "train.device", "train.compile",
    "train.grad_checkpointing", "train.fsdp", "train.tensorboard", "data.max_broken_fraction",
}


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A crash at any moment leaves either the previous checkpoint or the new one, never a partial file.
    A failed write (disk full, permissions) removes the temporary file and raises
    :class:`CheckpointWriteError`; the previous checkpoint is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_entry(path)  # a link there is refused, never replaced or written through
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            kept = "the previous checkpoint there is intact" if path.exists() else "no earlier checkpoint exists"
            raise CheckpointWriteError(
                f"cannot write checkpoint {path} ({err}); {kept} and the partial file was removed. Fix: free "
                "disk space on that file system (or choose another --out), then run again with --resume auto."
            ) from err
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def remove_partial_checkpoints(folder: str | os.PathLike, name: str = CHECKPOINT_NAME) -> list[Path]:
    """Delete the temporary files a killed checkpoint write left in ``folder``; return what was deleted.

    Call it only from the process that owns the run folder, before it writes (never while writing).
    """
    stale = sorted(Path(folder).glob(f"{_temp_prefix(Path(name))}*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint (``weights_only``) or raise :class:`CheckpointError` saying why."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    state = read_torch_pickle(
        path,
        fix="It is not an ijepa_hub training checkpoint, or it was damaged after it was written. Fix: resume "
        "from an intact copy, or delete it (and pass no --resume) to deliberately start again from step 0.",
    )
    missing = [k for k in _REQUIRED if not isinstance(state, dict) or k not in state]
    if missing or state.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not an {FORMAT} training checkpoint (missing {missing or 'format'}); "
            "to start from released weights use ijepa_hub.load_reference_checkpoint instead"
        )
    problem = _damaged_entry(state)
    if problem:
        raise CheckpointError(
            f"checkpoint {path}: {problem}; it was damaged or edited after it was written. Fix: resume from an "
            "intact copy, or delete it (and pass no --resume) to deliberately start again from step 0."
        )
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _damaged_entry(state: dict[str, Any]) -> str | None:
    """What is wrong with the entries every checkpoint holds (type, range), or None: checked once on reading, so
    that resuming never fails on an int where a dict belongs, deep in the restore."""
    step = state["step"]
    if not _is_int(step) or not 0 <= step <= MAX_STEPS:
        return f"'step' is {str(step)[:40]} (of type {type(step).__name__}), not a step count (an integer, 0 to {MAX_STEPS})"
    for key in ("recipe", "schedules", "data", "optimizer"):
        if not isinstance(state[key], dict):
            return f"'{key}' is of type {type(state[key]).__name__}, not a dict"
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in model.items()):
        return "'model' is not a mapping of names to tensors"
    optimizer = state["optimizer"]
    if not isinstance(optimizer.get("state"), dict) or not isinstance(optimizer.get("param_groups"), list):
        return "'optimizer' lacks its 'state' dict or its 'param_groups' list"
    rng = state["rng"]
    if not isinstance(rng, list) or not rng or not all(_is_rng_state(r) for r in rng):
        return "'rng' is not a list of every rank's RNG states (torch, cuda, numpy, python)"
    counts = [k for k in ("broken_images", "images_read") if k in state["data"] and not _is_int(state["data"][k])]
    if counts:
        return f"'data.{counts[0]}' is {str(state['data'][counts[0]])[:40]}, not a count"
    threads = state.get("threads")
    if threads is not None and (not _is_int(threads) or threads < 1):
        return f"'threads' is {str(threads)[:40]}, not a thread count"
    return None


def _is_rng_state(entry: Any) -> bool:
    """One rank's :func:`rng_state`, by the types :func:`set_rng_state` needs."""
    return (
        isinstance(entry, dict)
        and torch.is_tensor(entry.get("torch")) and entry["torch"].dtype == torch.uint8
        and isinstance(entry.get("cuda"), list)
        and isinstance(entry.get("numpy"), (list, tuple)) and len(entry["numpy"]) == 5
        and torch.is_tensor(entry["numpy"][1])
        and isinstance(entry.get("python"), (list, tuple)) and len(entry["python"]) == 3
    )


# What a run leaves in its folder; a new run refuses a folder holding any of them (it would overwrite them).
RUN_OUTPUTS = (CHECKPOINT_NAME, "metrics.jsonl", "recipe.yaml", "model")
_FOLDERS = frozenset({"model"})


def check_run_outputs(out_dir: Path) -> list[str]:
    """The :data:`RUN_OUTPUTS` present in ``out_dir``; a link or a non-regular entry among them raises
    :class:`RunFolderError` naming it (see :func:`~ijepa_hub.engine.files.check_entry`)."""
    return [n for n in RUN_OUTPUTS if check_entry(out_dir / n, folder=n in _FOLDERS)]


def run_folder(out_dir: str | os.PathLike | None, resume: str | None, default: str | os.PathLike) -> Path:
    """The folder a run writes to: ``out_dir`` (``default`` when None), or, for ``resume=PATH``, that run's folder.

    ``--resume PATH`` continues the run whose folder is ``PATH`` (or holds ``PATH`` as its ``checkpoint.pt``):
    its checkpoints and metrics go on in that folder, never into another run's. An ``out_dir`` naming another
    folder, or a checkpoint file under another name, is refused with :class:`RunFolderError`.
    """
    if resume is None or resume == "auto":
        return Path(out_dir if out_dir is not None else default)
    path = Path(resume)
    folder = path if path.is_dir() else path.parent
    if not path.is_dir() and path.name != CHECKPOINT_NAME:
        raise RunFolderError(
            f"--resume {resume}: a run is resumed from its folder (or the {CHECKPOINT_NAME} in it), and continues "
            f"there. Fix: copy this file to <new folder>/{CHECKPOINT_NAME} and pass --resume <new folder>."
        )
    if out_dir is not None and Path(out_dir).resolve() != folder.resolve():
        raise RunFolderError(
            f"--resume {resume} continues the run in {folder}, but --out is {out_dir}: a resumed run writes to its "
            f"own folder only. Fix: drop --out (or pass --out {folder}); to branch off, copy {folder} first."
        )
    return folder


def resolve_resume(resume: str | None, out_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``None`` (fresh run), ``"auto"`` (the run folder's, if any) or a path.

    A fresh run refuses a folder holding a previous run's output (:data:`RUN_OUTPUTS`), so that nothing is
    overwritten silently; ``"auto"`` without a checkpoint starts afresh unless the folder holds a finished
    run's ``model/`` (a run killed before its first checkpoint restarts, as requeued jobs need).
    """
    own, present = out_dir / CHECKPOINT_NAME, check_run_outputs(out_dir)
    if resume is None or (resume == "auto" and CHECKPOINT_NAME not in present):
        found = present if resume is None else [n for n in present if n == "model"]
        if found:
            hint = "pass --resume auto to continue that run, " if own.exists() else ""
            raise RunFolderError(
                f"{out_dir} holds a previous run's output ({', '.join(found)}) that a new run would overwrite. Fix: "
                f"{hint}choose another --out, or delete those files to deliberately start again."
            )
        return None
    if resume == "auto":
        return own
    path = Path(resume)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"--resume {resume}: no checkpoint at {path}")
    return path


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def check_resumable(
    state: dict[str, Any], recipe: dict[str, Any], *, source: str, defaults: dict[str, Any] | None = None
) -> None:
    """Raise :class:`CheckpointError` naming every recipe key that differs from the checkpoint's.

    Keys that only change how the run executes (workers, logging, ``max_steps``...) may differ. A key
    the checkpoint lacks (written before the key existed) counts as its default: ``defaults``, the recipe
    schema's defaults (default: the trainer's :class:`~ijepa_hub.recipe.Recipe`; ``ijepa-finetune`` passes its own).
    """
    defaults = Recipe().to_dict() if defaults is None else defaults
    saved, current = _flatten(defaults) | _flatten(state["recipe"]), _flatten(recipe)
    diffs = sorted(
        k for k in saved.keys() | current.keys() if k not in _RUNTIME_KEYS and saved.get(k) != current.get(k)
    )
    if diffs:
        lines = [f"  {k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in diffs]
        raise CheckpointError(
            f"{source} was written by a different recipe; resuming would not continue the same run:\n"
            + "\n".join(lines)
            + "\n  Fix: use the checkpoint's recipe (saved in it and in the run folder's recipe.yaml), "
            "or start a new run with another --out."
        )


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch CPU and CUDA, numpy, random) as checkpoint-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
