"""The training loop: ``train(recipe)`` runs a recipe from one CPU to many GPUs.

Follow an image: dataset -> ``TrainingSamples`` (seeded crop) -> ``MaskedCollate`` (masks, in the
workers) -> ``train_iteration``: the step's lr and weight decay, ``train_step`` (bf16 autocast on CUDA,
gradient accumulation, optional clipping, AdamW), ``ema_update`` -> ``Checkpointer`` -> export.
Around the loop, the engine (:mod:`ijepa_hub.engine`): ``Resume`` (continuing a run), ``Run`` (its plan and
steps), ``StepEnd`` (divergence, unreadable images, checkpoints, stop signals); and ``StepLogger`` (metrics,
progress bar).

Faults: unreadable images are skipped and counted (the run stops past ``data.max_broken_fraction``,
after a checkpoint); a NaN or infinite loss, or non-finite weights at a checkpoint, stop the run without
writing over the last good checkpoint; SIGTERM / SIGUSR1 / SIGINT checkpoint and return (workers ignore them).
"""
from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..data import (
    HFImageStream,
    MaskedCollate,
    MicroBatch,
    MicroBatchSampler,
    StreamedMicroBatches,
    TrainingSamples,
    build_dataset,
)
from ..data.identity import data_fingerprint, dataset_listing
from ..data.transforms import min_crop_fraction, training_transform
from ..engine.checkpoint import run_folder
from ..engine.checkpointer import Checkpointer
from ..engine.distributed import full_state, no_grad_sync, wrap_model
from ..engine.faults import BrokenImageCounter, StopSignal, ignore_stop_signals
from ..engine.metrics import StepLogger, progress_bar
from ..engine.optim import set_hyperparams
from ..engine.process import RunResult, open_run_folder, training_process
from ..engine.resume import Resume
from ..engine.run import Run
from ..engine.schedules import Hyperparams, Schedules
from ..engine.step import StepEnd, accumulated_step, autocast_factory
from ..errors import MissingExtraError, RecipeError
from ..hub.save import check_push_target, push_to_hub, save_pretrained
from ..masks import MaskCollator
from ..models import IJepa
from ..models.distill import StudentJepa
from ..precision import resolve_precision
from ..recipe import Recipe
from .monitor import CollapseMonitor, monitor_images
from .online_probe import OnlineProbe, run_probe
from .optim import build_optimizer
from .parallel import ema_update, shard_ijepa
from .sources import build_model, run_origins, run_provenance

__all__ = ["train", "train_step", "train_iteration", "TrainResult"]

logger = logging.getLogger("ijepa_hub.train")


@dataclass
class TrainResult(RunResult):
    """What a call to :func:`train` did: the engine's :class:`~ijepa_hub.engine.process.RunResult` and the
    collapse monitor's and online probe's records."""

    objective: str = ""  # the training objective in words (:func:`objective`)
    monitor: list[dict[str, Any]] = field(default_factory=list)
    online_probe: list[dict[str, Any]] = field(default_factory=list)  # k-NN top-1 records (train.eval_every)


def train_step(
    module: nn.Module,
    micro_batches: Sequence[MicroBatch],
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    clip_grad: float | None = None,
    no_sync: Callable[[], AbstractContextManager] | None = None,
) -> torch.Tensor:
    """One optimiser step of the I-JEPA loss over ``k`` micro-batches (see :func:`accumulated_step`).

    The loss is a mean and every micro-batch has the same size and mask lengths, so the accumulated
    gradient is that of the whole batch.
    """
    def loss_of(m: nn.Module, mb: MicroBatch) -> torch.Tensor:
        images = mb.images.to(device, non_blocking=True)
        context = [x.to(device, non_blocking=True) for x in mb.context_masks]
        targets = [x.to(device, non_blocking=True) for x in mb.target_masks]
        return m(images, context, targets)

    return accumulated_step(module, micro_batches, optimizer, loss_of, device=device, autocast=autocast,
                            clip_grad=clip_grad, no_sync=no_sync)


