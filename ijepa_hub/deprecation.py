"""Renamed and moved names keep working for one minor version, with a ``FutureWarning`` that names the new
spelling (shown by default, unlike ``DeprecationWarning``, so users of scripts see it too)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["warn_renamed", "module_getattr", "alias_moved_modules"]

REMOVED_IN = "0.3.0"  # the one place: renamed names, moved modules and old CLI spellings


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is now ``new`` and will be removed."""
    warnings.warn(f"{old} is deprecated and will be removed in ijepa_hub {REMOVED_IN}; use {new}",
                  FutureWarning, stacklevel=stacklevel)


def module_getattr(module: str, renamed: Mapping[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves ``renamed`` (old name -> (new module, new name)) with a warning."""

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target_module, target = renamed[name]
        warn_renamed(f"{module}.{name}", f"{target_module}.{target}")
        return getattr(importlib.import_module(target_module), target)

    return __getattr__


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports of a moved module's old path give the new module, with a warning."""

    def __init__(self, moved: Mapping[str, str]) -> None:
        self.moved = dict(moved)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.moved:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        warn_renamed(f"module {spec.name}", f"module {self.moved[spec.name]}", stacklevel=6)
        return importlib.import_module(self.moved[spec.name])

    def exec_module(self, module: Any) -> None:  # the new module is already executed
        pass


def alias_moved_modules(moved: Mapping[str, str]) -> None:
    """Let ``import old.path`` (each key of ``moved``) give the module now at the value's path."""
    sys.meta_path.append(_MovedModules(moved))
