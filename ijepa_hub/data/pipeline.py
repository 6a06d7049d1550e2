"""From a dataset to micro-batches: a deterministic sample order, per-sample seeds, masks in workers.

The unit of data is the *micro-batch* of ``data.batch_size_per_device`` images. Optimiser step ``t``
consumes ``S = optim.batch_size / batch_size_per_device`` micro-batches, numbered ``s = 0..S-1``;
process ``rank`` takes ``s = rank * k .. rank * k + k - 1`` where ``k = S / world_size`` is its
gradient-accumulation count. Which images form micro-batch ``(t, s)``, their crops (seeded per sample)
and their masks (drawn for mask step ``t * S + s``) depend only on the seed, never on the world size,
the number of workers or a resume, so 2 GPUs x 1 micro-batch == 1 GPU x 2 micro-batches, exactly.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, default_collate

from ..errors import DataError, ImageReadError
from .images import open_image, to_rgb
from .transforms import draft_for_crop

__all__ = ["BatchPlan", "MicroBatchSampler", "TrainingSamples", "MaskedCollate", "MicroBatch", "load_rgb"]

logger = logging.getLogger(__name__)

Key = tuple[int, int, int]  # (dataset index, sample seed, mask step)
MAX_CONSECUTIVE_BROKEN = 100  # unreadable images in a row before a sample gives up: the data is damaged


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch splits into micro-batches, processes and accumulation steps."""

    global_batch: int
    micro_batch: int
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.global_batch % self.micro_batch:
            raise ValueError(
                f"optim.batch_size {self.global_batch} is not a multiple of data.batch_size_per_device "
                f"{self.micro_batch}; choose a per-device batch that divides the global batch"
            )
        if self.micro_batches_per_step % self.world_size:
            raise ValueError(
                f"the global batch {self.global_batch} holds {self.micro_batches_per_step} micro-batches of "
                f"{self.micro_batch}, which {self.world_size} processes cannot share evenly; change "
                "data.batch_size_per_device or the number of processes"
            )

    @property
    def micro_batches_per_step(self) -> int:
        return self.global_batch // self.micro_batch

    @property
    def accumulation(self) -> int:
        """Micro-batches each process runs per optimiser step (gradient accumulation)."""
        return self.micro_batches_per_step // self.world_size


class MicroBatchSampler(Sampler[list[Key]]):
    """Yields this process's micro-batches, as lists of :data:`Key`, for steps ``[start_step, end_step)``.

    Epoch ``e`` visits the dataset in the order of a permutation seeded by ``(seed, e)`` and drops the
    incomplete last global batch, as the released loader does.
    """

    def __init__(
        self, num_samples: int, plan: BatchPlan, *, rank: int = 0, seed: int = 0, start_step: int = 0, end_step: int
    ) -> None:
        self.num_samples, self.plan, self.rank, self.seed = num_samples, plan, rank, seed
        self.start_step, self.end_step = start_step, end_step
        self.steps_per_epoch = num_samples // plan.global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the dataset has {num_samples} images, fewer than one global batch of {plan.global_batch}; "
                "lower optim.batch_size or add data"
            )

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.plan.accumulation

    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch)).permutation(self.num_samples)

    def __iter__(self) -> Iterator[list[Key]]:
        plan, m = self.plan, self.plan.micro_batch
        epoch, perm = -1, None
        for step in range(self.start_step, self.end_step):
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                perm = self.permutation(epoch)
            base = (step % self.steps_per_epoch) * plan.global_batch
            for j in range(plan.accumulation):
                s = self.rank * plan.accumulation + j
                first = base + s * m
                mask_step = step * plan.micro_batches_per_step + s
                yield [
                    (int(perm[first + i]), sample_seed(self.seed, step * plan.global_batch + s * m + i), mask_step)
                    for i in range(m)
                ]


def sample_seed(seed: int, position: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + position * 0xBF58476D1CE4E5B9 + 1) % (2**63)


