"""Continuing a run: find and read its checkpoint, check that it belongs to this run, restore it piece by piece."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..recipe import RunRecipe
from ..state_dict import load_strict
from .checkpoint import check_resumable, load_checkpoint, resolve_resume, set_rng_state
from .distributed import DistEnv, load_full_state
from .run import Run
from .threads import reuse_recorded_threads

__all__ = ["Resume"]

logger = logging.getLogger("ijepa_hub.engine")


class Resume:
    """A checkpoint being continued (``source``, its ``state``); :meth:`find` reads and checks it."""

    def __init__(self, source: Path, state: dict[str, Any]) -> None:
        self.source, self.state = source, state

    @classmethod
    def find(cls, resume: str | None, out_dir: Path, recipe: RunRecipe, env: DistEnv | None = None) -> Resume | None:
        """``None`` for a fresh run; else the checkpoint ``resume`` names (:func:`resolve_resume`), read
        strictly and refused (:class:`CheckpointError`) when written by another recipe. With ``env``, the
        intra-op thread count the checkpoint recorded is set again (a resume continues bit for bit)."""
        source = resolve_resume(resume, out_dir)
        if source is None:
            return None
        state = load_checkpoint(source)
        cls.check_state(state, recipe, source)
        if env is not None:
            reuse_recorded_threads(state.get("threads"), recipe.train.threads, cpu=env.device.type == "cpu",
                                   source=str(source))
        return cls(source, state)

    @classmethod
    def check_state(cls, state: dict[str, Any], recipe: RunRecipe, source: Path) -> None:
        """Refuse a checkpoint written by another recipe; a subclass puts its own, more specific checks first."""
        check_resumable(state, recipe.to_dict(), source=str(source), defaults=type(recipe)().to_dict())

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def check_run(self, run: Run) -> None:
        """Refuse to continue with other schedules or another dataset size: neither would continue the run."""
        if self.step > run.schedules.total_steps:
            raise CheckpointError(
                f"{self.source}: its step {self.step} is beyond this run's {run.schedules.total_steps} steps; the "
                "checkpoint is damaged or belongs to a longer run. Fix: resume from an intact copy of this run's "
                "checkpoint, or start a new run with another --out."
            )
        mine = dataclasses.asdict(run.schedules)
        if self.state["schedules"] != mine:
            raise CheckpointError(
                f"{self.source}: its schedules {self.state['schedules']} differ from this run's {mine} (the dataset "
                "size changed?); resuming would not continue the run"
            )
        saved = self.state["data"].get("num_samples")
        if saved != run.num_samples:
            raise CheckpointError(
                f"{self.source}: written for a dataset of {saved} images, this one has {run.num_samples}; "
                "point --data at the run's data"
            )
        was, now = self.state["data"].get("fingerprint"), run.data_fingerprint
        if was is not None and now is not None and was != now:  # checkpoints before 0.x lack it: not checked
            raise CheckpointError(
                f"{self.source}: written for other data ({self.state['data'].get('source')}, listing {was}) than "
                f"--data {run.recipe.data.path} (listing {now}); resuming on other data would not continue the run. "
                "Fix: point --data at the run's data, or start a new run with another --out."
            )

    def load_weights(self, model: torch.nn.Module) -> None:
        """The three networks, before wrapping (DDP then broadcasts rank 0's); with FSDP see :meth:`load_optimizer`."""
        load_strict(model, self.state["model"], source=str(self.source), what="training")

    def load_optimizer(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool) -> None:
        """The optimiser state; with FSDP the sharded model weights as well."""
        if fsdp:
            load_full_state(model, optimizer, self.state["model"], self.state["optimizer"])
            return
        try:
            optimizer.load_state_dict(self.state["optimizer"])
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"{self.source}: the optimiser state does not match the model ({err})") from err

    def load_extra(self, key: str, part: Any, *, legacy_keys: tuple[str, ...] = ()) -> None:
        """A task's own state saved under ``key`` (or, in checkpoints of earlier versions, one of ``legacy_keys``)."""
        for name in (key, *legacy_keys):
            if name in self.state:
                try:
                    part.load_state_dict(self.state[name])
                except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
                    raise CheckpointError(
                        f"{self.source}: its {name!r} state is damaged ({type(err).__name__}: {str(err)[:120]}); "
                        "it was edited or written by another version. Fix: resume from an intact copy, or start "
                        "a new run with another --out."
                    ) from err
                return
        raise CheckpointError(f"{self.source}: no {key!r} state in this checkpoint; it was not written by this task")

    def restore_rng(self, env: DistEnv, seed: int) -> None:
        """Each rank's RNG streams as saved; re-seeded (with a warning) when the world size changed."""
        ranks = self.state["rng"]
        if len(ranks) == env.world_size:
            try:
                set_rng_state(ranks[env.rank])
            except (RuntimeError, TypeError, ValueError) as err:  # a wrong-sized or wrong-typed generator state
                raise CheckpointError(
                    f"{self.source}: its RNG state of rank {env.rank} cannot be restored ({str(err)[:120]}); the "
                    "checkpoint is damaged. Fix: resume from an intact copy, or start a new run with another --out."
                ) from err
        else:
            logger.warning("world size changed (%d -> %d): RNG streams re-seeded", len(ranks), env.world_size)
            torch.manual_seed(seed + 1 + env.rank + self.step)
