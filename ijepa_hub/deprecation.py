"""Deprecated aliases of renamed or moved public names: a warning on use, the new object's behaviour.

A renamed function keeps its old name for one minor version as a thin wrapper (:func:`deprecated_function`);
a renamed module attribute (a type alias, a constant) through the module's ``__getattr__``
(:func:`deprecated_attributes`); a moved module through an import alias (:func:`alias_moved_modules`). All
warn with :class:`FutureWarning`, which Python shows by default, naming the new spelling.
"""
from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["REMOVED_IN", "deprecated_function", "deprecated_attributes", "warn_renamed", "alias_moved_modules"]

REMOVED_IN = "0.3.0"  # the one place: renamed names, moved modules and old CLI spellings go in this version

F = TypeVar("F", bound=Callable[..., Any])


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is a deprecated name of ``new`` (removed in :data:`REMOVED_IN`)."""
    warnings.warn(f"{old} is deprecated and will be removed in ijepa_hub {REMOVED_IN}; use {new} (same behaviour)",
                  FutureWarning, stacklevel=stacklevel)


def deprecated_function(func: F, old: str, new: str) -> F:
    """``func`` under its old name ``old``: the same call, with a :class:`FutureWarning` naming ``new``."""

    @functools.wraps(func)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warn_renamed(old, new)
        return func(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old.rpartition(".")[2]
    alias.__doc__ = f"Deprecated alias of :func:`{new}` (removed in {REMOVED_IN})."
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


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports of a moved module's old path give the new module, with a warning."""

    def __init__(self, moved: Mapping[str, str]) -> None:
        self.moved = dict(moved)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(fullname, self) if fullname in self.moved else None

    def create_module(self, spec: Any) -> Any:
        warn_renamed(f"module {spec.name}", f"module {self.moved[spec.name]}", stacklevel=6)
        return importlib.import_module(self.moved[spec.name])

    def exec_module(self, module: Any) -> None:  # the new module is already executed
        pass


def alias_moved_modules(moved: Mapping[str, str]) -> None:
    """Let ``import old.path`` (each key of ``moved``) give the module now at the value's path."""
    sys.meta_path.append(_MovedModules(moved))