def load_rgb(item: Any, img_size: int, min_fraction: float) -> Image.Image:
    """A dataset item's image (PIL image, path or file object) as 8-bit RGB, JPEGs decoded in draft mode.

    Files are decoded by :func:`~ijepa_hub.data.images.open_image` (upright from EXIF, errors naming the
    file) and converted by :func:`~ijepa_hub.data.images.to_rgb` (alpha onto white, 16-bit scaled), as for
    feature extraction.
    """
    if isinstance(item, Image.Image):
        return to_rgb(item)
    return to_rgb(open_image(item, prepare=partial(draft_for_crop, img_size=img_size, min_fraction=min_fraction)))


class TrainingSamples(Dataset):
    """Wraps a dataset of ``(image, label)`` items; indexed by :data:`Key`, returns the cropped tensor.

    The crop is drawn from a generator seeded by the key, so it does not depend on which worker runs
    it. An image that cannot be decoded is logged, named in the sample and replaced by the next
    readable one; after :data:`MAX_CONSECUTIVE_BROKEN` unreadable images in a row it is a
    :class:`~ijepa_hub.errors.DataError`. The training loop counts the skips and stops the run past
    ``data.max_broken_fraction``.
    """

    def __init__(self, dataset: Dataset, transform: Callable, *, img_size: int, min_fraction: float) -> None:
        self.dataset, self.transform = dataset, transform
        self.img_size, self.min_fraction = img_size, min_fraction

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]:
        """``(image, label, mask step, names of the unreadable files skipped to get it)``."""
        index, seed, mask_step = key
        broken: list[str] = []
        n = len(self.dataset)
        for offset in range(min(n, MAX_CONSECUTIVE_BROKEN)):
            try:
                item, label = self.dataset[(index + offset) % n]
                image = load_rgb(item, self.img_size, self.min_fraction)
                break
            except ImageReadError as err:
                broken.append(err.path or str(err))
                logger.warning("skipping unreadable image: %s", err)
        else:
            raise DataError(
                f"{len(broken)} images in a row cannot be decoded ({', '.join(broken[:3])}, ...); the data is "
                "damaged or is not images. Fix: check --data (data.path)."
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tensor = self.transform(image)
        return tensor, torch.as_tensor(label, dtype=torch.long).reshape(-1), mask_step, tuple(broken)


@dataclass
class MicroBatch:
    """One micro-batch as the training loop sees it."""

    images: torch.Tensor  # [B, 3, H, W]
    labels: torch.Tensor  # [B, L]
    context_masks: list[torch.Tensor]  # 1 x [B, K_ctx]
    target_masks: list[torch.Tensor]  # num_targets x [B, K_tgt]
    broken: int  # unreadable images skipped while building it
    broken_files: list[str] = field(default_factory=list)  # their names

    def pin_memory(self) -> MicroBatch:
        return MicroBatch(
            self.images.pin_memory(), self.labels.pin_memory(), [m.pin_memory() for m in self.context_masks],
            [m.pin_memory() for m in self.target_masks], self.broken, self.broken_files,
        )


class MaskedCollate:
    """Collate function: stacks the samples and draws their masks with the mask collator.

    Runs inside the DataLoader workers. ``collator`` is an :class:`ijepa_hub.masks.MaskCollator`;
    masks are drawn for the micro-batch's own mask step with
    the torch RNG seeded from it (legacy mode draws positions from it), so they do not depend on the
    number of workers, the world size or a resume.
    """

    def __init__(self, collator: Any, *, seed: int = 0) -> None:
        self.collator, self.seed = collator, seed

    def __call__(self, samples: list[tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]]) -> MicroBatch:
        steps = {s[2] for s in samples}
        if len(steps) != 1:
            raise RuntimeError(f"a micro-batch mixes mask steps {sorted(steps)}; use MicroBatchSampler")
        step = steps.pop()
        images, labels = default_collate([(s[0], s[1]) for s in samples])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed + 1, step))
            context_masks, target_masks = self.collator.sample(len(samples), step)
        broken = [name for s in samples for name in s[3]]
        return MicroBatch(images, labels, list(context_masks), list(target_masks), len(broken), broken)
