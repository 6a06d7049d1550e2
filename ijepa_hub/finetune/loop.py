"""The fine-tuning loop: ``finetune(recipe)`` from one CPU to many GPUs.

Follow an image: labelled split -> ``TrainingSamples`` (timm's augmentation, seeded per sample) ->
micro-batch -> Mixup / CutMix (seeded per micro-batch) -> classifier (bf16 autocast on CUDA) -> loss
(timm's soft-target / label-smoothing cross-entropy) -> AdamW with layer-wise lr decay -> top-1 on the
validation split each epoch -> the trainer's ``Checkpointer`` -> the classifier as a Hub repo.

The run machinery is the trainer's: ``Resume`` (find, check and restore a checkpoint), ``Checkpointer``
(atomic writes, RNG states of every rank, never a non-finite checkpoint), ``BatchPlan`` /
``MicroBatchSampler`` (a sample order independent of the world size), ``StopSignal``, ``MetricsWriter``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader

from ..data import MicroBatchSampler, TrainingSamples
from ..data.pipeline import _sample_seed
from ..data.transforms import min_crop_fraction
from ..hub.classifier import save_classifier
from ..models.classifier import Classifier
from ..precision import autocast_context
from ..train.checkpoint import remove_partial_checkpoints, run_folder
from ..train.checkpointer import Checkpointer
from ..train.distributed import all_reduce_mean, any_rank, no_grad_sync, wrap_model
from ..train.export import push_model
from ..train.faults import BrokenImageCounter, StopSignal, ignore_stop_signals
from ..train.loop import TrainResult, accumulated_step, training_process
from ..train.monitor import MetricsWriter, progress_bar
from ..train.resume import Resume
from ..train.run import Run
from ..train.schedules import warmup_cosine
from .data import LabelledItems, build_mixup, collate, finetune_splits, seeded_numpy_and_random, top1, train_transform
from .model import build_classifier, check_resumed_pooling, param_count
from .recipe import FinetuneRecipe, FtOptimSection

__all__ = ["finetune", "finetune_step", "FinetuneResult", "FinetuneSchedules", "build_finetune_optimizer"]

logger = logging.getLogger("ijepa_hub.finetune")


@dataclass
class FinetuneResult(TrainResult):
    """What a call to :func:`finetune` did (the trainer's result; ``evals`` instead of the collapse monitor)."""

    evals: list[dict[str, Any]] = field(default_factory=list)  # every validation of the run, resumed ones included

    @property
    def top1(self) -> float | None:
        """The last validation top-1 (percent)."""
        return self.evals[-1]["val_top1"] if self.evals else None


@dataclass(frozen=True)
class FinetuneSchedules:
    """Warm-up + cosine learning rate (constant weight decay, as in MAE / BEiT fine-tuning)."""

    total_steps: int
    warmup_steps: int
    start_lr: float
    peak_lr: float
    final_lr: float
    weight_decay: float

    @classmethod
    def from_recipe(cls, optim: FtOptimSection, steps_per_epoch: int) -> FinetuneSchedules:
        return cls(optim.epochs * steps_per_epoch, int(optim.warmup_epochs * steps_per_epoch), optim.start_lr,
                   optim.lr, optim.final_lr, optim.weight_decay)

    def lr(self, step: int) -> float:
        """The learning rate iteration ``step`` (from 0) trains with: the schedule's value at ``step + 1``,
        as in the trainer (so a warm-up from 0 does not waste the first step)."""
        return warmup_cosine(step + 1, warmup_steps=self.warmup_steps, total_steps=self.total_steps,
                             start=self.start_lr, peak=self.peak_lr, final=self.final_lr)


class FinetuneResume(Resume):
    """The trainer's :class:`~ijepa_hub.train.resume.Resume`; a checkpoint of another pooling (an attentive
    run resumed as linear, or the reverse) is refused first, in one line naming the fix."""

    @classmethod
    def check_state(cls, state: dict[str, Any], recipe: FinetuneRecipe, source: Path) -> None:
        check_resumed_pooling(state, recipe.model.mode, source=str(source))
        super().check_state(state, recipe, source)


class EvalHistory:
    """The validations of the run; saved in checkpoints where the trainer keeps its monitor's history."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))


def build_finetune_optimizer(model: Classifier, optim: FtOptimSection) -> torch.optim.AdamW:
    """AdamW over timm's parameter groups: layer-wise lr decay (``lr_scale`` per group) when
    ``optim.layer_decay < 1``, no weight decay on biases, norms and ``no_weight_decay()`` parameters."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    skip = model.no_weight_decay()
    if optim.layer_decay < 1.0:
        groups = param_groups_layer_decay(model, weight_decay=optim.weight_decay, no_weight_decay_list=skip,
                                          layer_decay=optim.layer_decay)
    else:
        groups = param_groups_weight_decay(model, weight_decay=optim.weight_decay, no_weight_decay_list=skip)
    fused = all(p.device.type in ("cuda", "cpu") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=optim.start_lr, betas=optim.betas, eps=optim.eps, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The step's learning rate, scaled per group by timm's layer-wise ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _criterion(recipe: FinetuneRecipe) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    data, smoothing = recipe.data, recipe.optim.label_smoothing
    if data.mixup > 0 or data.cutmix > 0:
        return SoftTargetCrossEntropy()  # Mixup builds the soft targets, smoothing included
    if smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=smoothing)
    return nn.CrossEntropyLoss()


def finetune_step(
    module: nn.Module,
    micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    *,
    device: torch.device,
    autocast: Callable[[], ContextManager] = nullcontext,
    clip_grad: float | None = None,
    no_sync: Callable[[], ContextManager] | None = None,
) -> torch.Tensor:
    """One optimiser step over ``k`` micro-batches of ``(images, targets)``; returns the mean loss.

    The trainer's :func:`~ijepa_hub.train.loop.accumulated_step` with the classification loss.
    """
    def loss_of(m: nn.Module, mb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, targets = mb
        logits = m(images.to(device, non_blocking=True)).float()  # the loss in fp32 under bf16 autocast
        return criterion(logits, targets.to(device, non_blocking=True))

    return accumulated_step(module, micro_batches, optimizer, loss_of, device=device, autocast=autocast,
                            clip_grad=clip_grad, no_sync=no_sync)


def finetune(
    recipe: FinetuneRecipe,
    *,
    out_dir: str | Path | None = None,
    resume: str | None = None,
    push_to_hub: str | None = None,
    progress: bool = True,
    export: bool = True,
) -> FinetuneResult:
    """Fine-tune ``recipe``; write checkpoints, ``metrics.jsonl`` and the classifier (``<out>/model``) under
    ``out_dir`` (default ``runs/<recipe name>``).

    ``resume``: ``None`` for a new run, ``"auto"`` to continue the run in ``out_dir`` if it has a checkpoint,
    or a run folder (as in :func:`ijepa_hub.train.train`, with the same folder lock). Under ``torchrun``
    every rank calls this.
    """
    out_dir = run_folder(out_dir, resume, default=Path("runs") / recipe.name)
    with training_process(recipe.train, out_dir) as env:
        return _finetune(recipe, out_dir, env, resume, push_to_hub, progress, export)


def _loader(recipe: FinetuneRecipe, run: Run, items: LabelledItems, img_size: int) -> DataLoader:
    data, cfg = recipe.data, recipe.train
    samples = TrainingSamples(items, train_transform(data, img_size), img_size=img_size,
                              min_fraction=min_crop_fraction(tuple(data.crop_scale), (3 / 4, 4 / 3)))
    sampler = MicroBatchSampler(len(items), run.plan, rank=run.env.rank, seed=cfg.seed, start_step=run.start_step,
                                end_step=run.end_step)
    return DataLoader(
        samples, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.num_workers,
        pin_memory=run.env.device.type == "cuda", generator=torch.Generator(),  # leaves the global RNG alone
        worker_init_fn=ignore_stop_signals,  # a group-wide SIGTERM / Ctrl-C is the main process's
    )


def _finetune(recipe, out_dir, env, resume, push_to_hub, progress, export) -> FinetuneResult:
    cfg, data = recipe.train, recipe.data
    resumed = FinetuneResume.find(resume, out_dir, recipe)
    splits = finetune_splits(data, seed=cfg.seed)
    torch.manual_seed(cfg.seed)  # the same head on every rank
    model = build_classifier(recipe.model, splits.classes, crop_pct=splits.crop_pct)
    img_size = model.config.img_size
    items = LabelledItems(splits.train_images, splits.train_labels)
    run = Run.create(recipe, env, len(items), start_step=resumed.step if resumed else 0,
                     schedules_from=FinetuneSchedules.from_recipe)
    if resumed:
        resumed.check_run(run)
        resumed.load_weights(model)
    model.to(env.device)
    module = wrap_model(model, env)
    optimizer = build_finetune_optimizer(model, recipe.optim)
    if resumed:
        resumed.load_optimizer(model, optimizer, False)
        resumed.restore_rng(env, cfg.seed)
    else:
        torch.manual_seed(cfg.seed + 1 + env.rank)  # drop path differs per rank
    autocast = lambda: autocast_context(env.device, cfg.precision)  # noqa: E731  (auto: bf16 on CUDA, fp32 on CPU)
    no_sync = (lambda: no_grad_sync(module, False)) if env.distributed else None
    criterion = _criterion(recipe)
    mixup = build_mixup(data, len(splits.classes), recipe.optim.label_smoothing)
    history, broken = EvalHistory(), BrokenImageCounter(data.max_broken_fraction)
    if resumed:
        history.load_state_dict(resumed.state["monitor"])
        broken.load_state_dict(resumed.state["data"])
    writer = None
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for partial in remove_partial_checkpoints(out_dir):
            logger.warning("removed %s, left by a checkpoint write that was interrupted", partial)
        (out_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        writer = MetricsWriter(out_dir, resume_step=resumed.step if resumed else None)
        trainable, total = param_count(model)
        logger.info("%s; %s classes, %d val images; %d of %d parameters trained (%s mode)",
                    run.describe(model.config.name, resumed.source if resumed else None), len(splits.classes),
                    len(splits.test_images), trainable, total, recipe.model.mode)
    checkpointer = Checkpointer(out_dir, run, model, optimizer, broken=broken, monitor=history, resumed=resumed)
    result = FinetuneResult(out_dir, run.start_step, run.start_step, run.schedules.total_steps, evals=history.history)
    evaluate = lambda: top1(  # noqa: E731
        model, splits, img_size=img_size, batch_size=data.val_batch_size, device=env.device, autocast=autocast,
        num_workers=cfg.num_workers, rank=env.rank, world_size=env.world_size,
    )
    bar = progress_bar(run.end_step, run.start_step, enabled=progress and env.is_main)
    model.train()
    step, losses_since = run.start_step, []
    with StopSignal() as stop, closing(bar):
        batches = iter(_loader(recipe, run, items, img_size))
        while step < run.end_step:
            raw = [next(batches) for _ in range(run.plan.accumulation)]
            micro = []
            for j, (images, labels, _) in enumerate(raw):
                if mixup is not None:  # seeded by the global micro-batch index: the same on any world size
                    s = env.rank * run.plan.accumulation + j
                    with seeded_numpy_and_random(_sample_seed(cfg.seed + 2, step * run.plan.micro_batches_per_step + s)):
                        images, labels = mixup(images, labels)
                micro.append((images, labels))
            lr = run.schedules.lr(step)
            set_lr(optimizer, lr)
            loss = finetune_step(module, micro, optimizer, criterion, device=env.device, autocast=autocast,
                                 clip_grad=recipe.optim.clip_grad, no_sync=no_sync)
            step = result.step = step + 1
            skipped_here = sum(len(names) for *_, names in raw)
            stats = all_reduce_mean(torch.stack([loss.float(), loss.new_tensor(float(skipped_here))]), env)
            loss_value, skipped = float(stats[0]), round(float(stats[1]) * env.world_size)
            if not math.isfinite(loss_value):
                raise checkpointer.diverged(step, f"the loss is {loss_value}")
            broken.add(skipped, run.plan.global_batch, [n for *_, names in raw for n in names])
            result.losses.append(loss_value)
            losses_since.append(loss_value)
            bar.update(1)
            if writer is not None and (step % cfg.log_every == 0 or step == run.end_step or skipped):
                writer.write({"step": step, "epoch": step / run.steps_per_epoch, "loss": sum(losses_since) / len(losses_since),
                              "lr": lr, "broken_images": skipped, "broken_images_total": broken.total})
                bar.set_postfix(loss=f"{losses_since[-1]:.4f}", lr=f"{lr:.2e}", refresh=False)
                losses_since = []
            if step % run.steps_per_epoch == 0 or step == run.end_step:
                record = {"kind": "eval", "step": step, "epoch": step / run.steps_per_epoch, "val_top1": evaluate()}
                history.history.append(record)
                if writer is not None:
                    writer.write(record)
                    logger.info("step %d (epoch %.2f): val top-1 %.2f%%", step, record["epoch"], record["val_top1"])
                    bar.set_postfix(top1=f"{record['val_top1']:.1f}", refresh=False)
            checkpointer.save(step)
            if broken.exceeded:
                checkpointer.save(step, force=True)
                raise broken.error(step, checkpointer.path)
            if any_rank(stop.received is not None, env):
                checkpointer.save(step, force=True)
                result.preempted = True
                logger.warning("step %d: stop signal received; checkpoint written, exiting", step)
                break
    if writer is not None:
        writer.close()
    result.checkpoint = checkpointer.written
    if export and not result.preempted and env.is_main:
        _export(model, recipe, splits, run, result, push_to_hub)
    return result


def _export(model: Classifier, recipe: FinetuneRecipe, splits, run: Run, result: FinetuneResult,
            push_to_hub: str | None) -> None:
    metrics: dict[str, Any] = {"steps": result.step, "epochs": round(result.step / run.steps_per_epoch, 2),
                               "images_seen": result.step * run.plan.global_batch}
    if result.evals:
        metrics["val_top1"] = round(result.evals[-1]["val_top1"], 2)
        metrics["best_val_top1"] = round(max(e["val_top1"] for e in result.evals), 2)
    data = {"name": splits.name, "num_train": len(splits.train_images), "num_val": len(splits.test_images)}
    result.export_dir = save_classifier(model, result.out_dir / "model", recipe=recipe.to_dict(), metrics=metrics,
                                        data=data)
    logger.info("exported the classifier to %s", result.export_dir)
    if push_to_hub:
        result.hub_url = push_model(result.export_dir, push_to_hub)
        logger.info("pushed to %s", result.hub_url)


