"""A model's lineage without any I/O: the steps of a provenance chain, and the licence a derived model carries
(the most restrictive licence among the models it was made from). Reading chains from repos is
:mod:`ijepa_hub.hub.provenance`."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..registry import VARIANTS

__all__ = ["Step", "step", "with_step", "released_step", "strictest_license", "chain_license", "provenance_markdown",
           "NON_COMMERCIAL", "PERMISSIVE"]

Step = dict[str, Any]

# licences from most to least restrictive; one not listed counts as more restrictive than every permissive one
NON_COMMERCIAL = ("cc-by-nc-nd-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-4.0")
PERMISSIVE = ("cc-by-sa-4.0", "cc-by-4.0", "apache-2.0", "bsd-3-clause", "mit", "cc0-1.0")


def _restriction(license: str) -> int:
    license = license.lower()
    if license in NON_COMMERCIAL:
        return 100 - NON_COMMERCIAL.index(license)
    if license in PERMISSIVE:
        return len(PERMISSIVE) - PERMISSIVE.index(license)
    return 50  # an unknown licence: assume it restricts more than any permissive one


def strictest_license(licenses: Iterable[str | None]) -> str | None:
    """The most restrictive of ``licenses`` (None entries skipped; None when none is stated)."""
    stated = [lic for lic in licenses if lic]
    return max(stated, key=_restriction) if stated else None


def chain_license(chain: Sequence[Mapping[str, Any]]) -> str | None:
    """The licence a model with provenance ``chain`` carries: the most restrictive in the chain."""
    return strictest_license(step.get("license") for step in chain)


def provenance_markdown(chain: Sequence[Mapping[str, Any]] | None) -> str:
    """A provenance chain as a numbered Markdown list for model cards (oldest first)."""
    if not chain:
        return "Provenance: not recorded."
    lines = ["Provenance (oldest first; `ijepa.provenance` in `config.json`):", ""]
    for i, entry in enumerate(chain, 1):
        model = f"`{entry['model']}`" if entry.get("model") else "(no source weights)"
        revision = f" at revision `{entry['revision']}`" if entry.get("revision") else ""
        license = f" ({entry['license']})" if entry.get("license") else ""
        lines.append(f"{i}. {model}{revision}{license}: {entry.get('action', 'not recorded')}")
    return "\n".join(lines)


def step(model: str | None, action: str, *, revision: str | None = None, license: str | None = None) -> Step:
    """One step of a provenance chain."""
    return {"model": model, "revision": revision, "license": license, "action": action}


def with_step(chain: Sequence[Mapping[str, Any]], model: str | None, action: str, *,
              revision: str | None = None) -> list[Step]:
    """``chain`` followed by one more step from ``model``, which carries the chain's licence."""
    return [*map(dict, chain), step(model, action, revision=revision, license=chain_license(chain))]


def released_step(variant_name: str) -> Step:
    """The first step of every chain from Meta's weights: the release of ``variant_name``."""
    v = VARIANTS[variant_name]
    return step(v.url, f"released by Meta AI with the I-JEPA paper ({v.name})", license=v.license)
