"""What every probe needs before it runs: two classes or more to tell apart and at least one epoch, so that
a degenerate evaluation is an error rather than a confident 100 %."""
from __future__ import annotations

import torch

from ..errors import DataError
from ..limits import max_img_size

__all__ = ["check_classes", "check_epochs", "check_heads", "check_probe_size"]


def check_classes(labels: torch.Tensor, *, what: str, ignore: int | None = None) -> None:
    """Refuse training labels with fewer than two distinct classes (``ignore``: a label that is no class)."""
    present = labels.unique()
    if ignore is not None:
        present = present[present != ignore]
    if len(present) < 2:
        raise DataError(
            f"{what}: the training split holds {len(present)} class(es) ({present.tolist()[:5]}); a probe needs at "
            "least 2 to measure anything. Fix: give data with two classes or more."
        )


def check_epochs(epochs: int, *, what: str) -> None:
    """Refuse ``epochs < 1``: an untrained probe's score means nothing."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"{what}: epochs={epochs!r}; a probe needs at least 1 epoch. Fix: pass --epochs 1 or more.")


def check_heads(num_heads: int, width: int, *, what: str) -> None:
    """Refuse a head count that is not positive or does not divide the feature width."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1 or width % num_heads:
        raise ValueError(f"{what}: num_heads={num_heads!r} must be a positive divisor of the width {width}. "
                         "Fix: pass --num-heads 1, 2, 4, 8 ... dividing it.")


def check_probe_size(img_size: int, patch_size: int) -> None:
    """Refuse a probe resolution below one patch or over :func:`~ijepa_hub.limits.max_img_size`."""
    top = max_img_size()
    if isinstance(img_size, bool) or not isinstance(img_size, int) or not patch_size <= img_size <= top:
        raise ValueError(f"--img-size {img_size!r} must be between the patch size {patch_size} and {top} pixels. "
                         f"Fix: pass e.g. --img-size {max(patch_size, 224)}.")