def train_iteration(
    module: nn.Module,
    core: IJepa,
    micro_batches: Sequence[MicroBatch],
    optimizer: torch.optim.Optimizer,
    schedules: Schedules,
    step: int,
    *,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    clip_grad: float | None = None,
    no_sync: Callable[[], AbstractContextManager] | None = None,
) -> tuple[torch.Tensor, Hyperparams]:
    """Iteration ``step`` (from 0) as released: lr and weight decay of ``step + 1``, :func:`train_step`,
    then the EMA of ``core``'s target encoder with the momentum of ``step``.

    ``module`` is what the loss is computed with (``core`` itself, or its DDP / compiled wrapper).
    Returns the mean loss and the values used.
    """
    values = schedules.at_iteration(step)
    set_hyperparams(optimizer, values)
    loss = train_step(
        module, micro_batches, optimizer, device=device, autocast=autocast, clip_grad=clip_grad, no_sync=no_sync
    )
    ema_update(core, values.momentum)
    return loss, values


def _build_loader(run: Run, dataset, min_fraction: float) -> DataLoader:
    """This process's micro-batches for the run's steps, masks drawn in the workers."""
    recipe, config, cfg, env = run.recipe, run.recipe.model_config(), run.recipe.train, run.env
    samples = functools.partial(
        TrainingSamples,
        transform=training_transform(config.img_size, crop_scale=recipe.data.crop_scale, crop_ratio=recipe.data.crop_ratio),
        img_size=config.img_size, min_fraction=min_fraction,
    )
    sampler = MicroBatchSampler(
        len(dataset), run.plan, rank=env.rank, seed=cfg.seed, start_step=run.start_step, end_step=run.end_step
    )
    collate = MaskedCollate(
        MaskCollator(recipe.mask, img_size=config.img_size, patch_size=config.patch_size, seed=cfg.seed), seed=cfg.seed
    )
    options = dict(num_workers=cfg.num_workers, pin_memory=env.device.type == "cuda",
                   prefetch_factor=4 if cfg.num_workers > 0 else None,
                   worker_init_fn=ignore_stop_signals)  # a group-wide SIGTERM / Ctrl-C is the main process's
    if isinstance(dataset, HFImageStream):  # hfids/: read in stream order, the sampler gives steps and keys
        return DataLoader(StreamedMicroBatches(dataset, sampler, samples, collate), batch_size=None, **options)
    return DataLoader(samples(dataset), batch_sampler=sampler, collate_fn=collate, **options)


def objective(recipe: Recipe) -> str:
    """What a run optimises, in words: the loss section's terms, and the teacher when it distils."""
    text = recipe.loss.describe()
    if recipe.teacher.source:
        text += f"; the targets are the frozen teacher's features ({recipe.teacher.source}), not an EMA encoder's"
    return text


def _open_log(out_dir: Path, run: Run, model_name: str, resumed: Resume | None, progress: bool) -> StepLogger:
    """The run folder prepared (rank 0) and what the run is logged; every rank gets the progress bar (shown on
    rank 0)."""
    env, cfg = run.env, run.recipe.train
    writer = open_run_folder(out_dir, run.recipe, env, resume_step=resumed.step if resumed else None,
                             tensorboard=cfg.tensorboard)
    if env.is_main:
        logger.info("%s", run.describe(model_name, resumed.source if resumed else None))
        logger.info("objective: %s", objective(run.recipe))
    return StepLogger(
        writer, progress_bar(run.end_step, run.start_step, enabled=progress and env.is_main), log_every=cfg.log_every,
        end_step=run.end_step, steps_per_epoch=run.steps_per_epoch, images_per_step=run.plan.global_batch,
    )


def _precision_name(precision: str, device: torch.device) -> str:
    """What ``train.precision`` runs as on ``device``: ``auto`` is bf16 autocast on CUDA and fp32 on CPU, even
    with native bf16 (on this project's AVX512-BF16 CPU the default run's step was only 1.23x faster:
    benchmarks/results/cpu_train_precision.json, docs/performance.md)."""
    dtype = resolve_precision(precision, device)
    return "fp32" if dtype == torch.float32 else f"{str(dtype).removeprefix('torch.')} autocast"


def _described(core: IJepa, recipe: Recipe) -> str:
    """The model in the start-of-run line, with where its weights start."""
    if recipe.teacher.source:
        return f"{core.config.describe()}, a student of the frozen teacher {recipe.teacher.source}"
    if recipe.init.source:
        return f"{core.config.describe()}, continued from {recipe.init.source}"
    return core.config.describe()


