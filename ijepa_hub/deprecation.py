"""Deprecated aliases of renamed public names: a warning on use, the new object's behaviour.

A renamed function keeps its old name for one minor version as a thin wrapper (:func:`deprecated_function`);
a renamed module attribute (a type alias, a constant) through the module's ``__getattr__``
(:func:`deprecated_attributes`). Both warn with :class:`FutureWarning`, which Python shows by default, naming
the new spelling.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["deprecated_function", "deprecated_attributes", "warn_renamed"]

F = TypeVar("F", bound=Callable[..., Any])


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is a deprecated name of ``new`` (removed in the next minor version)."""
    warnings.warn(f"{old} is deprecated and will be removed in the next minor version; use {new} (same behaviour)",
                  FutureWarning, stacklevel=stacklevel)


def deprecated_function(func: F, old: str, new: str) -> F:
    """``func`` under its old name ``old``: the same call, with a :class:`FutureWarning` naming ``new``."""

    @functools.wraps(func)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warn_renamed(old, new)
        return func(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old.rpartition(".")[2]
    alias.__doc__ = f"Deprecated alias of :func:`{new}` (removed in the next minor version)."
    return alias  # type: ignore[return-value]


def deprecated_attributes(module: str, renamed: Mapping[str, tuple[str, Callable[[], Any]]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving old attribute names: ``renamed[old] = (new spelling, getter of the object)``."""

    def __getattr__(name: str) -> Any:
        if name in renamed:
            new, get = renamed[name]
            warn_renamed(f"{module}.{name}", new)
            return get()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
