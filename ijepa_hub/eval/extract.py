"""Write extracted features to a file: ``.safetensors`` (with metadata) or ``.npy`` (plus the image list)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..features import Features

__all__ = ["FEATURE_SUFFIXES", "check_features_output", "write_features"]

FEATURE_SUFFIXES = (".safetensors", ".npy")


def check_features_output(output: str | os.PathLike, *, patch_tokens: bool = False) -> Path:
    """``output`` as a Path if :func:`write_features` can write it (check before extracting), else ValueError."""
    out = Path(output)
    if out.suffix not in FEATURE_SUFFIXES:
        raise ValueError(f"{out}: the output must end in .safetensors or .npy")
    if out.suffix == ".npy" and patch_tokens:
        raise ValueError(f"{out}: patch tokens need a .safetensors output (.npy holds the pooled features only)")
    return out


def write_features(
    output: str | os.PathLike,
    paths: list[str],
    features: Features,
    *,
    patch_tokens: bool = False,
    metadata: dict[str, str] | None = None,
) -> str:
    """Save ``features`` of the images ``paths`` to ``output``; returns a one-line description of what was written.

    ``.safetensors``: tensor ``pooled`` (and ``patch_tokens`` if asked), the paths as JSON in the metadata
    ``paths`` plus ``metadata``. ``.npy``: the pooled array, and the paths one per line in a ``.txt``
    beside it (``patch_tokens`` and ``metadata`` need safetensors).
    """
    out = check_features_output(output, patch_tokens=patch_tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        import numpy as np

        np.save(out, features.pooled.numpy())
        out.with_suffix(".txt").write_text("".join(f"{p}\n" for p in paths))
        return f"wrote {out} {tuple(features.pooled.shape)} and the image list {out.with_suffix('.txt')}"
    from safetensors.torch import save_file

    tensors = {"pooled": features.pooled}
    if patch_tokens:
        tensors["patch_tokens"] = features.patch_tokens
    save_file(tensors, str(out), metadata={"paths": json.dumps(paths), **(metadata or {})})
    return f"wrote {out} pooled {tuple(features.pooled.shape)}"
