"""``ijepa-train --plan``: what a recipe costs on GPUs, computed from its numbers, without training.

Parameters come from the networks built on the ``meta`` device (no memory); the mask sizes are the means
of draws of the recipe's own mask collator at its per-device batch; FLOPs follow :mod:`ijepa_hub.flops`.
Memory per device, by component (``B`` bytes):

- weights: the context encoder and predictor in fp32 (4 B per parameter), the EMA target encoder 4 B;
- gradients 4 B and AdamW's two moments 8 B per trained parameter;
- bf16 autocast keeps a bf16 copy of each trained weight during the step (2 B);
- FSDP2 (``train.fsdp``) divides all of the above by the number of devices;
- activations saved for the backward of one micro-batch, per block and token of width ``D`` and MLP
  width ``H``: fp32 ``36 D + 8 H`` B, bf16 autocast ``22 D + 4 H`` B (the fp32 residual stream and
  LayerNorm inputs, bf16 linear inputs, q/k/v, attention output and MLP hidden states), over the
  context encoder's K_ctx tokens and the predictor's M sequences of K_ctx + K_tgt tokens; activation
  checkpointing keeps each block's input (4 D B per token) and recomputes one block at a time;
- the peak: weights, EMA and optimiser state, plus the larger of (activations + weight copies) and the
  gradients (the backward frees activations as it writes gradients).

``tests/test_plan.py`` checks the FLOPs against ``torch.utils.flop_counter.FlopCounterMode`` (2 %) and
the peak against the memory of a real CPU step measured by torch's ``MemTracker`` (15 %), at tiny and
small sizes. Times assume the stated MFU of each GPU's dense bf16 peak.
"""
from __future__ import annotations

import statistics
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from ..data import MicroBatch
from ..engine.step import autocast_factory
from ..errors import RecipeError
from ..flops import ijepa_step_flops, recompute_macs
from ..masks import MaskCollator
from ..models import IJepa
from ..models.objectives import EPPS_PULLEY_T
from ..precision import resolve_precision
from ..recipe import Recipe
from .loop import train_step
from .optim import build_optimizer
from .sources import build_model

__all__ = ["GPU", "GPUS", "DATASET_IMAGES", "DEFAULT_MFU", "TrainingPlan", "plan_recipe", "format_plan", "describe_plan",
           "PeakTensorMemory", "measure_step"]


@dataclass(frozen=True)
class GPU:
    """A GPU's dense bf16 peak (data sheet) and memory."""

    name: str
    peak_bf16_tflops: float
    memory_gib: float


# the one table of GPU peaks (docs/performance.md): dense bf16, no sparsity
GPUS: dict[str, GPU] = {
    "A100": GPU("A100", 312.0, 80.0),
    "H100": GPU("H100", 989.0, 80.0),
    "H200": GPU("H200", 989.0, 141.0),
}
DEFAULT_MFU = 0.30  # a mature ViT training stack reaches 30-45 % on large models (docs/performance.md)
# images per epoch of the named datasets of the released recipes (data.dataset)
DATASET_IMAGES = {"imagenet-1k": 1_281_167, "imagenet-22k": 14_197_122}
MASK_DRAWS = 32  # collator draws averaged for the expected mask sizes
GIB = 2**30


