"""Where a model's weights come from, for the models trained from other weights (continued pretraining,
distillation, fine-tuning): the source as named, its revision, the release it derives from and its licence.

A model continued, distilled or fine-tuned from Meta's released weights inherits their CC BY-NC 4.0 licence;
the licence travels through every ijepa_hub repo in ``config.json`` (``ijepa.license``) so that a model made
from a model made from the release still says so.
"""
from __future__ import annotations

import os
from typing import Any

from ..registry import VARIANTS, is_random_init
from ..released import find_variant
from .layout import Origin
from .load import read_config

__all__ = ["Origin", "source_origin", "model_origin"]


def source_origin(source: str | os.PathLike, *, revision: str | None = None, **hub_kwargs: Any) -> Origin:
    """The :class:`Origin` of anything :func:`~ijepa_hub.from_pretrained` loads, read from its name (a released
    variant, its checkpoint file or its transformers mirror) or its ``config.json`` (licence, variant, base)."""
    s = os.fspath(source)
    released = find_variant(s) if not os.path.isdir(s) else None  # a name, alias or released file name
    if released is None:
        released = next((v for v in VARIANTS.values() if v.hf_transformers_repo == s), None)
    if released is not None:
        return Origin(s, revision, released.name, released.license)
    if os.path.isfile(s):  # a .pth.tar of another name: nothing in it states a licence
        return Origin(s, revision)
    config = read_config(s, revision=revision, **hub_kwargs)
    ijepa = config.get("ijepa") or {}
    base = ijepa.get("variant") or ijepa.get("base_variant")
    base_license = VARIANTS[base].license if base in VARIANTS else None
    return Origin(s, revision, base if base in VARIANTS else None, ijepa.get("license") or base_license)


def model_origin(model: Any) -> Origin | None:
    """The :class:`Origin` of a model's ``source`` (set by the loaders and the fine-tuner), read from the local
    caches only (the source was loaded from them); None for a random initialisation or no recorded source."""
    source = getattr(model, "source", None)
    if not source or is_random_init(source):
        return None
    return source_origin(source, local_files_only=True)
