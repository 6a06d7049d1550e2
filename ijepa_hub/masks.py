"""Multi-block masking: the context and target masks of each batch.

Each image gets ``num_targets`` rectangular target blocks and one context block from which the target
patches are removed. Two modes:

``legacy``
    The released collator, quirks included, so that the released weights can be reproduced: one uniform
    draw sets both a block's scale and aspect ratio; block sizes are drawn once per batch from a generator
    seeded with the step counter; positions come from the global torch RNG with ``randint(0, H - h)``
    (the last row and column are never covered); blocks are shrunk until strictly smaller than the grid;
    every mask is truncated to the batch minimum keeping the lowest raster indices (so context size
    depends on the per-device batch, and the bottom-right of large masks is dropped). Given the same
    global torch seed and step it returns the same index tensors as the reference.

``corrected`` (default)
    Every patch position is reachable (blocks up to the full grid, positions ``0..H-h`` inclusive); scale
    and aspect ratio are independent draws (aspect log-uniform); all randomness comes from a generator
    seeded with ``(seed, step)``. Target blocks of a batch share one size, so no target is truncated. The
    context keep-count ``K`` is one number per batch: the minimum of the available context over a fixed
    group of ``context_group`` draws (128, the released per-device batch, by default), using the batch's
    own images and extra draws when the batch is smaller. It does not depend on the per-device batch size.
    Each image keeps ``K`` context patches sampled uniformly at random (never truncated in raster order);
    an image beyond the group with fewer than ``K`` available patches has its blocks redrawn.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import MaskError
from .recipe import MaskSection

__all__ = ["MaskCollator", "MaskStats", "mask_statistics"]


class MaskCollator:
    """Sample the context and target masks of a batch: :meth:`sample` ``(batch_size, step)``.

    Returns a list of ``num_context`` LongTensors [B, K_ctx] and a list of ``num_targets`` LongTensors
    [B, K_tgt] of raster-order patch indices. Masks depend only on the step (the index of the batch) and,
    in legacy mode, on the global torch RNG of the process, as in the reference. The trainer draws them
    inside the DataLoader workers with :class:`ijepa_hub.data.MaskedCollate`, which passes each
    micro-batch's own step, so they depend neither on the number of workers nor on a resume.
    """

    def __init__(
        self,
        config: MaskSection | None = None,
        *,
        img_size: int | tuple[int, int],
        patch_size: int,
        seed: int = 0,
    ) -> None:
        self.config = config if config is not None else MaskSection()
        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        if h % patch_size or w % patch_size:
            raise ValueError(f"image size {(h, w)} is not a multiple of patch size {patch_size}")
        self.height, self.width = h // patch_size, w // patch_size
        self.seed = seed
        if self.config.mode not in ("legacy", "corrected"):
            raise ValueError(f"mask mode must be 'legacy' or 'corrected', got {self.config.mode!r}")
        if self.config.mode == "corrected" and self.config.num_context != 1:
            raise ValueError("corrected masks support exactly one context block (mask.num_context=1)")

    @property
    def num_patches(self) -> int:
        return self.height * self.width

    def describe(self) -> str:
        """The settings that decide whether masks can be drawn, for error messages."""
        c = self.config
        return (
            f"mask.mode={c.mode}, context_scale={list(c.context_scale)}, context_aspect={list(c.context_aspect)}, "
            f"target_scale={list(c.target_scale)}, target_aspect={list(c.target_aspect)}, num_targets={c.num_targets}, "
            f"min_keep={c.min_keep}, allow_overlap={c.allow_overlap} on a {self.height}x{self.width} patch grid"
        )

    def error(self, what: str) -> MaskError:
        return MaskError(
            f"{what} ({self.describe()}). Fix: raise mask.context_scale, lower mask.min_keep or mask.num_targets, "
            "or use a larger image / smaller patch size."
        )

    def validate(self) -> None:
        """Refuse settings that cannot give every image more than ``min_keep`` context patches.

        Checked before the first step, on the block sizes the settings allow (legacy: also the target
        blocks, whose sampler loops until one holds more than ``min_keep`` patches) and, for corrected
        masks, on 4096 draws from a fixed generator (the global RNG is not touched).
        """
        c = self.config
        for name in ("context_scale", "target_scale", "context_aspect", "target_aspect"):
            lo, hi = getattr(c, name)
            if not (0 < lo <= hi and (hi <= 1 or name.endswith("aspect"))):
                raise self.error(f"mask.{name}={[lo, hi]} is not a range 0 < min <= max" + (
                    " <= 1" if name.endswith("scale") else ""))
        if c.num_targets < 1 or c.num_context < 1 or c.min_keep < 0:
            raise self.error("mask.num_targets and mask.num_context must be at least 1, mask.min_keep at least 0")
        if self.config.mode == "legacy":
            sizes = _LegacySampler(self)
            for name, scale, aspect in (("context", c.context_scale, c.context_aspect),
                                        ("target", c.target_scale, c.target_aspect)):
                smallest = min(np.prod(sizes.block_size_at(u, scale, aspect)) for u in np.linspace(0.0, 1.0, 65))
                if smallest <= c.min_keep:
                    raise self.error(
                        f"{name} blocks can be {smallest} patches, never more than min_keep={c.min_keep} (the released "
                        "sampler would loop forever)"
                    )
            return
        sampler = _CorrectedSampler(self)
        largest = max(int(h * w) for h, w in zip(*sampler.size_grid(c.context_scale, c.context_aspect)))
        if largest <= c.min_keep:
            raise self.error(f"context blocks hold at most {largest} patches, never more than min_keep={c.min_keep}")
        sampler.rng = np.random.default_rng([self.seed, 2**31])
        th, tw = (int(v[0]) for v in sampler.size(c.target_scale, c.target_aspect))
        _, available = sampler.draw(4096, th, tw)
        if not (available.sum(1) > c.min_keep).any():
            raise self.error(f"none of 4096 draws leaves more than min_keep={c.min_keep} context patches")
        self._check_worst_case(sampler)

    def _check_worst_case(self, sampler: _CorrectedSampler) -> None:
        """Sample the worst case the settings allow (the largest target blocks of the size grid, the smallest
        context scale): unless :data:`_MIN_GOOD` of those draws keep more than ``min_keep`` context patches,
        some batch could exhaust its redraws, so the settings are refused."""
        c = self.config
        worst = MaskCollator(dataclasses.replace(c, context_scale=(c.context_scale[0],) * 2),
                             img_size=(self.height, self.width), patch_size=1, seed=self.seed)
        heights, widths = sampler.size_grid(c.target_scale, c.target_aspect)
        largest = sorted({(int(h), int(w)) for h, w in zip(heights, widths)}, key=lambda s: -s[0] * s[1])[:3]
        draws = _CorrectedSampler(worst)
        draws.rng = np.random.default_rng([self.seed, 2**31 + 1])
        for th, tw in largest:
            _, available = draws.draw(_WORST_DRAWS, th, tw)
            good = float((available.sum(1) > c.min_keep).mean())
            if good < _MIN_GOOD:
                raise self.error(
                    f"with {c.num_targets} target blocks of {th}x{tw} patches and context_scale {c.context_scale[0]}, "
                    f"only {good:.0%} of draws keep more than min_keep={c.min_keep} context patches "
                    f"(at least {_MIN_GOOD:.0%} needed), so a batch could be left without context")

    def sample(self, batch_size: int, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Masks for one batch of ``batch_size`` images at ``step``."""
        sampler = _LegacySampler(self) if self.config.mode == "legacy" else _CorrectedSampler(self)
        return sampler.sample(batch_size, step)