@dataclass
class TrainingPlan:
    """A recipe's parameters, FLOPs, memory and time, from its numbers. See the module docstring."""

    recipe: Recipe
    params: dict[str, int]  # per network, and "trained" (what AdamW updates)
    context_tokens: float
    target_tokens: float
    num_targets: int
    images_per_epoch: int
    dtype: torch.dtype
    flops_per_image: dict[str, float] = field(default_factory=dict)

    @property
    def global_batch(self) -> int:
        return self.recipe.optim.batch_size

    @property
    def micro_batch(self) -> int:
        return self.recipe.data.batch_size_per_device

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.images_per_epoch // self.global_batch)

    @property
    def total_steps(self) -> int:
        """Steps of the whole run, as the trainer's schedules count them (``ipe_scale``, ``train.max_steps``)."""
        total = int(self.recipe.optim.ipe_scale * self.recipe.optim.epochs * self.steps_per_epoch)
        return min(total, self.recipe.train.max_steps) if self.recipe.train.max_steps else total

    @property
    def flops_per_step(self) -> float:
        """FLOPs of one optimiser step: the model's, plus the recomputation of activation checkpointing."""
        return (self.flops_per_image["total"] + self.flops_per_image.get("recompute", 0.0)) * self.global_batch

    def activation_bytes(self, *, checkpointing: bool | None = None) -> dict[str, float]:
        """Bytes of one micro-batch's activations (``checkpointing``: the recipe's): ``saved`` for the
        backward by the context encoder, the predictor and the objectives, and the ``transient`` buffers
        the backward adds on top of them at its start (the objectives' gradients; one recomputed block)."""
        checkpointing = self.recipe.train.grad_checkpointing if checkpointing is None else checkpointing
        config, loss = self.recipe.model_config(), self.recipe.loss
        bf16 = self.dtype != torch.float32
        act = 2 if bf16 else 4
        b, m, k_ctx, k_tgt = self.micro_batch, self.num_targets, self.context_tokens, self.target_tokens
        d, big = config.pred_embed_dim, config.embed_dim
        ctx_tokens, pred_tokens = b * k_ctx, b * m * (k_ctx + k_tgt)

        def per_token(width: int, heads: int, ratio: float) -> float:  # one block, one token, all it saves
            hidden = ratio * width
            return (22 * width + 4 * hidden if bf16 else 36 * width + 8 * hidden) + 4 * heads  # + log-sum-exp

        def blocks(tokens: float, width: int, depth: int, heads: int, ratio: float) -> float:
            # with checkpointing each block keeps only its input (the fp32 residual stream)
            return tokens * depth * (4 * width if checkpointing else per_token(width, heads, ratio))

        context = blocks(ctx_tokens, big, config.depth, config.num_heads, config.mlp_ratio)
        context += ctx_tokens * big * (4 + act)  # the final norm's input, the predictor embedding's input
        predictor = blocks(pred_tokens, d, config.pred_depth, config.pred_num_heads, 4.0)
        # the last block's output (the final norm's input is a view of it), the projection's input, and the
        # predictions and targets the loss keeps
        predictor += pred_tokens * 4 * d + b * m * k_tgt * (act * d + 8 * big)
        rows = {"context": ctx_tokens, "context_pooled": b, "predictor": b * m * k_tgt}
        objectives, gradients = 0.0, 0.0
        if loss.vcreg_variance > 0 or loss.vcreg_covariance > 0:
            objectives += 2 * rows[loss.vcreg_on] * big * 4  # fp32 features and their centred copy
        if loss.sigreg_weight > 0:  # the Epps-Pulley grid [rows, projections, 17] and its gradients
            grid = rows[loss.sigreg_on] * loss.sigreg_projections * EPPS_PULLEY_T[2] * 4
            objectives += grid
            gradients += 4 * grid
        recompute = 0.0
        if checkpointing:
            recompute = max(ctx_tokens * per_token(big, config.num_heads, config.mlp_ratio),
                            pred_tokens * per_token(d, config.pred_num_heads, 4.0))
        return {"context_encoder": context, "predictor": predictor, "objectives": objectives,
                "saved": context + predictor + objectives, "transient": max(gradients, recompute)}

    def memory(self, num_devices: int = 1, *, checkpointing: bool | None = None,
               fsdp: bool | None = None) -> dict[str, float]:
        """Bytes per device by component, and ``peak`` (see the module docstring)."""
        fsdp = self.recipe.train.fsdp if fsdp is None else fsdp
        shards = num_devices if fsdp else 1
        trained, target = self.params["trained"], self.params["target_encoder"]
        online = self.params["context_encoder"] + self.params["predictor"]
        activations = self.activation_bytes(checkpointing=checkpointing)
        out = {
            "weights": 4 * online / shards,
            "ema_target": 4 * target / shards,
            "grads": 4 * trained / shards,
            "adamw": 8 * trained / shards,
            "weight_copies": 2 * trained if self.dtype != torch.float32 else 0.0,
            "activations": activations["saved"],
            "backward_transient": activations["transient"],
        }
        persistent = out["weights"] + out["ema_target"] + out["adamw"]
        out["peak"] = persistent + max(out["activations"] + out["backward_transient"] + out["weight_copies"],
                                       out["grads"])
        return out

    def time(self, gpu: GPU, num_gpus: int, mfu: float = DEFAULT_MFU) -> dict[str, float]:
        """Seconds per step, per epoch and for the whole run on ``num_gpus`` of ``gpu`` at ``mfu``."""
        step = self.flops_per_step / (num_gpus * gpu.peak_bf16_tflops * 1e12 * mfu)
        return {"step_s": step, "epoch_s": step * self.steps_per_epoch, "run_s": step * self.total_steps,
                "images_per_s": self.global_batch / step}

    def to_dict(self, gpus: list[str], num_gpus: int, mfu: float) -> dict[str, Any]:
        """Everything :func:`format_plan` prints, as plain numbers (for results files)."""
        rows = []
        for name in gpus:
            fits = {ckpt: self.memory(num_gpus, checkpointing=ckpt) for ckpt in (False, True)}
            rows.append({"gpu": name, "num_gpus": num_gpus, "mfu": mfu, **self.time(GPUS[name], num_gpus, mfu),
                         "peak_gib": fits[False]["peak"] / GIB, "peak_gib_checkpointing": fits[True]["peak"] / GIB,
                         "memory_gib": GPUS[name].memory_gib})
        return {
            "recipe": self.recipe.name, "model": self.recipe.model.name, "img_size": self.recipe.model_config().img_size,
            "precision": str(self.dtype).removeprefix("torch."), "params": self.params,
            "context_tokens": self.context_tokens, "target_tokens": self.target_tokens, "num_targets": self.num_targets,
            "global_batch": self.global_batch, "micro_batch": self.micro_batch,
            "images_per_epoch": self.images_per_epoch, "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps, "gflops_per_image": {k: v / 1e9 for k, v in self.flops_per_image.items()},
            "pflops_per_step": self.flops_per_step / 1e15,
            "memory_gib": {f"{n} x {'fsdp' if fsdp else 'ddp'}{' ckpt' if ckpt else ''}": {
                k: v / GIB for k, v in self.memory(n, checkpointing=ckpt, fsdp=fsdp).items()}
                for n in (1, num_gpus) for fsdp in (False, True) for ckpt in (False, True) if not (n == 1 and fsdp)},
            "gpus": rows,
        }


