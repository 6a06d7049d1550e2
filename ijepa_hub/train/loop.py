"""The training loop: ``train(recipe)`` runs a recipe from one CPU to many GPUs.

Follow an image: dataset -> ``TrainingSamples`` (seeded crop) -> ``MaskedCollate`` (masks, in the
workers) -> ``train_step`` (bf16 autocast on CUDA, gradient accumulation, optional clipping, AdamW)
-> ``ema_update`` -> checkpoint -> export.

Faults: unreadable images are skipped and counted (the run stops past ``data.max_broken_fraction``,
after a checkpoint); a NaN or infinite loss, or non-finite weights at a checkpoint, stop the run without
writing over the last good checkpoint; SIGTERM / SIGUSR1 checkpoint and return.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import signal
import threading
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader

from ..data import BatchPlan, MaskedCollate, MicroBatch, MicroBatchSampler, TrainingSamples, build_dataset
from ..data.pipeline import load_rgb
from ..data.transforms import min_crop_fraction, training_transform
from ..errors import CheckpointError, ImageReadError, TooManyBrokenImagesError
from ..features import preprocess
from ..masks import MaskCollator
from ..models import IJepa
from ..optim import build_optimizer, set_hyperparams
from ..recipe import Recipe
from ..schedules import Schedules
from ..state_dict import load_strict, nonfinite_keys
from .checkpoint import (
    CHECKPOINT_NAME, check_resumable, load_checkpoint, remove_partial_checkpoints, resolve_resume, rng_state,
    save_checkpoint, set_rng_state,
)
from .distributed import DistEnv, all_reduce_mean, any_rank, ema_update, init_distributed, no_grad_sync, wrap_model
from .export import export_model, push_model
from .faults import BrokenImageCounter, diverged
from .monitor import CollapseMonitor, MetricsWriter, progress_bar

__all__ = ["train", "train_step", "TrainResult"]

logger = logging.getLogger("ijepa_hub.train")


@dataclass
class TrainResult:
    """What a call to :func:`train` did."""

    out_dir: Path
    start_step: int
    step: int  # optimiser steps completed
    total_steps: int  # length of the schedules
    losses: list[float] = field(default_factory=list)  # one per step run in this call (mean over ranks)
    monitor: list[dict[str, Any]] = field(default_factory=list)
    preempted: bool = False
    checkpoint: Path | None = None
    export_dir: Path | None = None
    hub_url: str | None = None


def train_step(
    module: nn.Module,
    micro_batches: Sequence[MicroBatch],
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    autocast: Callable[[], ContextManager] = nullcontext,
    clip_grad: float | None = None,
    no_sync: Callable[[], ContextManager] | None = None,
) -> torch.Tensor:
    """One optimiser step over ``k`` micro-batches (gradient accumulation); returns the mean loss.

    Each micro-batch's loss is scaled by ``1/k`` so the gradient equals that of the whole batch (the
    loss is a mean and every micro-batch has the same size and mask lengths). ``no_sync`` (DDP/FSDP)
    skips the gradient all-reduce on all but the last micro-batch.
    """
    optimizer.zero_grad(set_to_none=True)
    k = len(micro_batches)
    total = torch.zeros((), device=device)
    for i, mb in enumerate(micro_batches):
        images = mb.images.to(device, non_blocking=True)
        context = [m.to(device, non_blocking=True) for m in mb.context_masks]
        targets = [m.to(device, non_blocking=True) for m in mb.target_masks]
        with no_sync() if (no_sync is not None and i < k - 1) else nullcontext():
            with autocast():
                loss = module(images, context, targets)
            (loss / k).backward()
        total += loss.detach().float()
    if clip_grad is not None:
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], clip_grad)
    optimizer.step()
    return total / k


class _StopSignal:
    """SIGTERM / SIGUSR1 (preemption) set a flag; the loop checkpoints after the current step and exits."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def effective_precision(recipe: Recipe, device: torch.device) -> str:
    """``bf16`` or ``fp32``: ``train.precision``, with ``auto`` meaning bf16 on CUDA and fp32 on CPU."""
    precision = recipe.train.precision
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def _autocast_factory(recipe: Recipe, device: torch.device) -> Callable[[], ContextManager]:
    from ..precision import autocast_context  # the one autocast policy, shared with feature extraction

    precision = effective_precision(recipe, device)
    return lambda: autocast_context(device, precision)


