"""Ranges of numbers: one table per recipe section (``BOUNDS``) checked before anything is built.

A value out of range, not finite or of the wrong kind is refused in one line naming the key, the value
and the range; the upper limits come from :mod:`ijepa_hub.limits`, so that a recipe or an option cannot
ask this process to allocate more than the largest released model needs, with a wide margin.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RecipeError

__all__ = ["Bound", "Pair", "check_value", "check_bounds", "CROP_FRACTION", "POSITIVE"]


@dataclass(frozen=True)
class Bound:
    """``lo <= value <= hi`` (``<`` with ``lo_open`` / ``hi_open``); ``integer``: whole numbers only. ``None``
    values pass (optional keys); bool is never a number here."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        lo = "" if self.lo is None else f"{self.lo:g} {'<' if self.lo_open else '<='} "
        hi = "" if self.hi is None else f" {'<' if self.hi_open else '<='} {self.hi:g}"
        return f"{lo}{'an integer' if self.integer else 'a number'}{hi}"

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)


@dataclass(frozen=True)
class Pair(Bound):
    """A range ``[min, max]``: two values, each within the bound, ``min <= max``."""

    def describe(self) -> str:
        return f"[min, max] with min <= max, each {super().describe()}"

    def holds(self, value: Any) -> bool:
        return (isinstance(value, (list, tuple)) and len(value) == 2 and all(map(super().holds, value))
                and value[0] <= value[1])


CROP_FRACTION = Bound(0.0, 1.0, lo_open=True)  # crop_pct: the centre crop's share of the resized side
POSITIVE = Bound(1, None, integer=True)  # counts: top_k, batch sizes


def check_value(key: str, value: Any, bound: Bound, *, error: type[Exception] = RecipeError) -> None:
    """Refuse ``value`` of ``key`` outside ``bound`` (``None`` passes), in one line naming both."""
    if value is not None and not bound.holds(value):
        raise error(f"{key}={value!r} is out of range: it must be {bound.describe()}. Fix: set {key} within it.")


def check_bounds(values: Mapping[str, Any], bounds: Mapping[str, Bound], *, prefix: str = "",
                 error: type[Exception] = RecipeError) -> None:
    """:func:`check_value` for every key of ``bounds`` present in ``values`` (named ``prefix.key``)."""
    for key, bound in bounds.items():
        if key in values:
            check_value(f"{prefix}.{key}" if prefix else key, values[key], bound, error=error)