def expected_mask_sizes(recipe: Recipe, draws: int = MASK_DRAWS) -> tuple[float, float, int]:
    """Mean context and target-block lengths of the recipe's masks at its per-device batch (they depend on
    the batch: each batch keeps its shortest draw), and the number of target blocks."""
    config = recipe.model_config()
    collator = MaskCollator(recipe.mask, img_size=config.img_size, patch_size=config.patch_size, seed=recipe.train.seed)
    collator.validate()
    ctx, tgt = [], []
    for i in range(draws):
        context, targets = collator.sample(recipe.data.batch_size_per_device, i)
        ctx.append(context[0].shape[1])
        tgt.append(targets[0].shape[1])
    return statistics.mean(ctx), statistics.mean(tgt), len(targets)


def count_params(recipe: Recipe) -> dict[str, int]:
    """Parameters per network, built on the meta device (no memory); ``trained``: those AdamW updates."""
    with torch.device("meta"):
        model = IJepa(recipe.model_config(), loss=recipe.optim.loss)
    parts = {"context_encoder": model.context_encoder, "target_encoder": model.target_encoder,
             "predictor": model.predictor}
    params = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    params["trained"] = sum(p.numel() for name in ("context_encoder", "predictor")
                            for p in parts[name].parameters() if p.requires_grad)
    return params


def step_flops(recipe: Recipe, k_ctx: float, k_tgt: float, num_targets: int) -> dict[str, float]:
    """FLOPs per image of a step (:func:`~ijepa_hub.flops.ijepa_step_flops`), plus ``recompute``: the
    block forwards the backward runs again under activation checkpointing (``train.grad_checkpointing``)."""
    config = recipe.model_config()
    flops = ijepa_step_flops(config, k_ctx, k_tgt, num_targets)
    if recipe.train.grad_checkpointing:
        flops["recompute"] = 2 * (
            recompute_macs(k_ctx, config.embed_dim, config.depth, config.mlp_ratio)
            + num_targets * recompute_macs(k_ctx + k_tgt, config.pred_embed_dim, config.pred_depth, 4.0))
    return flops


