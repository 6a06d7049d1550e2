"""YAML read with a bound on alias expansion: a few hundred bytes of nested aliases ("billion laughs") would
otherwise become a structure that every later walk (validation, copies, ``recipe.yaml``) expands to gigabytes."""
from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_EXPANSION", "MIN_EXPANDED", "YamlBombError", "safe_load_bounded", "check_expansion"]

MAX_EXPANSION = 16  # nodes after alias expansion per node written
MIN_EXPANDED = 10_000  # below this, any expansion is harmless


class YamlBombError(yaml.YAMLError):
    """A YAML document whose aliases expand far beyond its size, or refer to themselves."""


def check_expansion(node: yaml.Node, *, source: str = "YAML") -> None:
    """Refuse a composed document whose node tree, aliases expanded, exceeds :data:`MAX_EXPANSION` times its
    distinct nodes (and :data:`MIN_EXPANDED`), or that holds a cycle; counted without expanding it."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlBombError(f"{source}: an alias refers to its own anchor (a cycle); refused. Fix: remove the alias.")
        active.add(key)
        children = n.value if isinstance(n, yaml.SequenceNode) else (
            [v for pair in n.value for v in pair] if isinstance(n, yaml.MappingNode) else [])
        sizes[key] = 1 + sum(size(c) for c in children)
        active.discard(key)
        return sizes[key]

    total = size(node)
    if total > max(MIN_EXPANDED, MAX_EXPANSION * len(sizes)):
        raise YamlBombError(
            f"{source}: its aliases expand {len(sizes)} nodes to {total} (over {MAX_EXPANSION} times); refused as an "
            "alias bomb. Fix: write the values out instead of nesting aliases."
        )


def safe_load_bounded(text: str, *, source: str = "YAML") -> Any:
    """``yaml.safe_load(text)`` that refuses alias bombs and cycles (:class:`YamlBombError`, a ``yaml.YAMLError``)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node, source=source)
        return loader.construct_document(node)
    finally:
        loader.dispose()