def _step_fields(used: Hyperparams, micro: MicroBatch) -> dict[str, dict[str, Any]]:
    """What a pretraining step's metrics record and progress bar show beside the loss: the values it used and
    the lengths of its masks."""
    ctx, tgt = micro.context_masks[0].shape[1], micro.target_masks[0].shape[1]
    return {
        "fields": {"lr": used.lr, "weight_decay": used.weight_decay, "momentum": used.momentum,
                   "context_tokens": float(ctx), "target_tokens": float(tgt)},
        "postfix": {"lr": f"{used.lr:.2e}", "mom": f"{used.momentum:.4f}", "ctx": ctx, "tgt": tgt},
    }


def _export(core: IJepa, optimizer, run: Run, out_dir: Path, result: TrainResult, monitor: CollapseMonitor,
            push_to: str | None) -> None:
    """Write the Hub folder (rank 0) and push it if asked; with FSDP every rank helps gather the weights."""
    recipe, env = run.recipe, run.env
    final = core
    if recipe.train.fsdp:
        full, _ = full_state(core, optimizer, True)
        if env.is_main:
            final = IJepa(core.config, loss=recipe.optim.loss)
            final.load_state_dict(full)
    if not env.is_main:
        return
    metrics = {"steps": result.step, "images_seen": result.step * run.plan.global_batch}
    if result.losses:
        metrics["final_loss"] = result.losses[-1]
    if monitor.history:
        metrics.update({k: monitor.history[-1][k] for k in ("rankme", "feature_std")})
    origins = run_origins(recipe)
    if isinstance(final, StudentJepa):  # the student encoder alone: its predictor speaks the teacher's width
        parts = dict(encoder="target", with_context_encoder=False, with_predictor=False)
    else:  # the target encoder as the main weights (what the paper evaluates), context encoder and predictor beside
        parts = dict(encoder="target")
    result.export_dir = Path(save_pretrained(final, out_dir / "model", recipe=recipe, metrics=metrics,
                                             origins=origins, provenance=run_provenance(recipe), **parts))
    logger.info("exported the trained model to %s", result.export_dir)
    if push_to:
        result.hub_url = push_to_hub(result.export_dir, push_to)
        logger.info("pushed to %s", result.hub_url)


def train(
    recipe: Recipe,
    *,
    out_dir: str | Path | None = None,
    resume: str | None = None,
    push_to_hub: str | None = None,
    progress: bool = True,
    export: bool = True,
) -> TrainResult:
    """Train ``recipe``; write checkpoints, ``metrics.jsonl`` and the exported model under ``out_dir``
    (default ``runs/<recipe name>``).

    ``resume``: ``None`` for a new run (refused if ``out_dir`` holds a previous run's output), ``"auto"`` to
    continue the run in ``out_dir`` if it has a checkpoint, or a run folder (or its ``checkpoint.pt``) to
    continue that run in that folder. The run holds an exclusive lock on its folder
    (:class:`~ijepa_hub.engine.lock.RunLock`). Under ``torchrun`` every rank calls this; the global batch,
    sample order, masks and schedules do not depend on the world size.
    """
    if push_to_hub:
        check_push_target(push_to_hub)  # before training: a push that cannot succeed is refused now
    cfg = recipe.train
    recipe.validate()  # every key in range, before the run folder is touched
    out_dir = run_folder(out_dir, resume, default=Path("runs") / recipe.name)
    with training_process(cfg, out_dir) as env:
        return _train(recipe, cfg, out_dir, env, resume, push_to_hub, progress, export)


def check_settings(recipe: Recipe) -> None:
    """Refuse, before anything is built, run settings out of range (:class:`~ijepa_hub.errors.RecipeError`)
    and mask settings that cannot give masks on the model's patch grid (:class:`~ijepa_hub.errors.MaskError`)."""
    recipe.validate()  # every key in range, the model within the loading limits
    if recipe.teacher.source and recipe.train.fsdp:
        raise RecipeError("train.fsdp shards the three I-JEPA networks; distillation (teacher.source) runs with DDP. "
                          "Fix: drop --train.fsdp")
    if recipe.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise MissingExtraError("train.tensorboard=true needs the tensorboard package: pip install tensorboard")
    config = recipe.model_config()
    MaskCollator(recipe.mask, img_size=config.img_size, patch_size=config.patch_size, seed=recipe.train.seed).validate()


