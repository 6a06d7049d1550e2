"""Process groups and model wrapping: torchrun DDP (NCCL on GPU, gloo on CPU) or FSDP2 ``fully_shard``."""
from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = [
    "DistEnv", "init_distributed", "wrap_model", "no_grad_sync", "all_reduce_mean", "any_rank", "gather_objects",
    "full_state", "load_full_state",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group torchrun describes (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), if any.

    ``device``: ``auto`` picks CUDA when available. The backend is NCCL on CUDA, gloo on CPU.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("train.device=cuda: CUDA is not available on this machine. Fix: pass --train.device cpu "
                         "(or auto).")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return DistEnv(rank, world_size, local_rank, dev)


def wrap_model(
    model: nn.Module, env: DistEnv, *, shard: Callable[[nn.Module], None] | None = None
) -> nn.Module:
    """The module the loop computes the loss with: ``model`` itself on one process, DDP over it on several,
    or, with ``shard`` (a task's FSDP2 plan, e.g. :func:`ijepa_hub.train.parallel.shard_ijepa`), ``model``
    sharded in place."""
    if shard is not None:
        if not env.distributed:
            raise ValueError("train.fsdp needs several processes (torchrun --nproc_per_node N)")
        shard(model)
        return model
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    return model


def no_grad_sync(module: nn.Module, fsdp: bool) -> AbstractContextManager:
    """Skip the gradient all-reduce for an accumulation micro-batch (all but the last)."""
    if fsdp:
        return _FsdpNoSync(module)
    if hasattr(module, "no_sync"):
        return module.no_sync()
    return nullcontext()


class _FsdpNoSync:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.module.set_requires_gradient_sync(False)

    def __exit__(self, *exc) -> None:
        self.module.set_requires_gradient_sync(True)


def all_reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean of a tensor over ranks (identity on one process)."""
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= env.world_size
    return value


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True when ``flag`` is true on any rank (used to stop every rank on a preemption signal)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` on one process)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool) -> tuple[dict, dict]:
    """Model and optimiser state dicts of the whole model; with FSDP gathered (on CPU) from every rank's shards."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return model.state_dict(), optimizer.state_dict()


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict) -> None:
    """The inverse of :func:`full_state` for an FSDP-sharded model: every rank keeps its own shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(
        model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state,
        options=StateDictOptions(full_state_dict=True),
    )
