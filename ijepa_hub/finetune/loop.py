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

import functools
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..data import MicroBatchSampler, TrainingSamples
from ..data.identity import data_fingerprint, dataset_listing
from ..data.pipeline import sample_seed
from ..data.transforms import min_crop_fraction
from ..engine.checkpoint import run_folder
from ..engine.checkpointer import Checkpointer
from ..engine.distributed import no_grad_sync, wrap_model
from ..engine.faults import BrokenImageCounter, StopSignal, ignore_stop_signals
from ..engine.metrics import StepLogger, progress_bar
from ..engine.optim import adamw, set_hyperparams
from ..engine.process import RunResult, open_run_folder, training_process
from ..engine.resume import Resume
from ..engine.run import Run
from ..engine.schedules import WarmupCosineSchedules
from ..engine.step import StepEnd, accumulated_step, autocast_factory
from ..hub.classifier import save_classifier
from ..hub.lineage import step, with_step
from ..hub.provenance import provenance_of, source_origin
from ..hub.save import check_push_target, push_to_hub
from ..models.classifier import Classifier
from ..registry import is_random_init
from .data import LabelledItems, build_mixup, collate, finetune_splits, seeded_numpy_and_random, top1, train_transform
from .model import build_classifier, check_resumed_pooling, param_count
from .recipe import FinetuneRecipe, FtOptimSection

__all__ = ["finetune", "finetune_step", "FinetuneResult", "build_finetune_optimizer"]

logger = logging.getLogger("ijepa_hub.finetune")


@dataclass
class FinetuneResult(RunResult):
    """What a call to :func:`finetune` did: the engine's :class:`~ijepa_hub.engine.process.RunResult` and the
    validations."""

    evals: list[dict[str, Any]] = field(default_factory=list)  # every validation of the run, resumed ones included

    @property
    def top1(self) -> float | None:
        """The last validation top-1 (percent)."""
        return self.evals[-1]["val_top1"] if self.evals else None


class FinetuneResume(Resume):
    """The engine's :class:`~ijepa_hub.engine.resume.Resume`; a checkpoint of another pooling (an attentive
    run resumed as linear, or the reverse) is refused first, in one line naming the fix."""

    @classmethod
    def check_state(cls, state: dict[str, Any], recipe: FinetuneRecipe, source: Path) -> None:
        check_resumed_pooling(state, recipe.model.mode, source=str(source))
        super().check_state(state, recipe, source)