# ----------------------------------------------------------------------------------------------------
# legacy: the released collator's algorithm, draw for draw


_MAX_DRAWS = 100_000  # a bound on every rejection loop; feasible settings never come near it
_REDRAWS = 100  # corrected mode: redraws of the images of a batch whose context falls short
_WORST_DRAWS = 512  # corrected mode: draws of the worst case that validate() samples
_MIN_GOOD = 0.25  # ... of which this fraction must keep enough context: 0.75**100 fails once in 3e12 images


class _LegacySampler:
    def __init__(self, collator: MaskCollator) -> None:
        self.collator, self.c = collator, collator.config
        self.height, self.width = collator.height, collator.width
        self._draw = torch.empty(1, dtype=torch.int64)  # random_ on it == randint(lo, hi, (1,)), cheaper

    def randint(self, high: int) -> int:
        return self._draw.random_(0, high).item()

    def block_size(self, generator: torch.Generator, scale, aspect) -> tuple[int, int]:
        return self.block_size_at(torch.rand(1, generator=generator).item(), scale, aspect)

    def block_size_at(self, u: float, scale, aspect) -> tuple[int, int]:
        """The block size of draw ``u``: one draw sets both scale and aspect ratio."""
        max_keep = int(self.height * self.width * (scale[0] + u * (scale[1] - scale[0])))
        ratio = aspect[0] + u * (aspect[1] - aspect[0])
        h = int(round(math.sqrt(max_keep * ratio)))
        w = int(round(math.sqrt(max_keep / ratio)))
        return min(h, self.height - 1), min(w, self.width - 1)

    def block(self, h: int, w: int, regions: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """One block, exactly as released: resample until it keeps more than ``min_keep`` patches."""
        if h * w <= self.c.min_keep:  # no position can ever pass: the released sampler loops forever
            raise self.collator.error(f"a {h}x{w} block can never keep more than min_keep={self.c.min_keep} patches")
        tries, timeout = 0, 20
        for _ in range(_MAX_DRAWS):
            top, left = self.randint(self.height - h), self.randint(self.width - w)
            mask = np.zeros((self.height, self.width), dtype=bool)
            mask[top : top + h, left : left + w] = True
            for region in (regions or [])[: max(len(regions or []) - tries, 0)]:
                mask &= region
            idx = np.flatnonzero(mask)
            if len(idx) > self.c.min_keep:
                break
            timeout -= 1
            if timeout == 0:  # relax one constraint after 20 failures
                tries, timeout = tries + 1, 20
        else:
            raise self.collator.error(f"no {h}x{w} block kept more than min_keep={self.c.min_keep} patches in {_MAX_DRAWS} draws")
        return idx, ~_rect(self.height, self.width, top, left, h, w)

    def sample(self, batch_size: int, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        c = self.c
        g = torch.Generator()
        g.manual_seed(step)
        th, tw = self.block_size(g, c.target_scale, c.target_aspect)
        ch, cw = self.block_size(g, c.context_scale, c.context_aspect)
        if th * tw <= c.min_keep:
            raise self.collator.error(
                f"target blocks of {th}x{tw} patches can never keep more than min_keep={c.min_keep} "
                "patches (the released collator would loop forever)"
            )
        rng_state = torch.get_rng_state()
        fast = self.sample_without_rejection(batch_size, th, tw, ch, cw)
        if fast is not None:
            return fast
        torch.set_rng_state(rng_state)  # a context block was rejected: replay draw by draw
        return self.sample_sequential(batch_size, th, tw, ch, cw)

    def sample_without_rejection(self, batch_size, th, tw, ch, cw):
        """All positions in the released draw order, geometry vectorised; None if any block is rejected."""
        c = self.c
        per_image = [(self.height - th, self.width - tw)] * c.num_targets
        per_image += [(self.height - ch, self.width - cw)] * c.num_context
        draws = np.array(
            [[[self.randint(hi_top), self.randint(hi_left)] for hi_top, hi_left in per_image] for _ in range(batch_size)]
        )
        t_top, t_left = draws[:, : c.num_targets, 0], draws[:, : c.num_targets, 1]
        c_top, c_left = draws[:, c.num_targets :, 0], draws[:, c.num_targets :, 1]
        r, cc = np.arange(th), np.arange(tw)
        targets = (t_top[..., None, None] + r[:, None]) * self.width + (t_left[..., None, None] + cc[None, :])
        targets = targets.reshape(batch_size, c.num_targets, th * tw)
        context = _rects(self.height, self.width, c_top, c_left, ch, cw)  # [B, C, H, W]
        if not c.allow_overlap:
            context &= ~_rects(self.height, self.width, t_top, t_left, th, tw).any(axis=1, keepdims=True)
        context = context.reshape(batch_size, c.num_context, -1)
        counts = context.sum(-1)
        if (counts <= c.min_keep).any():
            return None
        keep = int(counts.min())  # truncate to the batch minimum, lowest raster indices first
        order = np.argsort(~context, axis=-1, kind="stable")[..., :keep]
        def to_list(a):
            return [torch.from_numpy(np.ascontiguousarray(a[:, j])).long() for j in range(a.shape[1])]
        return to_list(order), to_list(targets)

    def sample_sequential(self, batch_size, th, tw, ch, cw):
        c = self.c
        targets = [[None] * batch_size for _ in range(c.num_targets)]
        contexts = [[None] * batch_size for _ in range(c.num_context)]
        for i in range(batch_size):
            complements = []
            for j in range(c.num_targets):
                targets[j][i], comp = self.block(th, tw, None)
                complements.append(comp)
            regions = None if c.allow_overlap else complements
            for j in range(c.num_context):
                contexts[j][i], _ = self.block(ch, cw, regions)
        return _truncate_stack(contexts), _truncate_stack(targets)


def _rect(height: int, width: int, top: int, left: int, h: int, w: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + h, left : left + w] = True
    return mask


def _rects(height: int, width: int, top: np.ndarray, left: np.ndarray, h, w) -> np.ndarray:
    """Boolean rectangles [..., H, W] with corners ``top``/``left`` (any shape) and sizes ``h``/``w``."""
    top, left = np.asarray(top)[..., None], np.asarray(left)[..., None]
    h, w = np.asarray(h)[..., None], np.asarray(w)[..., None]
    r, c = np.arange(height), np.arange(width)
    return ((r >= top) & (r < top + h))[..., :, None] & ((c >= left) & (c < left + w))[..., None, :]


def _truncate_stack(masks: list[list[np.ndarray]]) -> list[torch.Tensor]:
    """Truncate every mask to the shortest in the batch (lowest raster indices kept), then stack."""
    keep = min(len(m) for per_block in masks for m in per_block)
    return [torch.from_numpy(np.stack([m[:keep] for m in per_block])).long() for per_block in masks]


# ----------------------------------------------------------------------------------------------------
# corrected


class _CorrectedSampler:
    def __init__(self, collator: MaskCollator) -> None:
        self.collator, self.c = collator, collator.config
        self.height, self.width = collator.height, collator.width
        self.seed = collator.seed
        self.rng = np.random.default_rng()

    def size(self, scale, aspect, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Block heights and widths with independent scale and (log-uniform) aspect draws."""
        s = self.rng.uniform(scale[0], scale[1], n)
        a = np.exp(self.rng.uniform(math.log(aspect[0]), math.log(aspect[1]), n))
        return self.size_of(s, a)

    def size_grid(self, scale, aspect, n: int = 33) -> tuple[np.ndarray, np.ndarray]:
        """The block sizes over an ``n`` x ``n`` grid spanning the scale and aspect ranges."""
        s, a = np.meshgrid(np.linspace(scale[0], scale[1], n), np.geomspace(aspect[0], aspect[1], n))
        return self.size_of(s.ravel(), a.ravel())

    def size_of(self, s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        area = s * self.height * self.width
        h = np.clip(np.rint(np.sqrt(area * a)), 1, self.height).astype(np.int64)
        w = np.clip(np.rint(np.sqrt(area / a)), 1, self.width).astype(np.int64)
        return h, w

    def rects(self, h, w, n: int) -> np.ndarray:
        """[n, H, W] boolean rectangles of sizes (h, w) (scalars or [n]) at uniform positions."""
        h, w = np.broadcast_to(h, (n,)), np.broadcast_to(w, (n,))
        top = self.rng.integers(0, self.height - h + 1)
        left = self.rng.integers(0, self.width - w + 1)
        return _rects(self.height, self.width, top, left, h, w)

    def draw(self, n: int, th: int, tw: int) -> tuple[np.ndarray, np.ndarray]:
        """Target rectangles [T, n, H, W] and available context [n, H*W] for ``n`` images."""
        c = self.c
        targets = np.stack([self.rects(th, tw, n) for _ in range(c.num_targets)])
        ch, cw = self.size(c.context_scale, c.context_aspect, n)
        available = self.rects(ch, cw, n)
        if not c.allow_overlap:
            available &= ~targets.any(axis=0)
        return targets, available.reshape(n, -1)

    def sample(self, batch_size: int, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        c = self.c
        self.rng = np.random.default_rng([self.seed, step])
        th, tw = (int(v[0]) for v in self.size(c.target_scale, c.target_aspect))
        targets, available = self.draw(batch_size, th, tw)

        def redraw(bad: np.ndarray) -> None:
            new_t, new_a = self.draw(int(bad.sum()), th, tw)
            targets[:, bad], available[bad] = new_t, new_a

        for _ in range(_REDRAWS):  # every image keeps more than min_keep context patches
            bad = available.sum(1) <= c.min_keep
            if not bad.any():
                break
            redraw(bad)
        counts = available.sum(1)
        group = counts[: c.context_group]
        if batch_size < c.context_group:
            _, extra = self.draw(c.context_group - batch_size, th, tw)
            group = np.concatenate([group, extra.sum(1)])
        keep = int(max(group.min(), c.min_keep + 1))
        for _ in range(_REDRAWS):  # images beyond the group that fall short are redrawn
            bad = available.sum(1) < keep
            if not bad.any():
                break
            redraw(bad)
        keep = min(keep, int(available.sum(1).min()))
        if keep <= c.min_keep:  # never a context of min_keep patches or fewer, validated or not
            raise self.collator.error(
                f"step {step}: an image kept {keep} context patches after {2 * _REDRAWS} redraws, not more than "
                f"min_keep={c.min_keep}")

        # K context patches per image, uniformly at random among the available ones, in raster order
        scores = np.where(available, self.rng.random(available.shape), np.inf)
        context = np.sort(np.argpartition(scores, keep - 1, axis=1)[:, :keep], axis=1)
        flat = targets.reshape(c.num_targets, batch_size, -1)
        target_idx = [np.flatnonzero(t).reshape(batch_size, th * tw) % (self.height * self.width) for t in flat]
        return [torch.from_numpy(context).long()], [torch.from_numpy(t).long() for t in target_idx]


# ----------------------------------------------------------------------------------------------------
# statistics


@dataclass
class MaskStats:
    """Mean mask sizes and per-patch coverage (fraction of images where a patch is context / target)."""

    mean_context: float
    mean_target: float
    min_target: int
    max_target: int
    context_coverage: np.ndarray  # [H, W]
    target_coverage: np.ndarray  # [H, W]


def mask_statistics(collator: MaskCollator, *, batches: int = 50, batch_size: int = 128, start: int = 0) -> MaskStats:
    """Sample ``batches`` batches and summarise their masks."""
    n = collator.num_patches
    ctx_cov, tgt_cov = np.zeros(n), np.zeros(n)
    ctx_sizes, tgt_sizes = [], []
    for step in range(start, start + batches):
        context, targets = collator.sample(batch_size, step)
        for m in context:
            ctx_sizes.append(m.shape[1])
            np.add.at(ctx_cov, m.numpy().ravel(), 1)
        seen = np.zeros((batch_size, n), dtype=bool)
        for m in targets:
            tgt_sizes.append(m.shape[1])
            np.put_along_axis(seen, m.numpy(), True, axis=1)
        tgt_cov += seen.sum(0)
    images = batches * batch_size
    shape = (collator.height, collator.width)
    return MaskStats(
        mean_context=float(np.mean(ctx_sizes)),
        mean_target=float(np.mean(tgt_sizes)),
        min_target=int(np.min(tgt_sizes)),
        max_target=int(np.max(tgt_sizes)),
        context_coverage=(ctx_cov / images).reshape(shape),
        target_coverage=(tgt_cov / images).reshape(shape),
    )