def _model_state(core: IJepa, optimizer: torch.optim.Optimizer, fsdp: bool) -> tuple[dict, dict]:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(core, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return core.state_dict(), optimizer.state_dict()


def _load_model_state(core: IJepa, optimizer: torch.optim.Optimizer, state: dict, fsdp: bool, source: str) -> None:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(
            core, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
            options=StateDictOptions(full_state_dict=True),
        )
        return
    # without FSDP the model weights were loaded before wrapping (DDP then broadcasts rank 0's)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{source}: the optimiser state does not match the model ({err})") from err


def _gather(obj: Any, env: DistEnv) -> list[Any]:
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def _monitor_images(dataset, recipe: Recipe, img_size: int, min_fraction: float) -> torch.Tensor:
    """The collapse monitor's fixed batch: the first readable images, preprocessed as for feature extraction."""
    n, images = min(recipe.train.monitor_batch, len(dataset)), []
    for i in range(len(dataset)):
        if len(images) == n:
            break
        try:
            images.append(preprocess(load_rgb(dataset[i][0], img_size, min_fraction), img_size))
        except ImageReadError as err:
            logger.warning("collapse monitor: skipping unreadable image: %s", err)
    if not images:
        raise TooManyBrokenImagesError(f"no image of {recipe.data.path} can be decoded; check --data (data.path)")
    return torch.stack(images)


def _build_loader(
    recipe: Recipe, dataset, plan: BatchPlan, env: DistEnv, start_step: int, end_step: int, min_fraction: float
) -> DataLoader:
    """This process's micro-batches for steps ``[start_step, end_step)``, masks drawn in the workers."""
    config, cfg = recipe.model_config(), recipe.train
    samples = TrainingSamples(
        dataset,
        training_transform(config.img_size, crop_scale=recipe.data.crop_scale, crop_ratio=recipe.data.crop_ratio),
        img_size=config.img_size, min_fraction=min_fraction,
    )
    sampler = MicroBatchSampler(len(dataset), plan, rank=env.rank, seed=cfg.seed, start_step=start_step, end_step=end_step)
    collate = MaskedCollate(
        MaskCollator(recipe.mask, img_size=config.img_size, patch_size=config.patch_size, seed=cfg.seed), seed=cfg.seed
    )
    return DataLoader(
        samples, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.num_workers,
        pin_memory=env.device.type == "cuda", prefetch_factor=4 if cfg.num_workers > 0 else None,
    )


def _export(core, optimizer, recipe, env, out_dir, result, monitor, images_per_step, push_to_hub) -> None:
    """Write the Hub folder (rank 0) and push it if asked; with FSDP every rank helps gather the weights."""
    final = core
    if recipe.train.fsdp:
        full_state, _ = _model_state(core, optimizer, True)
        if env.is_main:
            final = IJepa(core.config, loss=recipe.optim.loss)
            final.load_state_dict(full_state)
    if not env.is_main:
        return
    metrics = {"steps": result.step, "images_seen": result.step * images_per_step}
    if result.losses:
        metrics["final_loss"] = result.losses[-1]
    if monitor.history:
        metrics.update({k: monitor.history[-1][k] for k in ("rankme", "feature_std")})
    result.export_dir = export_model(final, out_dir / "model", recipe=recipe, metrics=metrics)
    logger.info("exported the trained model to %s", result.export_dir)
    if push_to_hub:
        result.hub_url = push_model(final, push_to_hub, recipe=recipe, metrics=metrics)
        logger.info("pushed to %s", result.hub_url)


def train(
    recipe: Recipe,
    *,
    out_dir: str | Path = "runs/default",
    resume: str | None = None,
    push_to_hub: str | None = None,
    progress: bool = True,
    export: bool = True,
) -> TrainResult:
    """Train ``recipe``; write checkpoints, ``metrics.jsonl`` and the exported model under ``out_dir``.

    ``resume``: ``None`` for a new run (refused if ``out_dir`` has a checkpoint), ``"auto"`` to continue
    the run in ``out_dir`` if it has a checkpoint, or a checkpoint path. Under ``torchrun`` every rank
    calls this; the global batch, sample order, masks and schedules do not depend on the world size.
    """
    cfg, out_dir = recipe.train, Path(out_dir)
    env = init_distributed(cfg.device)
    created_group = env.distributed
    try:
        return _train(recipe, cfg, out_dir, env, resume, push_to_hub, progress, export)
    finally:
        if created_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(recipe, cfg, out_dir, env, resume, push_to_hub, progress, export) -> TrainResult:
    broken = BrokenImageCounter(recipe.data.max_broken_fraction)
    source = resolve_resume(resume, out_dir)
    state = None
    if source is not None:
        state = load_checkpoint(source)
        check_resumable(state, recipe.to_dict(), source=str(source))

    config = recipe.model_config()
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    core = IJepa(config, loss=recipe.optim.loss, drop_path_rate=recipe.model.drop_path_rate)
    if cfg.grad_checkpointing:
        core.set_grad_checkpointing(True)

    dataset = build_dataset(recipe.data, seed=cfg.seed)
    plan = BatchPlan(recipe.optim.batch_size, recipe.data.batch_size_per_device, env.world_size)
    steps_per_epoch = len(dataset) // plan.global_batch
    schedules = Schedules.from_recipe(recipe.optim, max(1, steps_per_epoch))
    end_step = schedules.total_steps if cfg.max_steps is None else min(cfg.max_steps, schedules.total_steps)
    start_step = 0
    if state is not None:
        start_step = int(state["step"])
        if state["schedules"] != dataclasses.asdict(schedules):
            raise CheckpointError(
                f"{source}: its schedules {state['schedules']} differ from this run's "
                f"{dataclasses.asdict(schedules)} (the dataset size changed?); resuming would not continue the run"
            )
        if state["data"].get("num_samples") != len(dataset):
            raise CheckpointError(
                f"{source}: written for a dataset of {state['data'].get('num_samples')} images, this one has "
                f"{len(dataset)}; point --data at the run's data"
            )

    if state is not None and not cfg.fsdp:
        load_strict(core, state["model"], source=str(source), what="training")
    core.to(env.device)
    module = wrap_model(core, env, fsdp=cfg.fsdp)
    optimizer = build_optimizer(core, recipe.optim)
    if state is not None:
        _load_model_state(core, optimizer, state, cfg.fsdp, str(source))
        ranks = state["rng"]
        if len(ranks) == env.world_size:
            set_rng_state(ranks[env.rank])
        else:
            logger.warning("world size changed (%d -> %d): RNG streams re-seeded", len(ranks), env.world_size)
            torch.manual_seed(cfg.seed + 1 + env.rank + start_step)
    else:
        torch.manual_seed(cfg.seed + 1 + env.rank)  # drop path differs per rank
    forward = torch.compile(module, dynamic=True) if cfg.compile else module
    autocast = _autocast_factory(recipe, env.device)
    no_sync = (lambda: no_grad_sync(module, cfg.fsdp)) if env.distributed else None

    min_fraction = min_crop_fraction(recipe.data.crop_scale, recipe.data.crop_ratio)
    loader = _build_loader(recipe, dataset, plan, env, start_step, end_step, min_fraction)
    monitor = CollapseMonitor(_monitor_images(dataset, recipe, config.img_size, min_fraction))
    if state is not None:
        monitor.load_state_dict(state["monitor"])

    writer = None
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for partial in remove_partial_checkpoints(out_dir):
            logger.warning("removed %s, left by a checkpoint write that was interrupted", partial)
        (out_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        writer = MetricsWriter(out_dir, tensorboard=cfg.tensorboard, resume_step=start_step if state else None)
        logger.info(
            "%s: %s, %d images, global batch %d = %d process(es) x %d micro-batch(es) x %d, steps %d -> %d of %d%s",
            recipe.name, config.name, len(dataset), plan.global_batch, env.world_size, plan.accumulation,
            plan.micro_batch, start_step, end_step, schedules.total_steps,
            f" (resumed from {source})" if state else "",
        )

    result = TrainResult(out_dir, start_step, start_step, schedules.total_steps)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    last_good = source  # the newest checkpoint known to hold finite weights
    if state is not None:
        broken.load_state_dict(state["data"])

    def measure(step: int) -> None:
        record = monitor.measure(core.target_encoder, step, device=env.device, autocast=autocast)
        result.monitor.append(record)
        if writer is not None:
            writer.write({"kind": "monitor", **record})

    def checkpoint(step: int) -> None:
        nonlocal last_good
        model_state, optim_state = _model_state(core, optimizer, cfg.fsdp)
        if any_rank(env.is_main and bool(nonfinite_keys(model_state)), env):
            raise diverged(step, "the weights hold NaN or infinite values", last_good, last_saved)
        rngs = _gather(rng_state(), env)
        if env.is_main:
            save_checkpoint(checkpoint_path, {
                "step": step,
                "recipe": recipe.to_dict(),
                "model": model_state,
                "optimizer": optim_state,
                "scaler": None,  # bf16 autocast needs no loss scaling
                "schedules": dataclasses.asdict(schedules),
                "rng": rngs,
                "data": {"step": step, "epoch": step // max(1, steps_per_epoch), "images_seen": step * plan.global_batch,
                         "num_samples": len(dataset), "micro_batches_per_step": plan.micro_batches_per_step,
                         **broken.state_dict()},
                "monitor": monitor.state_dict(),
                "world_size": env.world_size,
                "torch_version": str(torch.__version__),
            })
        if env.distributed:
            dist.barrier()
        result.checkpoint = last_good = checkpoint_path

    if state is None and cfg.monitor_every > 0:
        measure(0)
    bar = progress_bar(schedules.total_steps if cfg.max_steps is None else end_step, start_step, enabled=progress and env.is_main)
    step, last_saved = start_step, start_step if state is not None else -1
    window: list[float] = []
    tick, window_images = time.perf_counter(), 0
    core.train()
    writer_closing = closing(writer) if writer is not None else nullcontext()
    with _StopSignal() as stop, closing(bar), writer_closing:
        batches = iter(loader)
        while step < end_step:
            micro = [next(batches) for _ in range(plan.accumulation)]
            lr, wd, momentum = schedules.lr(step), schedules.weight_decay(step), schedules.momentum(step)
            set_hyperparams(optimizer, lr, wd)
            loss = train_step(
                forward, micro, optimizer, device=env.device, autocast=autocast,
                clip_grad=recipe.optim.clip_grad, no_sync=no_sync,
            )
            ema_update(core, momentum)
            step += 1
            skipped = sum(mb.broken for mb in micro)  # this process's; summed over processes below
            stats = all_reduce_mean(torch.stack([loss.float(), loss.new_tensor(float(skipped))]), env)
            loss_value, skipped = float(stats[0]), round(float(stats[1]) * env.world_size)
            if not math.isfinite(loss_value):
                raise diverged(step, f"the loss is {loss_value}", last_good, last_saved)
            broken.add(skipped, plan.global_batch, [name for mb in micro for name in mb.broken_files])
            result.losses.append(loss_value)
            window.append(loss_value)
            window_images += plan.global_batch
            if env.is_main and (step % cfg.log_every == 0 or step == end_step or skipped):
                now = time.perf_counter()
                record = {
                    "step": step, "epoch": step / max(1, steps_per_epoch), "loss": sum(window) / len(window),
                    "lr": lr, "weight_decay": wd, "momentum": momentum,
                    "images_per_s": window_images / max(now - tick, 1e-9),
                    "context_tokens": float(micro[0].context_masks[0].shape[1]),
                    "target_tokens": float(micro[0].target_masks[0].shape[1]),
                    "broken_images": skipped,
                    "broken_images_total": broken.total,
                }
                writer.write(record)
                bar.set_postfix(
                    loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}", mom=f"{momentum:.4f}",
                    img_s=f"{record['images_per_s']:.0f}", ctx=int(record["context_tokens"]),
                    tgt=int(record["target_tokens"]), refresh=False,
                )
                if skipped:
                    logger.warning("step %d: %d unreadable image(s) skipped (named above)", step, skipped)
                window, tick, window_images = [], now, 0
            bar.update(1)
            if cfg.monitor_every > 0 and (step % cfg.monitor_every == 0 or step == end_step):
                measure(step)
            if step % cfg.checkpoint_every == 0 or step == end_step:
                checkpoint(step)
                last_saved = step
            if broken.exceeded:
                if last_saved != step:
                    checkpoint(step)
                    last_saved = step
                raise broken.error(step, checkpoint_path)
            if any_rank(stop.received is not None, env):
                if last_saved != step:
                    checkpoint(step)
                    last_saved = step
                result.preempted = True
                logger.warning("step %d: stop signal received; checkpoint written, exiting", step)
                break
    result.step = step
    if result.preempted:
        return result

    if export:
        _export(core, optimizer, recipe, env, out_dir, result, monitor, plan.global_batch, push_to_hub)
    return result