def _train(recipe, cfg, out_dir, env, resume, push_to_hub, progress, export) -> TrainResult:
    resumed = Resume.find(resume, out_dir, recipe, env)
    check_settings(recipe)  # before building anything: a recipe that cannot train is refused here
    dataset = build_dataset(recipe.data, seed=cfg.seed)  # missing data is refused before the model is built
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    core = build_model(recipe, resumed=resumed is not None,  # random init, init.source or a teacher's student
                       teacher_dtype=torch.bfloat16 if env.device.type == "cuda" else None)
    config = core.config
    if cfg.grad_checkpointing:
        core.set_grad_checkpointing(True)

    run = Run.create(recipe, env, len(dataset), start_step=resumed.step if resumed else 0,
                     schedules_from=Schedules.from_recipe,
                     data_fingerprint=data_fingerprint(recipe.data.path, dataset_listing(dataset)))
    if resumed:
        resumed.check_run(run)
        if not cfg.fsdp:
            resumed.load_weights(core)
    core.to(env.device)
    module = wrap_model(core, env, shard=shard_ijepa if cfg.fsdp else None)
    optimizer = build_optimizer(core, recipe.optim)
    if resumed:
        resumed.load_optimizer(core, optimizer, cfg.fsdp)
    else:
        torch.manual_seed(cfg.seed + 1 + env.rank)  # drop path differs per rank
    forward = torch.compile(module, dynamic=True) if cfg.compile else module
    autocast = autocast_factory(cfg.precision, env.device)
    if env.is_main:
        logger.info("precision: %s (train.precision %s on %s)", _precision_name(cfg.precision, env.device),
                    cfg.precision, env.device.type)
    no_sync = (lambda: no_grad_sync(module, cfg.fsdp)) if env.distributed else None

    min_fraction = min_crop_fraction(recipe.data.crop_scale, recipe.data.crop_ratio)
    loader = _build_loader(run, dataset, min_fraction)
    monitor = CollapseMonitor(
        monitor_images(dataset, cfg.monitor_batch, config.img_size, min_fraction, source=recipe.data.path)
    )
    broken = BrokenImageCounter(recipe.data.max_broken_fraction)
    if resumed:
        resumed.load_extra("monitor", monitor)
        broken.load_state_dict(resumed.state["data"])
    log = _open_log(out_dir, run, _described(core, recipe), resumed, progress)
    checkpointer = Checkpointer(out_dir, run, core, optimizer, broken=broken, extra={"monitor": monitor},
                                resumed=resumed, fsdp=cfg.fsdp)
    result = TrainResult(out_dir, run.start_step, run.start_step, run.schedules.total_steps, objective=objective(recipe))
    measure = functools.partial(monitor.measure, core.target_encoder, device=env.device, autocast=autocast)
    if resumed is None and cfg.monitor_every > 0:
        result.monitor.append(log.event("monitor", measure(step=0)))
    probe = OnlineProbe.from_recipe(recipe)  # None when train.eval_every is 0
    evaluate = functools.partial(run_probe, probe, core.target_encoder, log=log, monitor=monitor,
                                 device=env.device, autocast=autocast)
    if probe is not None and resumed is None:
        result.online_probe.append(evaluate(step=0))

    core.train()
    step = run.start_step
    with StopSignal("ijepa-train") as stop, closing(log):
        end = StepEnd(run, checkpointer, broken, stop, result)
        batches = iter(loader)
        if resumed:  # the saved streams are the loop's: restore them after the set-up above drew from the RNG
            resumed.restore_rng(env, cfg.seed)  # (the loader's iterator draws a seed; SIGReg draws every step)
        while step < run.end_step:
            micro = [next(batches) for _ in range(run.plan.accumulation)]
            loss, used = train_iteration(
                forward, core, micro, optimizer, run.schedules, step, device=env.device, autocast=autocast,
                clip_grad=recipe.optim.clip_grad, no_sync=no_sync,
            )
            step += 1
            loss_value, skipped = end.record(step, loss, sum(mb.broken for mb in micro),
                                             [name for mb in micro for name in mb.broken_files])
            log.step(step, loss_value, skipped=skipped, broken_total=broken.total, **_step_fields(used, micro[0]))
            if cfg.monitor_every > 0 and (step % cfg.monitor_every == 0 or step == run.end_step):
                result.monitor.append(log.event("monitor", measure(step=step)))
            if probe is not None and (step % cfg.eval_every == 0 or step == run.end_step):
                result.online_probe.append(evaluate(step=step))
            if end.close(step):
                break
    result.checkpoint = checkpointer.written
    if export and not result.preempted:
        _export(core, optimizer, run, out_dir, result, monitor, push_to_hub)
    return result