class EvalHistory:
    """The validations of the run; saved in checkpoints under ``"evals"`` (``"monitor"`` in 0.1)."""

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
    for group in groups:  # timm's groups carry their own weight decay (0 for biases and norms): keep it fixed
        group["apply_weight_decay"] = False
    return adamw(groups, optim)


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

    The engine's :func:`~ijepa_hub.engine.step.accumulated_step` with the classification loss.
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
    recipe.validate()  # every key in range, before the run folder is touched
    if push_to_hub:
        check_push_target(push_to_hub)  # before training: a push that cannot succeed is refused now
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
    resumed = FinetuneResume.find(resume, out_dir, recipe, env)
    splits = finetune_splits(data, seed=cfg.seed)
    torch.manual_seed(cfg.seed)  # the same head on every rank
    model = build_classifier(recipe.model, splits.classes, crop_pct=splits.crop_pct)
    img_size = model.config.img_size
    items = LabelledItems(splits.train_images, splits.train_labels)
    run = Run.create(recipe, env, len(items), start_step=resumed.step if resumed else 0,
                     schedules_from=WarmupCosineSchedules.from_recipe,
                     data_fingerprint=data_fingerprint(data.path, dataset_listing(splits.train_images)))
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
    autocast = autocast_factory(cfg.precision, env.device)
    no_sync = (lambda: no_grad_sync(module, False)) if env.distributed else None
    criterion = _criterion(recipe)
    mixup = build_mixup(data, len(splits.classes), recipe.optim.label_smoothing)
    history, broken = EvalHistory(), BrokenImageCounter(data.max_broken_fraction)
    if resumed:
        resumed.load_extra("evals", history, legacy_keys=("monitor",))
        broken.load_state_dict(resumed.state["data"])
    log = StepLogger(open_run_folder(out_dir, recipe, env, resume_step=resumed.step if resumed else None),
                     progress_bar(run.end_step, run.start_step, enabled=progress and env.is_main),
                     log_every=cfg.log_every, end_step=run.end_step, steps_per_epoch=run.steps_per_epoch,
                     images_per_step=run.plan.global_batch, rate=False)  # no timings: a resumed run's file is equal
    if env.is_main:
        trainable, total = param_count(model)
        logger.info("%s; %s classes, %d val images; %d of %d parameters trained (%s mode)",
                    run.describe(model.config.name, resumed.source if resumed else None), len(splits.classes),
                    len(splits.test_images), trainable, total, recipe.model.mode)
    checkpointer = Checkpointer(out_dir, run, model, optimizer, broken=broken, extra={"evals": history},
                                resumed=resumed)
    result = FinetuneResult(out_dir, run.start_step, run.start_step, run.schedules.total_steps, evals=history.history)
    evaluate = functools.partial(
        top1, model, splits, img_size=img_size, batch_size=data.val_batch_size, device=env.device, autocast=autocast,
        num_workers=cfg.num_workers, rank=env.rank, world_size=env.world_size,
    )
    model.train()
    step = run.start_step
    with StopSignal("ijepa-finetune") as stop, closing(log):
        end = StepEnd(run, checkpointer, broken, stop, result)
        batches = iter(_loader(recipe, run, items, img_size))
        while step < run.end_step:
            raw = [next(batches) for _ in range(run.plan.accumulation)]
            used = run.schedules.at_iteration(step)
            set_hyperparams(optimizer, used)
            loss = finetune_step(module, _mixed(raw, mixup, run, step), optimizer, criterion, device=env.device,
                                 autocast=autocast, clip_grad=recipe.optim.clip_grad, no_sync=no_sync)
            step += 1
            loss_value, skipped = end.record(step, loss, sum(len(names) for *_, names in raw),
                                             [n for *_, names in raw for n in names])
            log.step(step, loss_value, skipped=skipped, broken_total=broken.total, fields={"lr": used.lr},
                     postfix={"lr": f"{used.lr:.2e}"})
            if step % run.steps_per_epoch == 0 or step == run.end_step:
                record = {"kind": "eval", "step": step, "epoch": step / run.steps_per_epoch, "val_top1": evaluate()}
                history.history.append(log.event("eval", record, postfix={"top1": f"{record['val_top1']:.1f}"}))
                if env.is_main:
                    logger.info("step %d (epoch %.2f): val top-1 %.2f%%", step, record["epoch"], record["val_top1"])
            if end.close(step):
                break
    result.checkpoint = checkpointer.written
    if export and not result.preempted and env.is_main:
        _export(model, recipe, splits, run, result, push_to_hub)
    return result


def _mixed(raw: list[tuple], mixup: Any, run: Run, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The step's ``(images, targets)`` micro-batches, through Mixup / CutMix when on: each seeded by its global
    micro-batch index, so the same on any world size."""
    seed, micro = run.recipe.train.seed + 2, []
    for j, (images, labels, _) in enumerate(raw):
        if mixup is not None:
            index = step * run.plan.micro_batches_per_step + run.env.rank * run.plan.accumulation + j
            with seeded_numpy_and_random(sample_seed(seed, index)):
                images, labels = mixup(images, labels)
        micro.append((images, labels))
    return micro


def _export(model: Classifier, recipe: FinetuneRecipe, splits, run: Run, result: FinetuneResult,
            push_to: str | None) -> None:
    metrics: dict[str, Any] = {"steps": result.step, "epochs": round(result.step / run.steps_per_epoch, 2),
                               "images_seen": result.step * run.plan.global_batch}
    if result.evals:
        metrics["val_top1"] = round(result.evals[-1]["val_top1"], 2)
        metrics["best_val_top1"] = round(max(e["val_top1"] for e in result.evals), 2)
    data = {"name": splits.name, "num_train": len(splits.train_images), "num_val": len(splits.test_images)}
    source = recipe.model.source
    how = f"fine-tuned as a classifier with ijepa-finetune (recipe {recipe.name}, mode {recipe.model.mode}, data {splits.name})"
    if is_random_init(source):
        origin, chain = None, [step(None, f"{how}, from random initialisation")]
    else:
        origin, chain = source_origin(source), with_step(provenance_of(source), source, how)
    result.export_dir = save_classifier(model, result.out_dir / "model", recipe=recipe.to_dict(), metrics=metrics,
                                        origin=origin, provenance=chain, data=data)
    logger.info("exported the classifier to %s", result.export_dir)
    if push_to:
        result.hub_url = push_to_hub(result.export_dir, push_to)
        logger.info("pushed to %s", result.hub_url)