def plan_recipe(recipe: Recipe, *, images_per_epoch: int | None = None, device: str = "cuda") -> TrainingPlan:
    """The :class:`TrainingPlan` of ``recipe`` trained on ``device`` (its precision resolves there)."""
    recipe.validate()
    if images_per_epoch is None:
        images_per_epoch = _images_per_epoch(recipe)
    k_ctx, k_tgt, m = expected_mask_sizes(recipe)
    plan = TrainingPlan(recipe, count_params(recipe), k_ctx, k_tgt, m, images_per_epoch,
                        resolve_precision(recipe.train.precision, device))
    plan.flops_per_image = step_flops(recipe, k_ctx, k_tgt, m)
    return plan


def _images_per_epoch(recipe: Recipe) -> int:
    data = recipe.data
    if data.path is None and data.dataset.startswith("synthetic"):
        return data.num_samples
    if data.stream_size:
        return data.stream_size
    if data.dataset in DATASET_IMAGES:
        return DATASET_IMAGES[data.dataset]
    raise RecipeError(f"--plan cannot tell how many images data.dataset {data.dataset!r} holds; "
                      "give them with --plan-images N")


def _flops(flops: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if flops >= scale:
            return f"{flops / scale:.2f} {unit}"
    return f"{flops / 1e6:.2f} MFLOP"


def _duration(seconds: float) -> str:
    for unit, scale in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * scale:
            return f"{seconds / scale:.1f} {unit}"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def format_plan(plan: TrainingPlan, gpus: list[str], num_gpus: int, mfu: float = DEFAULT_MFU) -> str:
    """The plan as ``ijepa-train --plan`` prints it."""
    r, cfg = plan.recipe, plan.recipe.model_config()
    p, f = plan.params, plan.flops_per_image
    lines = [
        f"plan for recipe {r.name}: {r.model.name} at {cfg.img_size} px, precision {str(plan.dtype).removeprefix('torch.')}"
        f" on GPUs, global batch {plan.global_batch} (micro-batch {plan.micro_batch} per device)",
        f"parameters: context encoder {p['context_encoder'] / 1e6:.1f} M, target encoder (EMA) "
        f"{p['target_encoder'] / 1e6:.1f} M, predictor {p['predictor'] / 1e6:.1f} M; trained {p['trained'] / 1e6:.1f} M",
        f"masks (mean of {MASK_DRAWS} draws): context {plan.context_tokens:.1f} of {cfg.num_patches} tokens, "
        f"{plan.num_targets} target blocks of {plan.target_tokens:.1f}",
        f"FLOPs per image: {f['total'] / 1e9:.1f} G (target forward {f['target_forward'] / 1e9:.1f}, context "
        f"fwd+bwd {f['context_fwd_bwd'] / 1e9:.1f}, predictor fwd+bwd {f['predictor_fwd_bwd'] / 1e9:.1f}); "
        f"per step {_flops(plan.flops_per_step)}" + (" with the recomputation of checkpointing" if "recompute" in f else ""),
        f"run: {plan.images_per_epoch:,} images per epoch, {plan.steps_per_epoch:,} steps per epoch, "
        f"{plan.total_steps:,} steps",
        "",
        "memory per device, GiB    weights  EMA  grads  AdamW  bf16 copies  activations  peak",
    ]
    for n, fsdp in ((1, False), (num_gpus, True)) if num_gpus > 1 else ((1, False),):
        for ckpt in (False, True):
            mem = {k: v / GIB for k, v in plan.memory(n, checkpointing=ckpt, fsdp=fsdp).items()}
            label = f"{'DDP' if not fsdp else f'FSDP2 / {n}'}{', ckpt' if ckpt else ''}"
            lines.append(f"  {label:22s} {mem['weights']:8.2f} {mem['ema_target']:5.2f} {mem['grads']:6.2f} "
                         f"{mem['adamw']:6.2f} {mem['weight_copies']:12.2f} {mem['activations']:12.2f} {mem['peak']:6.2f}")
    lines += ["", f"time at {100 * mfu:.0f} % MFU of the dense bf16 peak:"]
    for name in gpus:
        gpu = GPUS[name]
        t = plan.time(gpu, num_gpus, mfu)
        peak = plan.memory(num_gpus)["peak"] / GIB
        fit = "fits" if peak <= gpu.memory_gib else f"needs > {gpu.memory_gib:.0f} GiB: checkpointing or FSDP2"
        lines.append(f"  {num_gpus:3d} x {name}: {t['images_per_s']:9,.0f} img/s, {_duration(t['step_s'])} per step, "
                     f"epoch {_duration(t['epoch_s'])}, run {_duration(t['run_s'])}; "
                     f"peak {peak:.1f} GiB of {gpu.memory_gib:.0f} ({fit})")
    return "\n".join(lines)




def describe_plan(recipe: Recipe, *, num_gpus: int | None = None, gpu: str | None = None, mfu: float | None = None,
                  images_per_epoch: int | None = None) -> str:
    """``ijepa-train --plan``: the options checked (:class:`~ijepa_hub.errors.RecipeError` naming the bad one),
    then the plan of ``recipe`` on ``num_gpus`` (default: the recipe's, global batch / per-device batch) of
    ``gpu`` (default: each of :data:`GPUS`) at ``mfu`` (default :data:`DEFAULT_MFU`)."""
    mfu = DEFAULT_MFU if mfu is None else mfu
    if gpu is not None and gpu not in GPUS:
        raise RecipeError(f"--plan-device {gpu!r}: use one of {', '.join(GPUS)}")
    if num_gpus is not None and num_gpus < 1:
        raise RecipeError(f"--plan-gpus {num_gpus}: give a number of GPUs >= 1")
    if not 0 < mfu <= 1:
        raise RecipeError(f"--plan-mfu {mfu}: give a fraction in (0, 1], e.g. {DEFAULT_MFU}")
    if images_per_epoch is not None and images_per_epoch < 1:
        raise RecipeError(f"--plan-images {images_per_epoch}: give a number of images >= 1")
    plan = plan_recipe(recipe, images_per_epoch=images_per_epoch)
    return format_plan(plan, [gpu] if gpu else list(GPUS), num_gpus or max(1, plan.global_batch // plan.micro_batch), mfu)


class PeakTensorMemory(TorchDispatchMode):
    """The peak bytes of live tensor storages on CPU, where torch keeps no allocator statistics: every op's
    outputs are counted when they appear and uncounted when their storage is freed (a weak-reference
    finaliser), starting from ``tensors`` (weights, optimiser state) alive at entry."""

    def __init__(self, tensors: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0
        self._initial = list(tensors)

    def _add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self.live:
            return
        self.live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __enter__(self) -> PeakTensorMemory:
        for tensor in self._initial:
            self._add(tensor)
        self._initial = []
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._add(leaf)
        return out


def measure_step(recipe: Recipe) -> dict[str, float]:
    """A real CPU training step of ``recipe`` at its per-device batch, to check the planner against: its
    FLOPs by ``FlopCounterMode`` (attention on SDPA's math path, which the counter sees) and its peak tensor
    memory by :class:`PeakTensorMemory`, both on the second step (AdamW's state exists), and the plan's
    figures for the masks that step drew. Small sizes only: it builds the model."""
    cpu = torch.device("cpu")
    if recipe.optim.batch_size != recipe.data.batch_size_per_device:
        raise RecipeError("measure_step runs one micro-batch: set optim.batch_size to data.batch_size_per_device")
    config, batch = recipe.model_config(), recipe.data.batch_size_per_device
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe, resumed=False)
    model.set_grad_checkpointing(recipe.train.grad_checkpointing)
    optimizer = build_optimizer(model, recipe.optim)
    context, targets = MaskCollator(recipe.mask, img_size=config.img_size, patch_size=config.patch_size).sample(batch, 0)
    images = torch.randn(batch, config.in_chans, config.img_size, config.img_size)
    micro = MicroBatch(images, torch.zeros(batch, 1, dtype=torch.long), context, targets, 0)
    autocast = autocast_factory(recipe.train.precision, cpu)
    train_step(model, [micro], optimizer, device=cpu, autocast=autocast)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        train_step(model, [micro], optimizer, device=cpu, autocast=autocast)
    state = (t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor))
    memory = PeakTensorMemory([*model.parameters(), *model.buffers(), *state])
    optimizer.zero_grad(set_to_none=True)  # the gradients of the last step, which train_step drops first
    with memory:
        train_step(model, [micro], optimizer, device=cpu, autocast=autocast)
    plan = plan_recipe(recipe, device="cpu", images_per_epoch=batch)
    plan.context_tokens, plan.target_tokens = context[0].shape[1], targets[0].shape[1]
    plan.flops_per_image = step_flops(recipe, plan.context_tokens, plan.target_tokens, len(targets))
    return {"flops_counted": counter.get_total_flops(), "flops_planned": plan.flops_per_step,
            "peak_bytes_measured": memory.peak, "peak_bytes_planned": plan.memory(1)["peak"]}
