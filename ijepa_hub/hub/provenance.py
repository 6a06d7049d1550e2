"""Where a model's weights come from: the source as named, its revision, the release it derives from, its licence,
and the chain of what was done to them (``config.json`` ``ijepa.provenance``).

A model continued, distilled, fine-tuned or exported from Meta's released weights inherits their CC BY-NC 4.0
licence; the licence of any model is the most restrictive licence in its chain, so that a model made from a model
made from the release still says so.

The chain is a list of steps, oldest first. Each step names the model it started from (``model``, ``revision``),
that model's licence (``license``, None when it states none) and what was done (``action``)::

    [{"model": "https://dl.fbaipublicfiles.com/ijepa/IN1K-vit.h.14-300e.pth.tar", "action": "released by Meta AI
      (ijepa_vith14_1k)", "license": "cc-by-nc-4.0", ...},
     {"model": "ijepa_vith14_1k", "action": "continued pretraining (ijepa-train --init, recipe adapt_vith14)", ...},
     {"model": "runs/adapt/model", "action": "fine-tuned as a classifier (ijepa-finetune, mode full)", ...}]
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..registry import VARIANTS, is_random_init
from ..released import find_variant
from .layout import Origin
from .lineage import Step, chain_license, released_step, step, strictest_license, with_step
from .load import read_config

logger = logging.getLogger(__name__)

__all__ = ["Origin", "source_origin", "model_origin", "provenance_of", "model_provenance", "with_step",
           "strictest_license", "chain_license"]  # the chain primitives re-exported from .lineage


def _legacy_chain(ijepa: Mapping[str, Any], source: str, revision: str | None) -> list[Step]:
    """The chain of a repo written before ``ijepa.provenance`` existed, from what it did record."""
    variant, base, license = ijepa.get("variant"), ijepa.get("base_variant"), ijepa.get("license")
    if variant in VARIANTS:
        return [released_step(variant)]
    chain = [released_step(base)] if base in VARIANTS else []
    origins = ijepa.get("origins") or {}
    for key, origin in origins.items() if isinstance(origins, Mapping) else ():
        if isinstance(origin, Mapping):
            chain = with_step(chain, origin.get("source"), "distilled from this teacher" if key == "teacher"
                              else "continued pretraining", revision=origin.get("revision"))
    if ijepa.get("recipe") and not origins:
        what = "trained from it" if chain else "trained from random initialisation"
        chain = with_step(chain, None, f"{what} with ijepa-train (recipe {ijepa['recipe'].get('name', 'custom')})"
                          if isinstance(ijepa.get("recipe"), Mapping) else what)
    return _with_stated_license(chain, license, source, revision)


def _with_stated_license(chain: list[Step], license: Any, source: str | None, revision: str | None) -> list[Step]:
    """``chain``, plus a step for a licence its repo states that is stricter than the chain's own."""
    if isinstance(license, str) and license and strictest_license([license, chain_license(chain)]) != chain_license(chain):
        chain.append(step(source, "licence stated by the repo", revision=revision, license=license))
    return chain


def provenance_of(source: str | os.PathLike, *, revision: str | None = None, **hub_kwargs: Any) -> list[Step]:
    """The provenance chain of the weights that :func:`~ijepa_hub.from_pretrained` loads from ``source``.

    A released variant (its name, checkpoint file or transformers mirror): one step, Meta's release. An ijepa_hub
    repo: its ``ijepa.provenance`` (older repos: rebuilt from their variant, origins and licence). Anything else
    (another library's repo, a checkpoint file of another name): one step stating the origin is not recorded.
    """
    s = os.fspath(source)
    released = find_variant(s) if not os.path.isdir(s) else None
    if released is None:
        released = next((v for v in VARIANTS.values() if v.hf_transformers_repo == s), None)
    if released is not None:
        return [released_step(released.name)]
    if os.path.isfile(s):  # a checkpoint of another name: nothing in it states where it came from
        return [step(s, "a checkpoint file whose origin is not recorded")]
    config = read_config(s, revision=revision, **hub_kwargs)
    ijepa = config.get("ijepa") or {}
    chain = ijepa.get("provenance")
    if isinstance(chain, list) and all(isinstance(x, Mapping) for x in chain):
        return _with_stated_license([dict(x) for x in chain], ijepa.get("license"), s, revision)
    if ijepa:
        return _legacy_chain(ijepa, s, revision)
    return [step(s, "a repo of another library whose origin is not recorded", revision=revision,
                 license=config.get("license") if isinstance(config.get("license"), str) else None)]


def source_origin(source: str | os.PathLike, *, revision: str | None = None, **hub_kwargs: Any) -> Origin:
    """The :class:`Origin` of anything :func:`~ijepa_hub.from_pretrained` loads: the source as named, the release
    its chain starts from (if any) and its licence (the strictest in its chain)."""
    chain = provenance_of(source, revision=revision, **hub_kwargs)
    return Origin(os.fspath(source), revision, _chain_variant(chain), chain_license(chain))


def _chain_variant(chain: Sequence[Mapping[str, Any]]) -> str | None:
    for entry in chain:
        for v in VARIANTS.values():
            if entry.get("model") == v.url:
                return v.name
    return None


def model_provenance(model: Any) -> list[Step] | None:
    """The chain of a loaded model's weights (read from the local caches its ``source`` was loaded from); None for
    a random initialisation or a model with no recorded source. A reference checkpoint loaded and saved again gains
    a conversion step."""
    source = getattr(model, "source", None)
    if not source or is_random_init(source):
        variant = getattr(model, "variant", None)
        return [released_step(variant)] if variant in VARIANTS else None
    try:
        chain = provenance_of(source, local_files_only=True)
    except FileNotFoundError as err:  # a description, not a loadable source (torch.hub's random weights)
        logger.info("no provenance recorded for %s: %s", source, str(err).splitlines()[0])
        return None
    if os.path.isfile(source) or find_variant(source) is not None:  # a released file by its name, not a cache path
        named = getattr(model, "variant", None) if find_variant(source) is not None else None
        chain = with_step(chain, named or source, "converted to safetensors in the ijepa_hub layout, unchanged")
    return chain


def model_origin(model: Any) -> Origin | None:
    """The :class:`Origin` of a model's ``source`` (set by the loaders and the fine-tuner), read from the local
    caches only (the source was loaded from them); None for a random initialisation or no recorded source."""
    source = getattr(model, "source", None)
    if not source or is_random_init(source):
        return None
    return source_origin(source, local_files_only=True)
